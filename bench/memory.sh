#!/usr/bin/env bash
# Memory benchmark: PARALLEL (10) simultaneous 1 GiB uploads to Strongroom; the server's peak
# resident memory must stay flat. Target (DESIGN.md): peak RSS < 150 MiB.
#
#   bench/memory.sh              PARALLEL=10 SIZE_MIB=1024 by default
# Raw figures: bench/out/memory.tsv (RSS sampled every 0.1 s); summary: bench/out/memory.summary.md.
#
# The peak is the kernel's own high-water mark (VmHWM in /proc/PID/status), so a spike between
# two samples is not missed; the samples only show the shape over time.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PARALLEL=${PARALLEL:-10}
# (start_strongroom lifts the server's upload limit, STRONGROOM_MAX_UPLOAD_BYTES, to 4 GiB.)

bench_ensure_tools
# The stored assets stay until the end, next to the source file.
need_free_mib $((SIZE_MIB * (PARALLEL + 1) + 512))

SRC_DIR=${BENCH_OUT}/src
mkdir -p "${SRC_DIR}"
FILE=${SRC_DIR}/upload.bin
make_random_file "${FILE}"
BYTES=$(stat -c %s "${FILE}")

build_strongroom
step "Starting Strongroom"
start_strongroom
idle_hwm=$(mem_mib "${SR_PID}" VmHWM)
note "peak RSS after start-up: ${idle_hwm} MiB"

step "Uploading ${PARALLEL} x ${SIZE_MIB} MiB in parallel"
TSV=${BENCH_OUT}/memory.tsv
printf 'seconds\trss_mib\n' >"${TSV}"
upload_pids=()
started=$(date +%s.%N)
for ((i = 1; i <= PARALLEL; i++)); do
    sr_upload "${FILE}" "parallel-${i}.bin" >"${BENCH_OUT}/memory-upload-${i}.out" &
    upload_pids+=("$!")
done

# Sample while any upload runs.
while :; do
    running=0
    for pid in "${upload_pids[@]}"; do
        if kill -0 "${pid}" 2>/dev/null; then running=1; fi
    done
    ((running)) || break
    kill -0 "${SR_PID}" 2>/dev/null || die "Strongroom died during the uploads; see ${BENCH_OUT}/strongroom.log"
    printf '%s\t%s\n' "$(awk -v s="${started}" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')" \
        "$(mem_mib "${SR_PID}" VmRSS)" >>"${TSV}"
    sleep 0.1
done
for pid in "${upload_pids[@]}"; do
    wait "${pid}" || true
done
elapsed=$(awk -v s="${started}" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')

peak=$(mem_mib "${SR_PID}" VmHWM)
after=$(mem_mib "${SR_PID}" VmRSS)

# Every upload must have succeeded with the full size, or the figure means nothing.
ok=0
for ((i = 1; i <= PARALLEL; i++)); do
    read -r code _ body <"${BENCH_OUT}/memory-upload-${i}.out"
    if [[ "${code}" == 201 && "$(jq -r .size <<<"${body}" 2>/dev/null)" == "${BYTES}" ]]; then
        ok=$((ok + 1))
    else
        note "upload ${i} failed: ${code} ${body}"
    fi
done
((ok == PARALLEL)) || die "${ok} of ${PARALLEL} uploads succeeded; the memory figure is not meaningful"

aggregate=$(awk -v b="${BYTES}" -v n="${PARALLEL}" -v t="${elapsed}" 'BEGIN { printf "%.3f", b * n / t / 1e9 }')

step "Memory results"
raw_figures memory memory.tsv
report memory \
    "### Memory, ${PARALLEL} parallel ${SIZE_MIB} MiB uploads" \
    "" \
    "- peak RSS (VmHWM) of the server: **${peak} MiB** (target < 150 MiB: $(verdict "${peak}" '<' 150))" \
    "- peak RSS after start-up, before the uploads: ${idle_hwm} MiB; RSS after the uploads: ${after} MiB" \
    "- ${PARALLEL} uploads took ${elapsed} s (aggregate ${aggregate} GB/s)" \
    "- RSS samples: bench/out/memory.tsv"
