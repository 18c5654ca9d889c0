#!/usr/bin/env bash
# Copies benchmark: one 1 GiB upload over HTTPS to Strongroom with `copies = 2` (two backends,
# every blob written to both, acknowledged once both hold it durably) against `copies = 1` (one
# backend). Target (issue 9): throughput(copies = 2) / throughput(copies = 1) >= 0.8, which only a
# server writing its copies in parallel, not one after the other, can reach.
#
#   bench/copies.sh              RUNS=3 SIZE_MIB=1024 by default
# Raw figures: bench/out/copies.tsv; summary: bench/out/copies.summary.md.
#
# The backends: two fs backends, folders side by side under bench/out, on the one disk this
# machine has. That is the fairest pairing available here: both copies cost the same (so the ratio
# measures how they are combined, not which backend is slower, as fs + s3s-fs would: s3s-fs's
# multipart upload writes every byte twice), and the copies = 1 server runs the very same code path
# (the replicated store with one member). It is also the harder case: both copies share one disk's
# write bandwidth and its fsyncs, so on two real disks the ratio could only be higher. The disk's
# own figures (buffered write + fdatasync of 1 GiB, one and two files at once, by dd) are measured
# in the same sitting, to show how much of a shortfall is the disk's.
#
# Two servers run side by side (one per setting) and the runs interleave, alternating which goes
# first; `sync` before each run, every stored copy deleted after it.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_ensure_tools
# The source file + two stored copies at a time (+ two dd files).
need_free_mib $((SIZE_MIB * 3 + 512))

SRC_DIR=${BENCH_OUT}/src
mkdir -p "${SRC_DIR}"
FILE=${SRC_DIR}/upload.bin
make_random_file "${FILE}"
BYTES=$(stat -c %s "${FILE}")
SHA256=$(sha256sum "${FILE}" | cut -d' ' -f1)

BACKENDS=${BENCH_OUT}/copies-backends
remove_backends() {
    rm -rf "${BACKENDS}" "${BENCH_OUT}/strongroom-data-one"
}
BENCH_EXIT_HOOKS+=(remove_backends)
rm -rf "${BACKENDS}"
mkdir -p "${BACKENDS}"

build_strongroom
step "Starting two servers: copies = 1 (backend a1) and copies = 2 (backends b1, b2)"
strongroom_storage_config "${BENCH_OUT}/copies-one.toml" 1 "a1=fs://${BACKENDS}/a1"
strongroom_storage_config "${BENCH_OUT}/copies-two.toml" 2 "b1=fs://${BACKENDS}/b1" "b2=fs://${BACKENDS}/b2"

# Each server's settings, saved after its start; use_server NAME brings them back into the
# variables sr_upload and sr_api read.
declare -A SRV_PID SRV_URL SRV_KEY SRV_SPACE
for name in one two; do
    SR_INSTANCE=${name} STRONGROOM_CONFIG=${BENCH_OUT}/copies-${name}.toml start_strongroom
    SRV_PID[${name}]=${SR_PID} SRV_URL[${name}]=${SR_URL} SRV_KEY[${name}]=${SR_KEY} SRV_SPACE[${name}]=${SR_SPACE}
done
# bench_cleanup removes SR_DATA (the last server's); remove_backends the other's.
use_server() {
    SR_PID=${SRV_PID[$1]} SR_URL=${SRV_URL[$1]} SR_KEY=${SRV_KEY[$1]} SR_SPACE=${SRV_SPACE[$1]}
}

# post NAME RUN: prints "<bytes/s> <server CPU s>".
post() {
    local before after code speed body id sha
    use_server "$1"
    before=$(cpu_seconds "${SR_PID}")
    read -r code speed body < <(sr_upload "${FILE}" "copies-$2.bin")
    after=$(cpu_seconds "${SR_PID}")
    [[ "${code}" == 201 ]] || die "upload (copies ${1}) answered ${code}: ${body}"
    [[ "$(jq -r .size <<<"${body}")" == "${BYTES}" ]] || die "Strongroom stored a different size: ${body}"
    sha=$(jq -r .sha256 <<<"${body}")
    if [[ "${sha}" =~ ^[0-9a-fA-F]{64}$ && "${sha,,}" != "${SHA256}" ]]; then
        die "Strongroom reports a different sha256 than the file's: ${body}"
    fi
    id=$(jq -er .id <<<"${body}")
    sr_api DELETE "/api/v1/assets/${id}" >/dev/null || die "could not delete asset ${id}"
    printf '%s %s\n' "${speed}" "$(awk -v a="${before}" -v b="${after}" 'BEGIN { printf "%.2f", b - a }')"
}

# disk_write N: N dd's at once, each writing the (cached) source file to a file of its own with a
# final fdatasync, as an upload's copy is written; prints the aggregate bytes/s.
disk_write() {
    local n=$1 i t0 t1 pids=()
    sync
    t0=$(date +%s.%N)
    for ((i = 1; i <= n; i++)); do
        dd if="${FILE}" of="${BACKENDS}/dd-${i}.bin" bs=1M conv=fdatasync status=none &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do
        wait "${i}"
    done
    t1=$(date +%s.%N)
    rm -f "${BACKENDS}"/dd-*.bin
    awk -v b="${BYTES}" -v n="${n}" -v s="${t0}" -v e="${t1}" 'BEGIN { printf "%.0f\n", b * n / (e - s) }'
}

step "Measuring: ${RUNS} interleaved runs of ${SIZE_MIB} MiB each (plus a discarded warm-up of each)"
TSV=${BENCH_OUT}/copies.tsv
printf 'time\tsetting\trun\tbytes\tspeed_bytes_per_s\tserver_cpu_s\n' >"${TSV}"
one=() two=() disk1=() disk2=()
for ((run = 0; run <= RUNS; run++)); do
    if ((run % 2)); then order=(one two); else order=(two one); fi
    for name in "${order[@]}"; do
        sync
        line=$(post "${name}" "${run}")
        read -r speed cpu <<<"${line}"
        if ((run == 0)); then
            note "warm-up copies=${name}: $(gbps "${speed}") GB/s (discarded)"
            continue
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Is)" "copies=${name}" "${run}" "${BYTES}" "${speed}" "${cpu}" >>"${TSV}"
        note "run ${run} copies=${name}: $(gbps "${speed}") GB/s, server CPU ${cpu} s"
        if [[ ${name} == one ]]; then one+=("${speed}"); else two+=("${speed}"); fi
    done
    if ((run > 0)); then
        d1=$(disk_write 1) d2=$(disk_write 2)
        printf '%s\tdisk: dd 1 file\t%s\t%s\t%s\t\n' "$(date -Is)" "${run}" "${BYTES}" "${d1}" >>"${TSV}"
        printf '%s\tdisk: dd 2 files at once\t%s\t%s\t%s\t\n' "$(date -Is)" "${run}" "$((BYTES * 2))" "${d2}" >>"${TSV}"
        note "run ${run} disk: dd + fdatasync of 1 file $(gbps "${d1}") GB/s, of 2 files at once $(gbps "${d2}") GB/s in all"
        disk1+=("${d1}") disk2+=("${d2}")
    fi
done

s1=$(median "${one[@]}") s2=$(median "${two[@]}")
d1=$(median "${disk1[@]}") d2=$(median "${disk2[@]}")
copies_ratio=$(ratio "${s2}" "${s1}")
cpu_gb() {
    # shellcheck disable=SC2046 # one number per word
    awk -v c="$(median $(awk -F'\t' -v s="$1" '$2 == s { print $6 }' "${TSV}"))" -v b="${BYTES}" \
        'BEGIN { printf "%.3f", c / (b / 1e9) }'
}

step "Copies results"
raw_figures copies copies.tsv
report copies \
    "### Copies, ${SIZE_MIB} MiB upload, copies = 2 against copies = 1, HTTPS HTTP/1.1, median of ${RUNS}" \
    "" \
    "Backends: fs folders side by side on the one disk here (copies = 1: one backend; copies = 2: two, each written in full and fsync'd before the upload is acknowledged). Both copies share that disk's bandwidth, so this is the harder case for the ratio; the disk's own dd figures beside it." \
    "" \
    "| setting | upload throughput GB/s | server CPU s/GB |" \
    "|---|---|---|" \
    "| copies = 1 (one fs backend) | $(gbps "${s1}") | $(cpu_gb copies=one) |" \
    "| copies = 2 (two fs backends, same disk) | $(gbps "${s2}") | $(cpu_gb copies=two) |" \
    "" \
    "- throughput ratio copies=2/copies=1: **${copies_ratio}** (target >= 0.8: $(verdict "${copies_ratio}" '>=' 0.8))" \
    "- the disk, dd bs=1M + fdatasync from the cached source: one file $(gbps "${d1}") GB/s, two files at once $(gbps "${d2}") GB/s in all; were uploads bound by the disk alone, the ratio could be at most $(ratio "${d2}" "$(awk -v a="${d1}" 'BEGIN { print 2 * a }')") (half the two-file rate over the one-file rate)" \
    "- raw figures: bench/out/copies.tsv"
