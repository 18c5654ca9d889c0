#!/usr/bin/env bash
# Sealing A/B (issue 11: "metadata sealing costs <= 10% on the small-request benchmark"): two
# server binaries, one built before sealed metadata and one with it, measured in one sitting on
# bench/small_requests.sh's two Strongroom requests (`GET /api/v1/assets/{id}` and the 10 KiB
# content GET, API key, wrk over HTTPS keep-alive), round by round. Two separate sittings could
# not settle it: nginx's own rate moved by more than 10% between runs minutes apart.
#
#   SR_BIN_BEFORE=/path/to/strongroom SR_BIN_AFTER=/path/to/strongroom bench/sealing_ab.sh [--append]
#   LABEL_BEFORE / LABEL_AFTER name the binaries in the report (default: their file names);
#   RUNS (rounds, default 5), SECONDS_PER_RUN (15), WARMUP_SECONDS (3), CONNECTIONS (32),
#   WRK_THREADS (1), ASSET_BYTES (10240), BACKENDS ("sqlite postgres").
#
# How it is measured: for each database, both servers run side by side (fresh data dirs; on
# PostgreSQL a database each), each with one 10 KiB asset. Every round measures each request on
# both binaries back to back, the order swapped from one round to the next, so drift in the
# machine falls on both alike. Reported per database and request: each binary's median req/s,
# p99 and server CPU per request, and the median over rounds of after/before req/s (the pairs
# measured minutes apart at most). Target: after/before >= 0.9.
# Raw figures: bench/out/sealing_ab.tsv (every run), bench/out/sealing_ab.wrk.log (wrk's output).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -x "${SR_BIN_BEFORE:-}" && -x "${SR_BIN_AFTER:-}" ]] ||
    die "set SR_BIN_BEFORE and SR_BIN_AFTER to two strongroom binaries (before and with sealed metadata)"
LABEL_BEFORE=${LABEL_BEFORE:-$(basename "${SR_BIN_BEFORE}")}
LABEL_AFTER=${LABEL_AFTER:-$(basename "${SR_BIN_AFTER}")}
RUNS=${AB_RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
ASSET_BYTES=${ASSET_BYTES:-10240}
BACKENDS=${BACKENDS:-sqlite postgres}
APPEND=0
if [[ "${1:-}" == "--append" ]]; then
    APPEND=1
    STRONGROOM_PREBUILT=0 results_begin
    RESULTS_COMMIT="${RESULTS_COMMIT}; server binaries ${SR_BIN_BEFORE} (${LABEL_BEFORE}) and ${SR_BIN_AFTER} (${LABEL_AFTER}), not built here"
fi
# Neither binary is built from this checkout: the heading says which binaries ran.
STRONGROOM_PREBUILT=1
bench_ensure_tools

FILE=${BENCH_OUT}/sealing_ab.asset
head -c "${ASSET_BYTES}" /dev/urandom >"${FILE}"
TSV=${BENCH_OUT}/sealing_ab.tsv
WRK_LOG=${BENCH_OUT}/sealing_ab.wrk.log
WRK_JSON=${BENCH_OUT}/sealing_ab.wrk.json
: >"${WRK_LOG}"
printf 'time\tbackend\tbinary\ttarget\trun\treq_per_s\tp50_ms\tp99_ms\tnon_2xx\tsocket_errors\tserver_cpu_ms_per_req\n' >"${TSV}"

PG_DBS=()
pg_drop_databases() {
    local db
    for db in "${PG_DBS[@]}"; do
        psql -q -X "${PG_ADMIN_URL}" -c "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
BENCH_EXIT_HOOKS+=(pg_drop_databases)

declare -A PID URL KEY ASSET
# start_instance WHICH BIN BACKEND: a server of BIN (WHICH: before or after) on BACKEND with one
# asset, its bytes checked.
start_instance() {
    local which=$1 bin=$2 backend=$3 db code body
    unset STRONGROOM_DATABASE_URL
    if [[ "${backend}" == postgres ]]; then
        db=strongroom_bench_ab_${which}
        PG_DBS+=("${db}")
        psql -q -X "${PG_ADMIN_URL}" -c "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" >/dev/null
        psql -q -X "${PG_ADMIN_URL}" -c "CREATE DATABASE ${db}" >/dev/null ||
            die "could not create the database ${db}"
        export STRONGROOM_DATABASE_URL=${PG_ADMIN_URL%/*}/${db}
    fi
    SR_INSTANCE=${which} STRONGROOM_BIN=${bin}
    start_strongroom
    read -r code _ body < <(sr_upload "${FILE}" asset.bin)
    [[ "${code}" == 201 ]] || die "upload to ${which} answered ${code}: ${body}"
    ASSET[${which}]=$(jq -er .id <<<"${body}")
    sr_api GET "/api/v1/assets/${ASSET[${which}]}/content" -o "${BENCH_OUT}/sealing_ab.check"
    cmp -s "${FILE}" "${BENCH_OUT}/sealing_ab.check" || die "${which}: the content GET returned other bytes"
    PID[${which}]=${SR_PID} URL[${which}]=${SR_URL} KEY[${which}]=${SR_KEY}
    unset STRONGROOM_DATABASE_URL SR_INSTANCE
}

target_url() {
    local which=$1 target=$2
    case "${target}" in
        metadata) printf '%s\n' "${URL[${which}]}/api/v1/assets/${ASSET[${which}]}" ;;
        content) printf '%s\n' "${URL[${which}]}/api/v1/assets/${ASSET[${which}]}/content" ;;
    esac
}

# measure BACKEND WHICH TARGET RUN: one measured run; appends a row to TSV.
measure() {
    local backend=$1 which=$2 target=$3 run=$4 cpu0 cpu1 row f
    cpu0=$(cpu_seconds "${PID[${which}]}")
    wrk_run "${SECONDS_PER_RUN}" "$(target_url "${which}" "${target}")" \
        -H "Authorization: Bearer ${KEY[${which}]}"
    cpu1=$(cpu_seconds "${PID[${which}]}")
    row=$(jq -r --arg time "$(date -Is)" --arg backend "${backend}" --arg which "${which}" \
        --arg target "${target}" --arg run "${run}" \
        --arg cpu "$(awk -v a="${cpu0}" -v b="${cpu1}" 'BEGIN { printf "%.3f", b - a }')" '
        def r3: . * 1000 | round / 1000;
        (.duration_us / 1e6) as $s
        | [$time, $backend, $which, $target, $run, (.requests / $s | r3),
           (.latency_us.p50 / 1000 | r3), (.latency_us.p99 / 1000 | r3), .errors.status,
           (.errors.connect + .errors.read + .errors.write + .errors.timeout),
           (if .requests > 0 then ($cpu | tonumber) * 1000 / .requests | . * 10000 | round / 10000 else "nan" end)]
        | map(tostring) | join("\t")' "${WRK_JSON}")
    printf '%s\n' "${row}" >>"${TSV}"
    IFS=$'\t' read -ra f <<<"${row}"
    note "${backend} ${target} ${which} run ${run}: ${f[5]} req/s, p99 ${f[7]} ms, server CPU ${f[10]} ms/req"
    ((f[8] == 0 && f[9] == 0)) || die "${which} ${target}: ${f[8]} non-2xx answers, ${f[9]} socket errors; see ${WRK_LOG}"
}

for backend in ${BACKENDS}; do
    step "Backend: ${backend}"
    if [[ "${backend}" == postgres ]]; then
        PG_ADMIN_URL=$("${BENCH_ROOT}/scripts/postgres.sh" start)
    fi
    start_instance before "${SR_BIN_BEFORE}" "${backend}"
    start_instance after "${SR_BIN_AFTER}" "${backend}"
    note "before: ${LABEL_BEFORE} (pid ${PID[before]}); after: ${LABEL_AFTER} (pid ${PID[after]})"

    step "${backend}: warm-up, ${WARMUP_SECONDS} s each (discarded)"
    for which in before after; do
        for target in metadata content; do
            wrk_run "${WARMUP_SECONDS}" "$(target_url "${which}" "${target}")" \
                -H "Authorization: Bearer ${KEY[${which}]}"
        done
    done

    step "${backend}: ${RUNS} rounds; each request on both binaries back to back"
    for ((run = 1; run <= RUNS; run++)); do
        order=(before after)
        ((run % 2)) || order=(after before)
        for target in metadata content; do
            for which in "${order[@]}"; do
                measure "${backend}" "${which}" "${target}" "${run}"
            done
        done
    done
    for which in before after; do
        kill -0 "${PID[${which}]}" 2>/dev/null || die "the ${which} server died during the runs"
        SR_PID=${PID[${which}]}
        stop_strongroom
    done
done
rm -f "${BENCH_OUT}/sealing_ab.check" "${WRK_JSON}" "${FILE}"

# med BACKEND WHICH TARGET COLUMN: the median of a TSV column (1-based) over the rounds.
med() {
    # shellcheck disable=SC2046 # one number per word
    median $(awk -F'\t' -v b="$1" -v w="$2" -v t="$3" -v c="$4" \
        'NR > 1 && $2 == b && $3 == w && $4 == t { print $c }' "${TSV}")
}
# pair_ratios BACKEND TARGET: after/before req/s of each round, one per line.
pair_ratios() {
    awk -F'\t' -v b="$1" -v t="$2" 'NR > 1 && $2 == b && $4 == t { r[$5, $3] = $6; runs[$5] = 1 }
        END { for (n in runs) if (r[n, "before"] > 0) printf "%.3f\n", r[n, "after"] / r[n, "before"] }' "${TSV}" | sort -n
}

lines=("| database | request | ${LABEL_BEFORE} req/s | ${LABEL_AFTER} req/s | p99 ms before / after | server CPU ms/req before / after | after/before, each round | after/before, median of rounds |" \
    "|---|---|---|---|---|---|---|---|")
headline=()
for backend in ${BACKENDS}; do
    for target in metadata content; do
        mapfile -t ratios < <(pair_ratios "${backend}" "${target}")
        # shellcheck disable=SC2046 # one number per word
        mid=$(awk -v v="$(median "${ratios[@]}")" 'BEGIN { printf "%.3f", v }')
        case "${target}" in
            metadata) label="\`GET /api/v1/assets/{id}\`" ;;
            content) label="10 KiB \`GET /api/v1/assets/{id}/content\`" ;;
        esac
        lines+=("| ${backend} | ${label} | $(med "${backend}" before "${target}" 6) | $(med "${backend}" after "${target}" 6) | $(med "${backend}" before "${target}" 8) / $(med "${backend}" after "${target}" 8) | $(med "${backend}" before "${target}" 11) / $(med "${backend}" after "${target}" 11) | ${ratios[*]} | ${mid} |")
        headline+=("- ${backend}, ${target} GET: after/before **${mid}x** (target >= 0.9, a cost of at most 10%: $(verdict "${mid}" '>=' 0.9))")
    done
done

step "Sealing A/B results"
raw_figures sealing_ab sealing_ab.tsv sealing_ab.wrk.log
report sealing_ab \
    "### Sealed metadata A/B: ${LABEL_BEFORE} (before) and ${LABEL_AFTER} (after), ${ASSET_BYTES}-byte asset, wrk ${WRK_THREADS} thread(s) x ${CONNECTIONS} connections, ${SECONDS_PER_RUN} s per run, ${RUNS} rounds" \
    "" \
    "Both servers side by side (fresh data dirs; on PostgreSQL a database each), default settings, API key, HTTPS keep-alive, wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}') on the same machine. Each round measures each request on both binaries back to back, the order swapped every round; the ratio is after/before req/s of the same round." \
    "" \
    "${lines[@]}" \
    "" \
    "${headline[@]}" \
    "- raw figures: bench/out/sealing_ab.tsv (every run), bench/out/sealing_ab.wrk.log (wrk's output)"

if ((APPEND)); then
    results_append_alone sealing_ab "machine: $(machine_line); PostgreSQL $(psql -X -A -t "$("${BENCH_ROOT}/scripts/postgres.sh" url)" -c 'SHOW server_version' 2>/dev/null || echo "n/a")"
fi
