#!/usr/bin/env bash
# Encrypted HLS packaging benchmark: the wall-clock time strongroom-media takes to package a video
# as AES-128 encrypted HLS (ffprobe, then one ffmpeg run reading the source over the per-job
# loopback server and PUTting its outputs back, every segment encrypted in Rust, ciphertext
# written to a directory) against plain `ffmpeg -f hls` making the same ladder with the same
# settings from a local file into a local directory. Target (DESIGN.md): <= 1.1x.
#
#   bench/hls_packaging.sh            DURATION=30 RUNS=5 by default
#   bench/hls_packaging.sh --append   also appends a dated section to bench/RESULTS.md
#
# Both sides run the same argument list: the example prints the exact arguments the crate would
# use (`package args`), with local paths instead of loopback URLs and without the protocol and
# format whitelists; the crate side additionally runs under prlimit. One discarded warm-up of
# each, then RUNS pairs alternating which goes first; medians. CPU is user+sys of the process
# tree (GNU time). Summary: bench/out/hls_packaging.summary.md; raw: bench/out/hls_packaging.tsv.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-30}
RUNS=${RUNS:-5}
APPEND=0
if [[ "${1:-}" == "--append" ]]; then
    APPEND=1
    results_begin
fi

# ffmpeg/ffprobe, prlimit (util-linux), GNU time, jq for the example's JSON.
apt_ensure ffmpeg util-linux time jq

step "Building the packaging example (release)"
(cd "${BENCH_ROOT}" && cargo build --release --locked -p strongroom-media --example package)
PACKAGE=${BENCH_TARGET_DIR}/release/examples/package

INPUT=$(hls_test_input "${DURATION}")
INPUT_MIB=$(awk -v b="$(stat -c %s "${INPUT}")" 'BEGIN { printf "%.1f", b / 1048576 }')

PLAIN_DIR=${BENCH_OUT}/hls-plain
CRATE_DIR=${BENCH_OUT}/hls-crate
mapfile -d '' -t PLAIN_ARGS < <("${PACKAGE}" args "${INPUT}" "${PLAIN_DIR}")
((${#PLAIN_ARGS[@]} > 10)) || die "the example printed no ffmpeg arguments"

TIMES=${BENCH_OUT}/hls_packaging.time
# run_plain / run_crate: one packaging run each; print "wall cpu" (seconds).
run_plain() {
    rm -rf "${PLAIN_DIR}"
    /usr/bin/time -f '%e %U %S' -o "${TIMES}" ffmpeg "${PLAIN_ARGS[@]}" </dev/null ||
        die "plain ffmpeg failed"
    awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "${TIMES}"
}
run_crate() {
    rm -rf "${CRATE_DIR}"
    /usr/bin/time -f '%e %U %S' -o "${TIMES}" "${PACKAGE}" crate "${INPUT}" "${CRATE_DIR}" \
        >"${BENCH_OUT}/hls_packaging.crate.json" </dev/null || die "packaging through the crate failed"
    awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "${TIMES}"
}

step "Warm-up (discarded)"
run_plain >/dev/null
run_crate >/dev/null
# The two must have made the same ladder: as many segments per rung.
for rung in "${PLAIN_DIR}"/*/; do
    name=$(basename "${rung}")
    plain_n=$(find "${rung}" -name '*.ts' | wc -l)
    crate_n=$(find "${CRATE_DIR}/${name}" -name '*.ts' 2>/dev/null | wc -l)
    [[ "${plain_n}" -eq "${crate_n}" && "${plain_n}" -gt 0 ]] ||
        die "rung ${name}: plain made ${plain_n} segments, the crate ${crate_n}"
done
SEGMENTS=$(jq -r .segments "${BENCH_OUT}/hls_packaging.crate.json")
OUT_MIB=$(jq -r '.bytes / 1048576 * 10 | round / 10' "${BENCH_OUT}/hls_packaging.crate.json")

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TSV=${BENCH_OUT}/hls_packaging.tsv
printf 'run\tpackager\twall_s\tcpu_s\n' >"${TSV}"
plain_wall=() plain_cpu=() crate_wall=() crate_cpu=() crate_own=()
for i in $(seq 1 "${RUNS}"); do
    if ((i % 2)); then order=(plain crate); else order=(crate plain); fi
    for who in "${order[@]}"; do
        # An assignment, not `read < <(...)`: a failed run must stop the script (set -e).
        result=$("run_${who}")
        read -r wall cpu <<<"${result}"
        printf '%s\t%s\t%s\t%s\n' "${i}" "${who}" "${wall}" "${cpu}" >>"${TSV}"
        note "run ${i} ${who}: ${wall} s wall, ${cpu} s CPU"
        if [[ ${who} == plain ]]; then
            plain_wall+=("${wall}") plain_cpu+=("${cpu}")
        else
            crate_wall+=("${wall}") crate_cpu+=("${cpu}")
            # The example's own CPU (server, AES, sink), apart from ffprobe's and ffmpeg's.
            own=$(jq -r .own_cpu_ticks "${BENCH_OUT}/hls_packaging.crate.json")
            crate_own+=("$(awk -v t="${own}" -v hz="${CLK_TCK}" 'BEGIN { printf "%.2f", t / hz }')")
        fi
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "${PLAIN_DIR}" "${CRATE_DIR}" "${TIMES}"

pw=$(median "${plain_wall[@]}") pc=$(median "${plain_cpu[@]}")
cw=$(median "${crate_wall[@]}") cc=$(median "${crate_cpu[@]}")
co=$(median "${crate_own[@]}")
# min-max of a list, to show how much the machine's other load moved single runs.
spread() {
    printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f-%.1f", lo, hi }'
}
wall_ratio=$(ratio "${cw}" "${pw}")
cpu_ratio=$(ratio "${cc}" "${pc}")

raw_figures hls_packaging hls_packaging.tsv hls_packaging.crate.json
report hls_packaging \
    "### Encrypted HLS packaging, ${DURATION} s 1280x720 25 fps H.264/AAC (${INPUT_MIB} MiB), median of ${RUNS}" \
    "" \
    "Ladder 360p (800 kbit/s) + 720p (2800 kbit/s), x264 \`veryfast\`, AAC, 4 s MPEG-TS segments (${SEGMENTS} in all), threads 2, one ffmpeg run each." \
    "" \
    "| packager | wall s | wall min-max | CPU s (user+sys) | CPU min-max |" \
    "|---|---|---|---|---|" \
    "| plain \`ffmpeg -f hls\` (local file in, plain segments out) | $(fmt3 "${pw}") | $(spread "${plain_wall[@]}") | $(fmt3 "${pc}") | $(spread "${plain_cpu[@]}") |" \
    "| strongroom-media (loopback HTTP in and out, prlimit, AES-128 segments) | $(fmt3 "${cw}") | $(spread "${crate_wall[@]}") | $(fmt3 "${cc}") | $(spread "${crate_cpu[@]}") |" \
    "" \
    "- wall-clock ratio strongroom-media/plain: **${wall_ratio}** (target <= 1.1: $(verdict "${wall_ratio}" "<=" 1.1))" \
    "- CPU ratio strongroom-media/plain: ${cpu_ratio}; of the crate's CPU, $(fmt3 "${co}") s is the Rust process itself (loopback server, AES-128-CBC of ${OUT_MIB} MiB of segments, writing them), the rest ffprobe and ffmpeg" \
    "- load average (1/5/15 min) before: ${LOAD_BEFORE}, after: ${LOAD_AFTER}; 2 cores shared with anything else running" \
    "- raw figures: bench/out/hls_packaging.tsv"

if ((APPEND)); then
    results_append_alone hls_packaging \
        "machine: $(machine_line); $(ffmpeg -version | head -n 1 | cut -d' ' -f1-3)"
fi
