#!/usr/bin/env bash
# Scrub benchmark: `strongroom storage scrub --json` over SCRUB_FILES (4) stored copies of a
# SIZE_MIB (1024) MiB upload on one fs backend, as GB/s of verified ciphertext (stored bytes / wall
# time of the command), against the disk's own read speed of the very same files (dd bs=1M to
# /dev/null). Target (issue 9): disk-bound, >= 1 GB/s on the fs backend here.
#
#   bench/scrub.sh               RUNS=3 SIZE_MIB=1024 SCRUB_FILES=4 by default
# Raw figures: bench/out/scrub.tsv; summary: bench/out/scrub.summary.md.
#
# The scrub runs as documented (docs/operations.md "Copies and the scrub"): the command, against
# the stopped server's data dir and config. Each run measures both page-cache states, each time
# the peer (dd) and the scrub in alternating order:
#   - warm: the files as the uploads left them, in the page cache (this machine has RAM to spare),
#     so neither reads the disk: the figure is the scrub's own speed;
#   - cold: each file evicted from the page cache first (`dd iflag=nocache count=0`:
#     posix_fadvise DONTNEED on that file alone, nothing else on the machine is dropped), so both
#     read the (virtual) disk. On a VM the host may still cache what the guest dropped; the dd peer
#     reads through the same layers, which is why the ratio, not the absolute figure, is the point.
# fincore (util-linux) reports how much of the files was cached at the start of each measurement.
# The wall time includes the command's start (opening the database and the backend, which writes
# and deletes a probe); `storage status` does the same start, and its time is reported beside.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRUB_FILES=${SCRUB_FILES:-4}

bench_ensure_tools
need_free_mib $((SIZE_MIB * (SCRUB_FILES + 1) + 512))

SRC_DIR=${BENCH_OUT}/src
mkdir -p "${SRC_DIR}"
FILE=${SRC_DIR}/upload.bin
make_random_file "${FILE}"
BYTES=$(stat -c %s "${FILE}")

build_strongroom
step "Storing ${SCRUB_FILES} x ${SIZE_MIB} MiB on an fs backend"
SR_CONFIG=${BENCH_OUT}/scrub.toml
BLOBS=$(sr_data_dir)/blobs
# The default backend (one fs backend at <data>/blobs), written out so the server's own scrub can
# be turned off: it must not run in the measured commands' place.
strongroom_storage_config "${SR_CONFIG}" 1 "disk=fs://${BLOBS}"
export STRONGROOM_CONFIG=${SR_CONFIG}
start_strongroom
for ((i = 1; i <= SCRUB_FILES; i++)); do
    read -r code speed body < <(sr_upload "${FILE}" "scrub-${i}.bin")
    [[ "${code}" == 201 ]] || die "upload ${i} answered ${code}: ${body}"
    note "upload ${i}: $(gbps "${speed}") GB/s"
done
step "Stopping the server (the scrub runs against its data dir)"
stop_strongroom
sync

mapfile -t OBJECTS < <(find "${BLOBS}/objects" -type f | sort)
((${#OBJECTS[@]} == SCRUB_FILES)) || die "expected ${SCRUB_FILES} blobs under ${BLOBS}/objects, found ${#OBJECTS[@]}"
STORED=$(stat -c %s "${OBJECTS[@]}" | awk '{ s += $1 } END { printf "%.0f\n", s }')
note "${#OBJECTS[@]} blobs, ${STORED} bytes of ciphertext (plaintext $((BYTES * SCRUB_FILES)))"

# cached_share: the share of the blob files' pages in the page cache now (0..1).
cached_share() {
    fincore --bytes --noheadings --output RES,SIZE "${OBJECTS[@]}" |
        awk '{ r += $1; s += $2 } END { printf "%.2f\n", s ? r / s : 0 }'
}

evict() {
    local f
    for f in "${OBJECTS[@]}"; do
        dd if="${f}" iflag=nocache count=0 status=none
    done
}

now() {
    date +%s.%N
}

# read_peer: dd of every blob file to /dev/null; prints "<seconds> <cpu s>".
read_peer() {
    local t0 t1 f
    TIMEFORMAT='%U %S'
    t0=$(now)
    {
        time {
            for f in "${OBJECTS[@]}"; do
                dd if="${f}" of=/dev/null bs=1M status=none
            done
        }
    } 2>"${BENCH_OUT}/scrub.time"
    t1=$(now)
    printf '%s %s\n' "$(awk -v s="${t0}" -v e="${t1}" 'BEGIN { printf "%.3f", e - s }')" \
        "$(awk '{ printf "%.2f", $1 + $2 }' "${BENCH_OUT}/scrub.time")"
}

# run_scrub: the command; prints "<seconds> <cpu s>" and checks its report.
run_scrub() {
    local t0 t1 out=${BENCH_OUT}/scrub.json checked bytes
    TIMEFORMAT='%U %S'
    t0=$(now)
    {
        time "${STRONGROOM_BIN}" storage scrub --json --data-dir "${SR_DATA}" \
            >"${out}" 2>"${BENCH_OUT}/scrub.stderr"
    } 2>"${BENCH_OUT}/scrub.time" || die "storage scrub failed: $(tail -n 3 "${BENCH_OUT}/scrub.stderr")"
    t1=$(now)
    checked=$(jq -r .checked "${out}") bytes=$(jq -r '.backends[0].bytes' "${out}")
    [[ "${checked}" == "${SCRUB_FILES}" && "${bytes}" == "${STORED}" &&
        "$(jq -r '.repaired + .unrecoverable' "${out}")" == 0 ]] ||
        die "the scrub did not verify every blob: $(cat "${out}")"
    printf '%s %s\n' "$(awk -v s="${t0}" -v e="${t1}" 'BEGIN { printf "%.3f", e - s }')" \
        "$(awk '{ printf "%.2f", $1 + $2 }' "${BENCH_OUT}/scrub.time")"
}

TSV=${BENCH_OUT}/scrub.tsv
printf 'time\tcache\twhat\trun\tbytes\tseconds\tcpu_s\tcached_share_before\tbytes_per_s\n' >"${TSV}"

# measure CACHE WHAT RUN
measure() {
    local cache=$1 what=$2 run=$3 share secs cpu speed line
    if [[ ${cache} == cold ]]; then evict; fi
    share=$(cached_share)
    if [[ ${what} == scrub ]]; then
        line=$(run_scrub)
        read -r secs cpu <<<"${line}"
    else
        line=$(read_peer)
        read -r secs cpu <<<"${line}"
    fi
    speed=$(awk -v b="${STORED}" -v t="${secs}" 'BEGIN { printf "%.0f", b / t }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Is)" "${cache}" "${what}" "${run}" \
        "${STORED}" "${secs}" "${cpu}" "${share}" "${speed}" >>"${TSV}"
    note "run ${run} ${cache} ${what}: $(gbps "${speed}") GB/s (${secs} s, CPU ${cpu} s, cached before: ${share})"
}

step "Start-up cost of a command on this data dir (storage status)"
TIMEFORMAT='%R'
{ time "${STRONGROOM_BIN}" storage status --json --data-dir "${SR_DATA}" >/dev/null; } 2>"${BENCH_OUT}/scrub.time"
STARTUP=$(cat "${BENCH_OUT}/scrub.time")
note "storage status: ${STARTUP} s"

step "Measuring: ${RUNS} runs, each warm then cold, scrub and dd in alternating order"
# Run 0 warms the page cache (and checks the command works); it is in the TSV, not in the medians.
measure warm scrub 0
for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then order=(dd scrub); else order=(scrub dd); fi
    for cache in warm cold; do
        for what in "${order[@]}"; do
            measure "${cache}" "${what}" "${run}"
        done
    done
done

# med CACHE WHAT COLUMN
med() {
    # shellcheck disable=SC2046 # one number per word
    median $(awk -F'\t' -v c="$1" -v w="$2" -v k="$3" '$2 == c && $3 == w && $4 != 0 { print $k }' "${TSV}")
}
cpu_gb() {
    awk -v c="$(med "$1" "$2" 7)" -v b="${STORED}" 'BEGIN { printf "%.3f", c / (b / 1e9) }'
}
ws=$(med warm scrub 9) wd=$(med warm dd 9) cs=$(med cold scrub 9) cd_=$(med cold dd 9)
warm_ratio=$(ratio "${ws}" "${wd}") cold_ratio=$(ratio "${cs}" "${cd_}")
cold_gbps=$(gbps "${cs}") warm_gbps=$(gbps "${ws}")

step "Scrub results"
raw_figures scrub scrub.tsv
report scrub \
    "### Scrub, ${SCRUB_FILES} x ${SIZE_MIB} MiB on one fs backend, median of ${RUNS}" \
    "" \
    "\`strongroom storage scrub --json\` against the stopped server's data dir (SQLite, ${SCRUB_FILES} blobs, ${STORED} bytes of ciphertext) vs \`dd bs=1M of=/dev/null\` of the same files. GB/s = stored bytes / wall time of the command (its start included: \`storage status\` on the same data dir takes ${STARTUP} s). Cold: the files evicted from the page cache first (posix_fadvise DONTNEED per file; a VM's host may still cache them)." \
    "" \
    "| page cache | what | GB/s | CPU s/GB |" \
    "|---|---|---|---|" \
    "| warm | dd | $(gbps "${wd}") | $(cpu_gb warm dd) |" \
    "| warm | scrub | ${warm_gbps} | $(cpu_gb warm scrub) |" \
    "| cold | dd | $(gbps "${cd_}") | $(cpu_gb cold dd) |" \
    "| cold | scrub | ${cold_gbps} | $(cpu_gb cold scrub) |" \
    "" \
    "- scrub, cold cache (reading the disk): **${cold_gbps} GB/s** of verified ciphertext (target >= 1 GB/s: $(verdict "${cold_gbps}" '>=' 1)); **${cold_ratio}x** the disk's own read speed (disk-bound: near 1.0)" \
    "- scrub, warm cache (no disk reads): **${warm_gbps} GB/s** (target >= 1 GB/s: $(verdict "${warm_gbps}" '>=' 1)); ${warm_ratio}x dd from the cache" \
    "- raw figures: bench/out/scrub.tsv"
