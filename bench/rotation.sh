#!/usr/bin/env bash
# Key rotation benchmark: seed ASSETS (100,000) small assets, then time `strongroom keys rotate`,
# which makes a new KEK and rewraps every data key. Target (DESIGN.md): < 10 s for 100k assets.
# Rotation never touches blob bytes, so asset size does not matter; the count does.
#
#   bench/rotation.sh            ASSETS=100000 ROTATIONS=3 by default
# Summary: bench/out/rotation.summary.md. The seed runs once (~2 minutes here); each rotation
# rewraps all ASSETS data keys, and the median of ROTATIONS runs is reported.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ASSETS=${ASSETS:-100000}
ROTATIONS=${ROTATIONS:-3}

bench_ensure_tools
build_strongroom
step "Building the seeding example"
(cd "${BENCH_ROOT}" && cargo build --release --locked -p strongroom --example seed)
SEED=${BENCH_ROOT}/target/release/examples/seed

DATA=${BENCH_OUT}/rotation-data
rm -rf "${DATA}"
step "Seeding ${ASSETS} assets"
"${SEED}" "${DATA}" "${ASSETS}"

step "Rotating ${ROTATIONS} times"
times=()
for i in $(seq 1 "${ROTATIONS}"); do
    start=$(date +%s.%N)
    "${STRONGROOM_BIN}" keys rotate --data-dir "${DATA}" --json >"${BENCH_OUT}/rotation-${i}.json" 2>/dev/null
    end=$(date +%s.%N)
    t=$(python3 -c "print(${end} - ${start})")
    rewrapped=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rewrapped"])' "${BENCH_OUT}/rotation-${i}.json")
    note "rotation ${i}: ${rewrapped} data keys rewrapped in $(printf '%.2f' "${t}") s"
    [[ "${rewrapped}" == "${ASSETS}" ]] || die "rotation ${i} rewrapped ${rewrapped}, expected ${ASSETS}"
    times+=("${t}")
done
median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
verdict=$(awk -v t="${median}" -v n="${ASSETS}" 'BEGIN { if (n >= 100000 && t < 10) print "meets target"; else if (n < 100000) print "smaller than the target size"; else print "MISSES target" }')
status=$("${STRONGROOM_BIN}" keys status --data-dir "${DATA}" --json)
rm -rf "${DATA}"

# Each rotation's own report (`keys rotate --json`); the times are in the summary.
mapfile -t rotation_files < <(seq -f 'rotation-%g.json' 1 "${ROTATIONS}")
raw_figures rotation "${rotation_files[@]}"
report rotation \
    "### Key rotation, ${ASSETS} assets (SQLite), median of ${ROTATIONS}" \
    "" \
    "- \`strongroom keys rotate\` (new KEK, every data key rewrapped, old KEK retired): **$(printf '%.2f' "${median}") s** (target < 10 s for 100k: ${verdict})" \
    "- key status after the last rotation: \`${status}\`"
