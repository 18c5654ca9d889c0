#!/usr/bin/env bash
# Small-request benchmark: many keep-alive requests for a 10 KiB asset, on SQLite and on
# PostgreSQL, against nginx serving the same 10 KiB file. Targets (DESIGN.md "Performance
# targets", issue 8): the metadata GET >= 0.3x nginx's req/s with p99 < 10 ms; the content GET of
# the 10 KiB asset >= 0.2x with p99 < 20 ms; on both databases.
#
#   bench/small_requests.sh            SECONDS_PER_RUN=15 CONNECTIONS=32 WRK_THREADS=1 RUNS=3
#   bench/small_requests.sh --append   also appends a dated section to bench/RESULTS.md, with
#                                      the raw figures in bench/results/ (from a clean commit)
#
# For each backend (BACKENDS="sqlite postgres"), a fresh server (PostgreSQL: a fresh database in
# the cluster of scripts/postgres.sh) is bootstrapped and given one ASSET_BYTES (10240) random
# asset; then wrk (THREADS threads, CONNECTIONS keep-alive TLS 1.3 connections, HTTP/1.1) runs
# SECONDS_PER_RUN against
#   (a) nginx: GET /<file>, the same bytes as a static file;
#   (b) Strongroom: GET /api/v1/assets/{id} with the API key (the asset's metadata, JSON);
#   (c) Strongroom: GET /api/v1/assets/{id}/content with the API key (the 10 KiB, decrypted).
# One discarded warm-up run of WARMUP_SECONDS each, then RUNS rounds, the order of the three
# rotating each round; medians per target. Recorded per run: req/s, wrk's latency percentiles,
# server CPU per request (utime+stime from /proc, nginx: master and workers; PostgreSQL's
# backends of the benchmark database apart), non-2xx answers and socket errors. wrk's log:
# bench/out/small_requests.wrk.log; raw figures: bench/out/small_requests.tsv; summary:
# bench/out/small_requests.summary.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Not SECONDS: bash's own SECONDS counts the shell's running time.
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
ASSET_BYTES=${ASSET_BYTES:-10240}
BACKENDS=${BACKENDS:-sqlite postgres}
APPEND=0
if [[ "${1:-}" == "--append" ]]; then
    APPEND=1
    results_begin
fi

bench_ensure_tools
build_strongroom

WWW=${BENCH_OUT}/www-small
mkdir -p "${WWW}"
FILE=${WWW}/asset.bin
if [[ ! -f "${FILE}" || "$(stat -c %s "${FILE}")" -ne ${ASSET_BYTES} ]]; then
    head -c "${ASSET_BYTES}" /dev/urandom >"${FILE}"
fi

# Requests per connection are unlimited on Strongroom; nginx's default (1000) would make wrk
# reconnect, and pay a TLS handshake, every few hundred milliseconds.
NGINX_HTTP_EXTRA="keepalive_requests 1000000; keepalive_timeout 75s;"
step "Starting nginx"
start_nginx "${WWW}"

TSV=${BENCH_OUT}/small_requests.tsv
WRK_LOG=${BENCH_OUT}/small_requests.wrk.log
WRK_JSON=${BENCH_OUT}/small_requests.wrk.json
: >"${WRK_LOG}"
printf 'time\tbackend\ttarget\trun\tseconds\trequests\treq_per_s\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tnon_2xx\tsocket_errors\tbytes_per_response\tserver_cpu_s\tserver_cpu_ms_per_req\tdb_cpu_s\tdb_cpu_ms_per_req\tmachine_busy\n' >"${TSV}"

# ---------------------------------------------------------------------------------------------
# PostgreSQL

PG_DIR=${STRONGROOM_PG_DIR:-/tmp/strongroom-pg-${UID}}
PG_DB=strongroom_bench_small
PG_ADMIN_URL=""

pg_drop_database() {
    [[ -n "${PG_ADMIN_URL}" ]] || return 0
    psql -q -X "${PG_ADMIN_URL}" -c "DROP DATABASE IF EXISTS ${PG_DB} WITH (FORCE)" >/dev/null 2>&1 || true
}
BENCH_EXIT_HOOKS+=(pg_drop_database)

# Prints the CPU seconds used so far by the PostgreSQL backends serving the benchmark database
# (their titles name it: "postgres: USER DB ADDRESS STATE"), or nothing when that cannot be read.
pg_cpu_seconds() {
    local postmaster pid cmd rest fields ticks=0
    { read -r postmaster <"${PG_DIR}/data/postmaster.pid"; } 2>/dev/null || return 0
    while read -r pid; do
        cmd=""
        { read -r -d '' cmd <"/proc/${pid}/cmdline"; } 2>/dev/null || true
        [[ "${cmd}" == *" ${PG_DB} "* ]] || continue
        { read -r rest <"/proc/${pid}/stat"; } 2>/dev/null || continue
        read -ra fields <<<"${rest##*) }"
        ticks=$((ticks + fields[11] + fields[12]))
    done < <(proc_tree "${postmaster}")
    awk -v t="${ticks}" -v hz="${CLK_TCK}" 'BEGIN { printf "%.2f\n", t / hz }'
}

# ---------------------------------------------------------------------------------------------
# Measuring

# The machine's busy and total jiffies so far (all CPUs, /proc/stat), as "busy total".
machine_jiffies() {
    local cpu user nice system idle iowait irq softirq steal rest
    read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
    printf '%s %s\n' "$((user + nice + system + irq + softirq + steal))" \
        "$((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# measure BACKEND TARGET RUN: one measured run of TARGET (nginx, metadata, content); appends a
# TSV row and records the figures for the medians.
measure() {
    local backend=$1 target=$2 run=$3 pid=${SR_PID} url args=(-H "${AUTH}") cpu0 cpu1 db0="" db1="" db=""
    local m0 m1 row f
    case "${target}" in
        nginx)
            pid=${NGINX_PID}
            url=${NGINX_URL}/asset.bin
            args=()
            ;;
        metadata) url=${SR_URL}/api/v1/assets/${ASSET} ;;
        content) url=${SR_URL}/api/v1/assets/${ASSET}/content ;;
    esac
    # The database's CPU counts for Strongroom's targets; SQLite's is inside the server process.
    local with_db=0
    [[ "${backend}" != postgres || "${target}" == nginx ]] || with_db=1
    cpu0=$(cpu_seconds "${pid}")
    ((!with_db)) || db0=$(pg_cpu_seconds)
    m0=$(machine_jiffies)
    wrk_run "${SECONDS_PER_RUN}" "${url}" "${args[@]}"
    m1=$(machine_jiffies)
    cpu1=$(cpu_seconds "${pid}")
    ((!with_db)) || db1=$(pg_cpu_seconds)
    if [[ -n "${db0}" && -n "${db1}" ]]; then
        db=$(awk -v a="${db0}" -v b="${db1}" 'BEGIN { printf "%.2f", b - a }')
    fi
    row=$(jq -r --arg time "$(date -Is)" --arg backend "${backend}" --arg target "${target}" \
        --arg run "${run}" --arg cpu "$(awk -v a="${cpu0}" -v b="${cpu1}" 'BEGIN { printf "%.2f", b - a }')" \
        --arg db "${db}" \
        --arg busy "$(awk -v a="${m0}" -v b="${m1}" 'BEGIN { split(a, x, " "); split(b, y, " ");
            t = y[2] - x[2]; if (t > 0) printf "%.2f", (y[1] - x[1]) / t; else print "nan" }')" '
        def r3: . * 1000 | round / 1000;
        (.duration_us / 1e6) as $s
        | [$time, $backend, $target, $run, ($s | r3), .requests, (.requests / $s | r3),
           (.latency_us.p50 / 1000 | r3), (.latency_us.p90 / 1000 | r3), (.latency_us.p99 / 1000 | r3),
           (.latency_us.max / 1000 | r3), .errors.status,
           (.errors.connect + .errors.read + .errors.write + .errors.timeout),
           (if .requests > 0 then .bytes / .requests | round else 0 end),
           $cpu, (if .requests > 0 then ($cpu | tonumber) * 1000 / .requests | . * 10000 | round / 10000 else "nan" end),
           (if $db == "" then "n/a" else $db end),
           (if $db == "" then "n/a" elif .requests > 0 then ($db | tonumber) * 1000 / .requests | . * 10000 | round / 10000 else "nan" end),
           $busy]
        | map(tostring) | join("\t")' "${WRK_JSON}")
    printf '%s\n' "${row}" >>"${TSV}"
    IFS=$'\t' read -ra f <<<"${row}"
    note "${backend} ${target} run ${run}: ${f[6]} req/s, p99 ${f[9]} ms, server CPU ${f[15]} ms/req, db CPU ${f[17]} ms/req, non-2xx ${f[11]}, socket errors ${f[12]}, machine ${f[18]} busy"
    ((f[11] == 0)) || die "${target} answered ${f[11]} requests with a status other than 2xx; see ${WRK_LOG}"
}

# ---------------------------------------------------------------------------------------------
# The runs

for backend in ${BACKENDS}; do
    step "Backend: ${backend}"
    case "${backend}" in
        sqlite) unset STRONGROOM_DATABASE_URL ;;
        postgres)
            PG_URL=$("${BENCH_ROOT}/scripts/postgres.sh" start)
            PG_ADMIN_URL=${PG_URL}
            pg_drop_database
            psql -q -X "${PG_ADMIN_URL}" -c "CREATE DATABASE ${PG_DB}" >/dev/null ||
                die "could not create the benchmark database"
            export STRONGROOM_DATABASE_URL=${PG_URL%/*}/${PG_DB}
            ;;
        *) die "unknown backend ${backend} (BACKENDS: sqlite postgres)" ;;
    esac
    start_strongroom
    AUTH="Authorization: Bearer ${SR_KEY}"

    read -r code _ body < <(sr_upload "${FILE}" asset.bin)
    [[ "${code}" == 201 ]] || die "upload answered ${code}: ${body}"
    ASSET=$(jq -er .id <<<"${body}")
    # What wrk will ask for must answer 200 with the right bytes, before anything is timed.
    sr_api GET "/api/v1/assets/${ASSET}/content" -o "${BENCH_OUT}/small_requests.check"
    cmp -s "${FILE}" "${BENCH_OUT}/small_requests.check" || die "the content GET returned other bytes"
    [[ "$(sr_api GET "/api/v1/assets/${ASSET}" | jq -r .id)" == "${ASSET}" ]] ||
        die "the metadata GET did not return the asset"
    curl -sSkf "${NGINX_URL}/asset.bin" -o "${BENCH_OUT}/small_requests.check"
    cmp -s "${FILE}" "${BENCH_OUT}/small_requests.check" || die "nginx returned other bytes"
    note "asset ${ASSET} (${ASSET_BYTES} bytes)"

    step "${backend}: warm-up, ${WARMUP_SECONDS} s each (discarded)"
    wrk_run "${WARMUP_SECONDS}" "${NGINX_URL}/asset.bin"
    wrk_run "${WARMUP_SECONDS}" "${SR_URL}/api/v1/assets/${ASSET}" -H "${AUTH}"
    wrk_run "${WARMUP_SECONDS}" "${SR_URL}/api/v1/assets/${ASSET}/content" -H "${AUTH}"

    step "${backend}: ${RUNS} rounds of ${SECONDS_PER_RUN} s per target"
    targets=(nginx metadata content)
    for ((run = 1; run <= RUNS; run++)); do
        # Rotate the order, so that no target always follows the same one.
        for ((i = 0; i < 3; i++)); do
            measure "${backend}" "${targets[(run - 1 + i) % 3]}" "${run}"
        done
    done
    kill -0 "${SR_PID}" 2>/dev/null || die "Strongroom died during the runs; see ${BENCH_OUT}/strongroom.log"
    stop_strongroom
    if [[ "${backend}" == postgres ]]; then
        pg_drop_database
        unset STRONGROOM_DATABASE_URL
    fi
done
rm -f "${BENCH_OUT}/small_requests.check" "${WRK_JSON}"

# ---------------------------------------------------------------------------------------------
# Summary

# med BACKEND TARGET COLUMN [DECIMALS]: the median of a TSV column (1-based) over the runs.
med() {
    local values
    mapfile -t values < <(awk -F'\t' -v b="$1" -v t="$2" -v c="$3" \
        'NR > 1 && $2 == b && $3 == t && $c != "n/a" { print $c }' "${TSV}")
    if ((${#values[@]} == 0)); then
        echo "n/a"
    else
        awk -v v="$(median "${values[@]}")" -v d="${4:-3}" 'BEGIN { printf("%." d "f\n", v) }'
    fi
}
# errors BACKEND TARGET: non-2xx answers plus socket errors, over all runs.
errors() {
    awk -F'\t' -v b="$1" -v t="$2" 'NR > 1 && $2 == b && $3 == t { n += $12 + $13 } END { print n + 0 }' "${TSV}"
}

lines=()
headline=()
for backend in ${BACKENDS}; do
    ng_rps=$(med "${backend}" nginx 7)
    lines+=("" "#### ${backend}" "" \
        "| target | req/s | p50 ms | p99 ms | max ms | server CPU ms/req | database CPU ms/req | req/s vs nginx | machine busy | errors |" \
        "|---|---|---|---|---|---|---|---|---|---|")
    for target in nginx metadata content; do
        rps=$(med "${backend}" "${target}" 7)
        case "${target}" in
            nginx) label="nginx, \`GET /asset.bin\` (static file)" ;;
            metadata) label="Strongroom, \`GET /api/v1/assets/{id}\` (API key)" ;;
            content) label="Strongroom, \`GET /api/v1/assets/{id}/content\` (API key)" ;;
        esac
        r=""
        [[ "${target}" == nginx ]] || r=$(ratio "${rps}" "${ng_rps}")
        lines+=("| ${label} | ${rps} | $(med "${backend}" "${target}" 8) | $(med "${backend}" "${target}" 10) | $(med "${backend}" "${target}" 11) | $(med "${backend}" "${target}" 16 4) | $(med "${backend}" "${target}" 18 4) | ${r} | $(med "${backend}" "${target}" 19 2) | $(errors "${backend}" "${target}") |")
    done
    meta_ratio=$(ratio "$(med "${backend}" metadata 7)" "${ng_rps}")
    meta_p99=$(med "${backend}" metadata 10)
    content_ratio=$(ratio "$(med "${backend}" content 7)" "${ng_rps}")
    content_p99=$(med "${backend}" content 10)
    headline+=("- ${backend}: metadata GET **${meta_ratio}x** nginx (target >= 0.3: $(verdict "${meta_ratio}" '>=' 0.3)), p99 **${meta_p99} ms** (target < 10: $(verdict "${meta_p99}" '<' 10)); 10 KiB content GET **${content_ratio}x** (target >= 0.2: $(verdict "${content_ratio}" '>=' 0.2)), p99 **${content_p99} ms** (target < 20: $(verdict "${content_p99}" '<' 20))")
done

raw_figures small_requests small_requests.tsv small_requests.wrk.log
step "Small-request results"
report small_requests \
    "### Small requests, ${ASSET_BYTES}-byte asset, wrk ${WRK_THREADS} thread(s) x ${CONNECTIONS} keep-alive connections, ${SECONDS_PER_RUN} s, median of ${RUNS}" \
    "" \
    "Client: $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2) (OpenSSL, TLS 1.3, HTTP/1.1, certificate checks off), on the same machine, \`--timeout 30s\`. nginx: \`keepalive_requests 1000000\`, \`sendfile on\`, \`worker_processes auto\`, access log off. Strongroom: a fresh instance per database, default settings. Latency: wrk's, request written to response read. Server CPU: utime+stime of the server process (nginx: master and workers) across the run, per request; database CPU: the PostgreSQL backends serving the benchmark database (SQLite runs inside the server). Machine busy: share of all CPU time in use during the run, from /proc/stat." \
    "" \
    "${headline[@]}" \
    "${lines[@]}" \
    "" \
    "- load average (1/5/15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores shared by the servers, the database and wrk" \
    "- raw figures: bench/out/small_requests.tsv (every run), bench/out/small_requests.wrk.log (wrk's output)"

if ((APPEND)); then
    results_append_alone small_requests "machine: $(machine_line); nginx $(nginx -v 2>&1 | sed 's|.*/||'); PostgreSQL $(psql -X -A -t "$("${BENCH_ROOT}/scripts/postgres.sh" url)" -c 'SHOW server_version' 2>/dev/null || echo "n/a")"
fi
