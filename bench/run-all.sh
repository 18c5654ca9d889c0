#!/usr/bin/env bash
# Runs every benchmark in one sitting and appends a dated section to bench/RESULTS.md.
#
#   bench/run-all.sh            every benchmark: download, upload, memory, rotation, login flood, HLS packaging and serving
#   bench/run-all.sh --init     only create bench/RESULTS.md with its header, if missing
#
# Numbers enter RESULTS.md only through this script: a figure typed in by hand cannot be traced
# to a run. Logs of each benchmark: bench/out/<name>.log. Takes ~5-10 minutes and ~12 GiB of disk.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RESULTS=${BENCH_ROOT}/bench/RESULTS.md

write_header() {
    cat >"${RESULTS}" <<EOF
# Benchmark results

Strongroom against nginx, measured side by side in one sitting and reported as ratios against the
targets of DESIGN.md "Performance targets" (repeated below). Each section is appended by
\`bench/run-all.sh\`; figures are never typed in by hand. Raw figures of the latest run are in
\`bench/out/*.tsv\` (not committed).

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

## Targets (DESIGN.md)
| measure | target |
|---|---|
| download throughput, Strongroom / nginx | >= 1.0 |
| download server CPU per GB, Strongroom / nginx | <= 0.6 |
| upload throughput (Strongroom durable + encrypted), Strongroom / nginx | >= 1.0 |
| peak RSS during 10 parallel 1 GiB uploads | < 150 MiB |
| `keys rotate` of 100,000 assets' data keys | < 10 s |
| API-key GET p99 during 200 concurrent wrong-password logins / p99 without | <= 2.0 |

## Runs
EOF
}

if [[ ! -f "${RESULTS}" ]]; then
    write_header
fi
if [[ "${1:-}" == "--init" ]]; then
    exit 0
fi

bench_ensure_tools
build_strongroom
# The benchmarks below then use this very binary, even if the checkout changes meanwhile.
export STRONGROOM_BIN

status=0
sections=()
for name in download upload memory rotation login_flood hls_packaging hls_serving; do
    step "bench/${name}.sh"
    rm -f "${BENCH_OUT}/${name}.summary.md"
    # Each benchmark starts and stops its own servers, so one failing cannot skew the next.
    if "${BENCH_ROOT}/bench/${name}.sh" 2>&1 | tee "${BENCH_OUT}/${name}.log"; then
        sections+=("$(cat "${BENCH_OUT}/${name}.summary.md")")
    else
        status=1
        sections+=("### ${name}: FAILED (see bench/out/${name}.log of that run)")
    fi
done

commit=$(git -C "${BENCH_ROOT}" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [[ -n "$(git -C "${BENCH_ROOT}" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit="${commit} + uncommitted changes"
fi
{
    printf '\n## %s (%s)\n\n' "$(date '+%Y-%m-%d %H:%M %Z')" "${commit}"
    printf -- '- machine: %s\n' "$(machine_line)"
    printf -- '- nginx %s; %s; RUNS=%s, SIZE_MIB=%s, PARALLEL=%s\n\n' \
        "$(nginx -v 2>&1 | sed 's|.*/||')" "$(curl --version | head -n 1 | cut -d' ' -f1-2)" \
        "${RUNS}" "${SIZE_MIB}" "${PARALLEL:-10}"
    printf '%s\n\n' "${sections[@]}"
} >>"${RESULTS}"

step "Appended to ${RESULTS}"
exit "${status}"
