#!/usr/bin/env bash
# Runs every benchmark in one sitting and appends a dated section to bench/RESULTS.md.
#
#   bench/run-all.sh            every benchmark: download, upload, memory, rotation, small requests, login flood, HLS packaging and serving, two-node rolling restart, S3 transfer, copies, scrub, client transfer (CLI vs curl), dashboard (page weight, a 10,000-asset space in Chromium), backup (backup and restore vs tar)
#   bench/run-all.sh NAME...    only these (e.g. small_requests login_flood), still as one section
#   bench/run-all.sh --init     only create bench/RESULTS.md with its header, if missing
#
# Numbers enter RESULTS.md only through this script (or a benchmark's own --append): a figure
# typed in by hand cannot be traced to a run. It refuses to start with uncommitted changes
# (BENCH_ALLOW_DIRTY=1 overrides, and says so in the heading), and copies each benchmark's raw
# figures to bench/results/<UTC time>-<commit>/, to be committed with RESULTS.md. Logs of each
# benchmark: bench/out/<name>.log. Takes ~30-40 minutes and ~22 GiB of disk (s3_transfer's ten
# parallel uploads, with s3s-fs's multipart parts; removed as each benchmark ends).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RESULTS=${BENCH_ROOT}/bench/RESULTS.md

write_header() {
    cat >"${RESULTS}" <<EOF
# Benchmark results

Strongroom against nginx, measured side by side in one sitting and reported as ratios against the
targets of DESIGN.md "Performance targets" (repeated below). Each section is appended by
\`bench/run-all.sh\` (or one benchmark's \`--append\`) from a clean commit, which it names;
figures are never typed in by hand. Sections from then on have their raw figures committed beside
this file, in \`bench/results/<UTC time>-<commit>/\`; earlier ones kept theirs in \`bench/out/\`.

## Method
- **Machine**: every section records its own (cores and CPU model from /proc/cpuinfo, RAM,
  kernel). This file was created on: $(machine_line).
  Ratios are only comparable within one section: absolute throughput on a VM drifts by 10-15%
  between sittings.
- **Client**: curl on the same machine, HTTP/1.1 (\`--http1.1\`), one TLS 1.3 connection per
  transfer, certificate checks off (self-signed), \`Expect: 100-continue\` off for uploads.
- **Data**: 1 GiB (SIZE_MIB) from /dev/urandom (incompressible), under bench/out/ (the same file
  system for both servers; never a tmpfs).
- **nginx** (Debian package): HTTPS with TLS 1.3 only, self-signed ECDSA P-256 certificate,
  \`sendfile on\`, \`worker_processes auto\`, access log off; uploads by WebDAV
  (\`dav_methods PUT\`, \`client_max_body_size 0\`, body buffered on the same file system, no fsync).
- **Strongroom**: release build (\`cargo build --release --locked -p strongroom\`), fresh data dir,
  default settings, its own self-signed certificate, API-key auth. Stores content encrypted; an
  upload is acknowledged only after fsync.
- **Download**: the file is uploaded to Strongroom once; one discarded warm-up download from each
  server (both then serve from the page cache), then RUNS interleaved downloads alternating which
  server goes first. Throughput is curl's \`speed_download\`; server CPU is utime+stime from
  /proc/PID/stat across the transfer (nginx: master plus workers), per 10^9 bytes. Medians.
- **Upload**: a warm-up of each, then RUNS interleaved uploads (nginx \`PUT\`, Strongroom
  \`POST /api/v1/spaces/{id}/assets\` raw body); \`sync\` before each, every stored copy deleted
  after it. Throughput is curl's \`speed_upload\`. Medians.
- **Memory**: PARALLEL simultaneous uploads to Strongroom; the peak is the kernel's high-water
  mark of resident memory (VmHWM in /proc/PID/status).
- **Small requests**: wrk (1 thread, 32 keep-alive TLS 1.3 connections, HTTP/1.1, 15 s per run)
  against nginx serving a 10 KiB file and Strongroom serving a 10 KiB asset's metadata and
  content with an API key, on SQLite and on PostgreSQL; medians of RUNS rounds. Server CPU per
  request from /proc/PID/stat (PostgreSQL's backends apart). Raw figures in \`bench/results/\`.
- **S3 transfer**: Strongroom with one S3 backend (s3s-fs from scripts/s3.sh, on 127.0.0.1, plain
  HTTP, SigV4 checked) against the same S3 server used directly by curl (\`--aws-sigv4\`, one PUT
  with UNSIGNED-PAYLOAD / one GET); upload and download as above, interleaved, medians; then
  PARALLEL simultaneous uploads to a fresh Strongroom on S3 for its peak RSS (VmHWM).
- **Copies**: upload as above to two servers side by side, \`copies = 1\` (one fs backend) and
  \`copies = 2\` (two fs backends on the same disk), interleaved; the disk's own write speed (dd +
  fdatasync, one file and two at once) beside it.
- **Scrub**: \`strongroom storage scrub --json\` over SCRUB_FILES stored 1 GiB blobs on one fs
  backend, the server stopped; GB/s = stored ciphertext bytes / wall time, against \`dd bs=1M\` of
  the same files, with the files in the page cache (warm) and evicted from it (cold, per-file
  posix_fadvise DONTNEED).
- **Backup**: 1,000 random 1 MiB assets on a SQLite instance; a backup, 1% of the assets purged
  and as many uploaded, a second backup to the same destination (its \`new_bytes\` against the
  first's); then, the server stopped, \`strongroom backup create\` / \`backup restore\` of the data dir
  against \`tar -cf\` / \`tar -xf\` of it (alone, and followed by \`sync\`), interleaved, medians.

## Targets (DESIGN.md)
| measure | target |
|---|---|
| download throughput, Strongroom / nginx | >= 1.0 |
| download server CPU per GB, Strongroom / nginx | <= 0.6 |
| upload throughput (Strongroom durable + encrypted), Strongroom / nginx | >= 1.0 |
| peak RSS during 10 parallel 1 GiB uploads | < 150 MiB |
| \`keys rotate\` of 100,000 assets' data keys | < 10 s |
| API-key \`GET /api/v1/assets/{id}\` req/s (32 keep-alive connections), Strongroom / nginx small static file, SQLite and PostgreSQL | >= 0.3, p99 < 10 ms |
| API-key \`GET /api/v1/assets/{id}/content\` of a 10 KiB asset req/s, Strongroom / nginx, SQLite and PostgreSQL | >= 0.2, p99 < 20 ms |
| API-key GET p99 during 200 concurrent wrong-password logins / p99 without | <= 2.0 |
| S3 backend: 1 GiB download, Strongroom / the same S3 server directly (issue 9) | >= 0.8 |
| S3 backend: 1 GiB upload, Strongroom / the same S3 server directly (issue 9) | >= 0.7 |
| S3 backend: peak RSS during 10 parallel 1 GiB uploads (issue 9) | < 150 MiB |
| 1 GiB upload throughput, \`copies = 2\` / \`copies = 1\` (issue 9) | >= 0.8 |
| \`storage scrub\` of the fs backend, GB/s of verified ciphertext (issue 9) | disk-bound, >= 1 GB/s |
| full backup and full restore of a data dir of 1,000 assets (1 GiB), Strongroom / \`tar\` (issue 11) | >= 0.8 |
| bytes written by a second backup after 1% of the assets changed / the first's (issue 11) | <= 3% |

## Runs
EOF
}

if [[ ! -f "${RESULTS}" ]]; then
    write_header
fi
if [[ "${1:-}" == "--init" ]]; then
    exit 0
fi

ALL=(download upload memory rotation small_requests login_flood hls_packaging hls_serving rolling_restart s3_transfer copies scrub client_transfer dashboard backup)
if (($# > 0)); then
    names=("$@")
    for name in "${names[@]}"; do
        [[ -x "${BENCH_ROOT}/bench/${name}.sh" && " ${ALL[*]} " == *" ${name} "* ]] ||
            die "no benchmark ${name} (one of: ${ALL[*]})"
    done
else
    names=("${ALL[@]}")
fi
# Before anything is measured: a section must name the commit it was made from.
results_begin

bench_ensure_tools
build_strongroom
# The benchmarks below then use this very binary, even if the checkout changes meanwhile.
export STRONGROOM_BIN

status=0
sections=()
for name in "${names[@]}"; do
    step "bench/${name}.sh"
    rm -f "${BENCH_OUT}/${name}.summary.md" "${BENCH_OUT}/${name}.raw"
    # Each benchmark starts and stops its own servers, so one failing cannot skew the next.
    if "${BENCH_ROOT}/bench/${name}.sh" 2>&1 | tee "${BENCH_OUT}/${name}.log"; then
        sections+=("$(results_section "${name}")")
    else
        status=1
        mkdir -p "${BENCH_ROOT}/${RESULTS_DIR}"
        cp "${BENCH_OUT}/${name}.log" "${BENCH_ROOT}/${RESULTS_DIR}/"
        sections+=("### ${name}: FAILED (see ${RESULTS_DIR}/${name}.log)")
    fi
done

only=""
if (($# > 0)); then
    only=": ${names[*]} only"
fi
{
    printf '\n## %s (%s%s)\n\n' "$(date '+%Y-%m-%d %H:%M %Z')" "${RESULTS_COMMIT}" "${only}"
    printf -- '- machine: %s\n' "$(machine_line)"
    printf -- '- nginx %s; %s; %s; RUNS=%s, SIZE_MIB=%s, PARALLEL=%s, SCRUB_FILES=%s\n\n' \
        "$(nginx -v 2>&1 | sed 's|.*/||')" "$(curl --version | head -n 1 | cut -d' ' -f1-2)" \
        "$(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)" "${RUNS}" "${SIZE_MIB}" "${PARALLEL:-10}" \
        "${SCRUB_FILES:-4}"
    printf '%s\n\n' "${sections[@]}"
} >>"${RESULTS}"

step "Appended to ${RESULTS}; raw figures in ${RESULTS_DIR}: commit both"
exit "${status}"
