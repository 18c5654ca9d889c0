#!/usr/bin/env bash
# Two-node rolling restart under load (issue 9, F26). Targets: zero failed requests, zero
# acknowledged uploads lost, every job run by one node only, brute-force limits shared by the
# nodes, and the p99 of downloads during the restart at most 2x the p99 of the same load without.
#
#   bench/rolling_restart.sh            PHASE_A=60 PAUSE=15 VIDEO_EVERY=10 (seconds)
#   bench/rolling_restart.sh --append   also appends a dated section to bench/RESULTS.md, with
#                                       the raw figures in bench/results/ (from a clean commit)
#
# scripts/cluster.sh starts a fresh cluster under bench/out/cluster/: PostgreSQL, the S3 server,
# two nodes sharing the root key, the database and the bucket, and nginx balancing over them.
# bench/rolling_restart.py then loads nginx with two uploaders (16-512 KiB of random bytes, each
# acknowledged id kept with its SHA-256), two downloaders (a random acknowledged asset, its bytes
# checked), a signer (password sign-in, then GET /api/v1/me with the session), an HLS player
# (playback token, master and variant playlists, key, every segment of a processed video) and a
# video uploader (a 2 s clip every VIDEO_EVERY s, so media jobs run throughout). Phase A: PHASE_A
# s of that load. Phase B: the same load while node 1 gets SIGTERM, drains, exits and is started
# again until ready, PAUSE s, then node 2 likewise, PAUSE s. Every request opens a connection of
# its own; a failure is any answer other than the expected one, or any connection error.
# Afterwards: every acknowledged upload is downloaded again and compared; the jobs table and the
# nodes' "job done" log lines show which node ran each job; and wrong passwords go straight to the
# nodes (not through nginx), alternating between them, then to node 1 alone, to show that the
# captcha and the 429 come after the same number of failures either way.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PHASE_A=${PHASE_A:-60}
PAUSE=${PAUSE:-15}
VIDEO_EVERY=${VIDEO_EVERY:-10}
APPEND=0
if [[ "${1:-}" == "--append" ]]; then
    APPEND=1
    results_begin
fi

bench_ensure_tools
# psql comes with PostgreSQL (scripts/postgres.sh installs it).
apt_ensure ffmpeg python3
build_strongroom

CLUSTER=${BENCH_ROOT}/scripts/cluster.sh
export STRONGROOM_CLUSTER_DIR=${BENCH_OUT}/cluster
# A cluster left by an interrupted run is stopped and started afresh: the brute-force counts
# and the jobs table must be this run's alone.
"${CLUSTER}" stop >/dev/null 2>&1 || true
rm -rf "${STRONGROOM_CLUSTER_DIR}"
mkdir -p "${STRONGROOM_CLUSTER_DIR}"
# The nodes run a copy of the binary: a restart mid-run must start the very same server even if
# the build directory changes meanwhile.
cp "${STRONGROOM_BIN}" "${STRONGROOM_CLUSTER_DIR}/strongroom"
export STRONGROOM_BIN=${STRONGROOM_CLUSTER_DIR}/strongroom

cluster_down() {
    # The node logs, filtered to what is not an access line, are raw figures of the run.
    local n
    for n in 1 2; do
        if [[ -f "${STRONGROOM_CLUSTER_DIR}/node${n}/serve.log" ]]; then
            grep -v '"target":"access"' "${STRONGROOM_CLUSTER_DIR}/node${n}/serve.log" \
                >"${BENCH_OUT}/rolling_restart.node${n}.log" || true
        fi
    done
    "${CLUSTER}" stop >/dev/null 2>&1 || true
    if [[ "${BENCH_KEEP_DATA:-}" != "1" ]]; then
        rm -rf "${STRONGROOM_CLUSTER_DIR}"
    fi
}
BENCH_EXIT_HOOKS+=(cluster_down)

step "Starting the cluster"
"${CLUSTER}" start
eval "$("${CLUSTER}" env)"

step "Organization, users and a space"
PASSWORD=rr-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')-Pw
body=$(printf '%s' "${PASSWORD}" | "${STRONGROOM_BIN}" admin bootstrap --email load@example.com \
    --org rolling --password-stdin --json) || die "strongroom admin bootstrap failed"
KEY=$(jq -er .api_key <<<"${body}")
ORG=$(jq -er .org_id <<<"${body}")
for who in bf-both bf-one; do
    printf '%s' "${PASSWORD}" | "${STRONGROOM_BIN}" admin create-user --email "${who}@example.com" \
        --org "${ORG}" --role viewer --password-stdin --json >/dev/null || die "create-user ${who} failed"
done
SPACE=$(curl -sS --fail-with-body --cacert "${STRONGROOM_CLUSTER_CA}" -H "Authorization: Bearer ${KEY}" \
    -H 'Content-Type: application/json' --data '{"name":"rolling"}' \
    "${STRONGROOM_CLUSTER_URL}/api/v1/orgs/${ORG}/spaces" | jq -er .id) || die "could not create a space"

CLIP=${BENCH_OUT}/rolling-clip-2s.mp4
if [[ ! -f "${CLIP}" ]]; then
    ffmpeg -hide_banner -nostdin -loglevel error \
        -f lavfi -i "testsrc2=size=320x240:rate=25:duration=2" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2" \
        -c:v libx264 -preset fast -pix_fmt yuv420p -c:a aac -b:a 64k -shortest -y "${CLIP}.tmp.mp4"
    mv "${CLIP}.tmp.mp4" "${CLIP}"
fi

step "Load: phase A (${PHASE_A} s, no restart), phase B (rolling restart, ${PAUSE} s after each node)"
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)
export RR_URL=${STRONGROOM_CLUSTER_URL} RR_CA=${STRONGROOM_CLUSTER_CA} RR_KEY=${KEY} RR_SPACE=${SPACE}
export RR_EMAIL=load@example.com RR_PASSWORD=${PASSWORD} RR_VIDEO=${CLIP} RR_OUT=${BENCH_OUT}
export RR_PHASE_A=${PHASE_A} RR_PAUSE=${PAUSE} RR_VIDEO_EVERY=${VIDEO_EVERY}
export RR_RESTART_CMD="${CLUSTER} restart-node"
python3 "${BENCH_ROOT}/bench/rolling_restart.py" load >/dev/null ||
    die "the load generator failed; see ${BENCH_OUT}/rolling_restart.requests.tsv"
LOAD=${BENCH_OUT}/rolling_restart.load.json

step "Jobs: which node ran each"
JOBS=${BENCH_OUT}/rolling_restart.jobs.tsv
psql -X -A -F $'\t' -P footer=off "${STRONGROOM_CLUSTER_DATABASE_URL}" \
    -c "SELECT id, kind, status, attempts, worker, last_error FROM jobs ORDER BY created_at" >"${JOBS}" ||
    die "could not read the jobs table"
# "job done" lines per node: the node that finished each job.
for n in 1 2; do
    # -R and fromjson?: the log also holds the lines scripts/cluster.sh writes at each start.
    jq -rR 'fromjson? | select((.fields.message // .message) == "job done") | (.fields.job // .job)' \
        "${STRONGROOM_CLUSTER_DIR}/node${n}/serve.log" 2>/dev/null | sort >"${BENCH_OUT}/rolling_restart.done.node${n}" || true
done
media_total=$(awk -F'\t' 'NR > 1 && $2 == "media"' "${JOBS}" | wc -l)
media_done=$(awk -F'\t' 'NR > 1 && $2 == "media" && $3 == "done"' "${JOBS}" | wc -l)
media_once=$(awk -F'\t' 'NR > 1 && $2 == "media" && $4 == 1' "${JOBS}" | wc -l)
media_more=$(awk -F'\t' 'NR > 1 && $2 == "media" && $4 > 1' "${JOBS}" | wc -l)
done1=$(wc -l <"${BENCH_OUT}/rolling_restart.done.node1")
done2=$(wc -l <"${BENCH_OUT}/rolling_restart.done.node2")
done_both=$(comm -12 "${BENCH_OUT}/rolling_restart.done.node1" "${BENCH_OUT}/rolling_restart.done.node2" | wc -l)
done_twice=$(sort "${BENCH_OUT}/rolling_restart.done.node1" "${BENCH_OUT}/rolling_restart.done.node2" | uniq -d | wc -l)
rm -f "${BENCH_OUT}/rolling_restart.done.node1" "${BENCH_OUT}/rolling_restart.done.node2"

step "Brute force: wrong passwords straight to the nodes"
export RR_NODE1=${STRONGROOM_NODE1_URL} RR_NODE2=${STRONGROOM_NODE2_URL}
export RR_BF_EMAIL_BOTH=bf-both@example.com RR_BF_EMAIL_ONE=bf-one@example.com
python3 "${BENCH_ROOT}/bench/rolling_restart.py" bruteforce >/dev/null || die "the brute-force run failed"
BF=${BENCH_OUT}/rolling_restart.bruteforce.json

# nginx's view: requests it answered with an error, and requests it tried on both nodes.
NGINX_LOG=${STRONGROOM_CLUSTER_DIR}/nginx/logs/access.log
nginx_errors=$(awk '$2 >= 500' "${NGINX_LOG}" | wc -l)
nginx_retried=$(grep -c 'upstream=[^ ]*, ' "${NGINX_LOG}" || true)
grep -E 'upstream=[^ ]*, | 5[0-9][0-9] ' "${NGINX_LOG}" >"${BENCH_OUT}/rolling_restart.nginx-retries.log" || true
grep -v 'buffered to a temporary file' "${STRONGROOM_CLUSTER_DIR}/nginx/logs/error.log" \
    >"${BENCH_OUT}/rolling_restart.nginx-error.log" || true

# ---------------------------------------------------------------------------------------------
# Summary

j() { jq -r "$1" "${LOAD}"; }
failed_a=$(j '.phases.A.failed') failed_b=$(j '.phases.B.failed')
failed_all=$(j '[.phases[].failed] | add')
lost=$(j '.lost') acked=$(j '.acknowledged')
p99_a=$(j '.phases.A.download_p99_ms') p99_b=$(j '.phases.B.download_p99_ms')
ratio_ab=$(j '.p99_ratio_b_over_a')
kinds_table=$(jq -r '
    (.phases.A.kinds | keys) as $k
    | $k[] as $kind
    | "| \($kind) | \(.phases.A.kinds[$kind].requests // 0) | \(.phases.A.kinds[$kind].failed // 0) | \(.phases.B.kinds[$kind].requests // 0) | \(.phases.B.kinds[$kind].failed // 0) |"' "${LOAD}")
events=$(jq -r '.events[] | "  - \(.t_s) s: \(.event)"' "${LOAD}")
bf_both=$(jq -r '.alternating | "captcha (428) from the attempt after failure \(.captcha_after_failures), 429 after \(.failures_before_429) failures (\(.attempts) attempts)"' "${BF}")
bf_one=$(jq -r '.one_node | "captcha (428) from the attempt after failure \(.captcha_after_failures), 429 after \(.failures_before_429) failures (\(.attempts) attempts)"' "${BF}")
bf_same=$(jq -r 'if .alternating.failures_before_429 == .one_node.failures_before_429 and .alternating.captcha_after_failures == .one_node.captcha_after_failures then "the same counts: the nodes share the counters" else "DIFFERENT counts" end' "${BF}")

v_fail="MISSES target" v_lost="MISSES target" v_jobs="MISSES target"
((failed_all != 0)) || v_fail="meets target"
((lost != 0)) || v_lost="meets target"
((done_both != 0 || done_twice != 0 || media_done != media_total)) || v_jobs="meets target"

raw_figures rolling_restart rolling_restart.requests.tsv rolling_restart.load.json rolling_restart.jobs.tsv \
    rolling_restart.bruteforce.tsv rolling_restart.bruteforce.json rolling_restart.nginx-retries.log \
    rolling_restart.nginx-error.log rolling_restart.node1.log rolling_restart.node2.log
step "Rolling-restart results"
report rolling_restart \
    "### Two nodes behind nginx, rolling restart under load (phase A ${PHASE_A} s without restart, phase B a rolling restart with ${PAUSE} s after each node)" \
    "" \
    "Cluster: scripts/cluster.sh (PostgreSQL $(psql -X -A -t "${STRONGROOM_CLUSTER_DATABASE_URL}" -c 'SHOW server_version' 2>/dev/null || echo "n/a"), s3s-fs, two nodes with one root key, database and bucket, \`timeouts.drain_delay\` ${STRONGROOM_CLUSTER_DRAIN_DELAY:-5} s; nginx $(nginx -v 2>&1 | sed 's|.*/||') over both, passive checks \`max_fails=1 fail_timeout=5s\`, \`proxy_next_upstream error timeout http_502\`, upstream keep-alive 2 s). Load: bench/rolling_restart.py through nginx, one TLS 1.3 connection per request: 2 uploaders, 2 downloaders, 1 signer, 1 HLS player, 1 video uploader (a 2 s clip every ${VIDEO_EVERY} s). Download latency: request sent to the last byte read, including the connection and TLS handshake." \
    "" \
    "- failed requests: **${failed_all}** (phase A ${failed_a}, phase B ${failed_b}; target 0: ${v_fail}); nginx answered ${nginx_errors} requests with 5xx and tried ${nginx_retried} requests on both nodes" \
    "- acknowledged uploads lost: **${lost}** of ${acked}, each downloaded again and its SHA-256 compared (target 0: ${v_lost})" \
    "- download p99: phase A **${p99_a} ms**, phase B **${p99_b} ms**, B/A **${ratio_ab}** (target <= 2: $(verdict "${ratio_ab}" '<=' 2)); p50 $(j '.phases.A.download_p50_ms') / $(j '.phases.B.download_p50_ms') ms, max $(j '.phases.A.download_max_ms') / $(j '.phases.B.download_max_ms') ms, $(j '.phases.A.downloads') / $(j '.phases.B.downloads') downloads" \
    "- media jobs: ${media_total} in the jobs table, ${media_done} done, ${media_once} with one attempt, ${media_more} with more; \"job done\" logged by node 1 for ${done1}, by node 2 for ${done2}, by both for ${done_both}, twice for ${done_twice} (target: each job finished by one node only: ${v_jobs}); videos ready $(j '.videos.ready'), failed $(j '.videos.failed'), still processing $(j '.videos.pending')" \
    "- brute force, straight to the nodes: alternating node 1 / node 2: ${bf_both}; node 1 alone: ${bf_one}: ${bf_same}" \
    "" \
    "| kind | phase A requests | A failed | phase B requests | B failed |" \
    "|---|---|---|---|---|" \
    "${kinds_table}" \
    "" \
    "- timeline (seconds since the load generator started):" \
    "${events}" \
    "- load average (1/5/15 min) before the load: ${loadavg_before}; at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores shared by nginx, both nodes, PostgreSQL, s3s-fs, ffmpeg and the load generator" \
    "- raw figures: bench/out/rolling_restart.requests.tsv (every request), bench/out/rolling_restart.load.json, bench/out/rolling_restart.jobs.tsv (the jobs table), bench/out/rolling_restart.bruteforce.tsv (every attempt), bench/out/rolling_restart.node1.log and node2.log (the nodes' logs without access lines), bench/out/rolling_restart.nginx-retries.log (nginx's lines for retried or 5xx requests)"

if ((APPEND)); then
    results_append_alone rolling_restart "machine: $(machine_line); nginx $(nginx -v 2>&1 | sed 's|.*/||')"
fi
