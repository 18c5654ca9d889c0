#!/usr/bin/env bash
# Login flood benchmark: the p99 latency of an API-key GET (/api/v1/me, one keep-alive connection,
# one request in flight) while 200 concurrent tasks send wrong-password logins, as a ratio against
# the same GET with no flood. Target (DESIGN.md): a login flood must not move other endpoints' p99
# more than 2x, i.e. ratio <= 2.0.
#
#   bench/login_flood.sh            SECONDS_PER_PHASE=15 CONCURRENCY=200 by default
#   bench/login_flood.sh --append   also appends a dated section to bench/RESULTS.md, with the
#                                   raw figures in bench/results/ (from a clean commit)
#
# Three phases (crates/strongroom/examples/login_flood.rs): baseline; a flood of fresh
# non-existent emails (the headline: each attempt costs a full Argon2id check against the decoy
# hash); a flood against the bootstrap account alone (captcha after a few failures, so mostly
# cheap 428 refusals). Flood clients are spread over 127.0.0.2..=127.0.0.254 so the per-address
# limit does not turn the flood into 429s. Summary: bench/out/login_flood.summary.md; the
# generator's JSON: bench/out/login_flood.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Not SECONDS: bash's own SECONDS counts the shell's running time.
SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-15}
CONCURRENCY=${CONCURRENCY:-200}
APPEND=0
if [[ "${1:-}" == "--append" ]]; then
    APPEND=1
    results_begin
fi

bench_ensure_tools
build_strongroom
step "Building the login flood generator"
(cd "${BENCH_ROOT}" && cargo build --release --locked -p strongroom --example login_flood)
FLOOD=${BENCH_ROOT}/target/release/examples/login_flood

start_strongroom

# Anything else running (builds, tests) competes for the same cores: record how busy it was.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

JSON=${BENCH_OUT}/login_flood.json
step "Login flood: baseline, distinct-email flood, same-email flood (${SECONDS_PER_PHASE} s each)"
"${FLOOD}" --url "${SR_URL}" --ca "${SR_DATA}/tls/cert.pem" --key "${SR_KEY}" \
    --email bench@example.com --seconds "${SECONDS_PER_PHASE}" --concurrency "${CONCURRENCY}" \
    --server-pid "${SR_PID}" --clk-tck "${CLK_TCK}" >"${JSON}"
kill -0 "${SR_PID}" 2>/dev/null || die "Strongroom died during the flood; see ${BENCH_OUT}/strongroom.log"

# jq helpers over the generator's output.
j() { jq -er "$1" "${JSON}"; }
# status counts of a flood as "401: n, 428: n, ..."
statuses() {
    jq -er --arg f "$1" '.floods[$f].flood.status | to_entries
        | map("\(.key): \(.value)") | join(", ") | if . == "" then "none" else . end' "${JSON}"
}
flood_lines() {
    local f=$1 label=$2 ratio
    ratio=$(j ".floods.${f}.p99_ratio")
    printf '%s\n' \
        "| ${label} | $(j ".floods.${f}.get.p50_ms") | $(j ".floods.${f}.get.p99_ms") | $(j ".floods.${f}.get.max_ms") | $(j ".floods.${f}.get.requests") | **$(fmt3 "${ratio}")** ($(verdict "${ratio}" "<=" 2.0)) |"
}
flood_detail() {
    local f=$1 label=$2
    printf '%s\n' "- ${label}: $(j ".floods.${f}.flood.answers") answers in $(j ".floods.${f}.flood.seconds") s (status $(statuses "${f}"); $(j ".floods.${f}.flood.transport_errors") transport errors), $(j ".floods.${f}.flood.password_checks_per_s") password checks/s, login p50 $(j ".floods.${f}.flood.login_p50_ms") ms / p99 $(j ".floods.${f}.flood.login_p99_ms") ms; CPU in the window: server $(j ".floods.${f}.get.server_cpu_cores") cores, generator $(j ".floods.${f}.get.generator_cpu_cores") cores, machine $(j "(.floods.${f}.get.machine_cpu_busy * 100 | round)")% busy"
}

raw_figures login_flood login_flood.json
report login_flood \
    "### Login flood, ${CONCURRENCY} concurrent wrong-password logins" \
    "" \
    "Probe: \`GET /api/v1/me\` with the API key, one keep-alive connection ($(j .probe_http_version)), one request in flight, ${SECONDS_PER_PHASE} s per phase; flood clients spread over $(j .floods.distinct_emails.flood.source_addresses) loopback addresses." \
    "" \
    "| phase | GET p50 ms | GET p99 ms | GET max ms | GETs | p99 ratio vs baseline (target <= 2.0) |" \
    "|---|---|---|---|---|---|" \
    "| no flood (baseline) | $(j .baseline.p50_ms) | $(j .baseline.p99_ms) | $(j .baseline.max_ms) | $(j .baseline.requests) | |" \
    "$(flood_lines distinct_emails "flood, distinct non-existent emails (headline)")" \
    "$(flood_lines same_email "flood, one real account")" \
    "" \
    "- headline: p99 ratio **$(fmt3 "$(j .floods.distinct_emails.p99_ratio)")** (target <= 2.0: $(verdict "$(j .floods.distinct_emails.p99_ratio)" "<=" 2.0))" \
    "$(flood_detail distinct_emails "distinct-email flood")" \
    "$(flood_detail same_email "same-email flood")" \
    "- baseline CPU: server $(j .baseline.server_cpu_cores) cores, generator (probe) $(j .baseline.generator_cpu_cores) cores, machine $(j "(.baseline.machine_cpu_busy * 100 | round)")% busy; GET errors baseline/distinct/same: $(j .baseline.errors)/$(j .floods.distinct_emails.get.errors)/$(j .floods.same_email.get.errors)" \
    "- load average (1/5/15 min) before the run: ${LOAD_BEFORE}; $(nproc) cores shared by server and generator" \
    "- raw figures: bench/out/login_flood.json"

if ((APPEND)); then
    results_append_alone login_flood "machine: $(machine_line)"
fi
