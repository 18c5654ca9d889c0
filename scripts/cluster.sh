#!/usr/bin/env bash
# Two Strongroom nodes behind nginx, on this machine: scripts/cluster.sh COMMAND
#
#   start            starts (or reuses) PostgreSQL, the S3 server, node 1, node 2 and nginx
#   stop             stops all of them (the state stays, so the next start is fast)
#   status           one line per part; exits 0 when every part runs
#   env              prints `export ...` lines for clients and for `strongroom admin ...` on
#                    the cluster (use: eval "$(scripts/cluster.sh env)")
#   stop-node N      SIGTERM to node N (1 or 2), then waits until it has drained and exited
#   start-node N     starts node N and waits until its /readyz answers 200
#   restart-node N   stop-node N, then start-node N: one step of a rolling restart
#
# What the nodes share, as a deployment's nodes would: one root key file, one PostgreSQL database
# and one S3 bucket prefix (blobs and audit checkpoints), through one config file. Each has a data
# dir of its own (logs, pid) and its own HTTPS and metrics ports. nginx is the HTTPS entry point:
# it balances requests over the two nodes, with passive health checks (a node that refuses a
# connection is skipped for 5 s) and retries on the other node (see docs/operations.md "Several
# nodes" for why that loses no request during a rolling restart).
#
# Everything lives in $STRONGROOM_CLUSTER_DIR (default /tmp/strongroom-cluster-$UID, mode 0711),
# PostgreSQL and the S3 server included (their own clusters, not the test suite's), and listens
# on 127.0.0.1 only. The server binary is $STRONGROOM_BIN, default the release build of this
# checkout (built when missing; CARGO_TARGET_DIR is honoured).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${STRONGROOM_CLUSTER_DIR:-/tmp/strongroom-cluster-${UID}}
# Children of this script find their state here too.
export STRONGROOM_PG_DIR=${STATE}/postgres
export STRONGROOM_S3_DIR=${STATE}/s3
TLS=${STATE}/tls
CONFIG=${STATE}/strongroom.toml
NGINX=${STATE}/nginx
DB_NAME=strongroom_cluster
S3_PREFIX=cluster
# Seconds a node goes on serving after SIGTERM (with /readyz 503 and no keep-alive) before it
# drains: longer than nginx's idle keep-alive to the nodes (UPSTREAM_KEEPALIVE), so that nginx
# has dropped every idle connection to the node before the node closes them.
DRAIN_DELAY=${STRONGROOM_CLUSTER_DRAIN_DELAY:-5}
UPSTREAM_KEEPALIVE=2

TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "${TARGET_DIR}" == /* ]] || TARGET_DIR=${ROOT}/${TARGET_DIR}
BIN=${STRONGROOM_BIN:-${TARGET_DIR}/release/strongroom}

usage() {
    echo "usage: $0 start|stop|status|env|stop-node N|start-node N|restart-node N" >&2
    exit 2
}

ensure_binary() {
    if [[ ! -x "${BIN}" ]]; then
        [[ -z "${STRONGROOM_BIN:-}" ]] || die "STRONGROOM_BIN=${BIN} is not an executable"
        step "Building Strongroom (release)"
        (cd "${ROOT}" && cargo build --release --locked -p strongroom)
    fi
}

# ---------------------------------------------------------------------------------------------
# Shared secrets and settings, made once

# A small CA and one certificate for 127.0.0.1 signed by it, used by nginx and by both nodes.
# Clients (and nginx, towards the nodes) verify against the CA: a leaf that is its own anchor is
# refused by some verifiers (webpki wants CA:FALSE on leaves, OpenSSL CA:TRUE on anchors).
make_certificates() {
    [[ -s "${TLS}/ca.pem" && -s "${TLS}/cert.pem" && -s "${TLS}/key.pem" ]] && return 0
    mkdir -p "${TLS}"
    (
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
            -subj "/CN=Strongroom cluster test CA" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign \
            -keyout "${TLS}/ca-key.pem" -out "${TLS}/ca.pem" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj /CN=127.0.0.1 -keyout "${TLS}/key.pem" -out "${TLS}/cert.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' \
            >"${TLS}/cert.ext"
        openssl x509 -req -in "${TLS}/cert.csr" -CA "${TLS}/ca.pem" -CAkey "${TLS}/ca-key.pem" \
            -CAcreateserial -days 30 -extfile "${TLS}/cert.ext" -out "${TLS}/cert.pem" 2>/dev/null
    ) || die "could not make the cluster's TLS certificates"
    rm -f "${TLS}/cert.csr" "${TLS}/cert.ext"
}

# The root key both nodes use: 64 hex characters, mode 0600, made once. Its loss makes every
# blob unreadable; here it is a throwaway, in a real deployment it comes from the secret store.
make_root_key() {
    [[ -s "${STATE}/master.key" ]] && return 0
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"${STATE}/master.key")
}

# Prints the port stored in FILE, choosing (and storing) a free one at or above START the first
# time: the nodes keep their ports across restarts, since nginx's configuration names them.
port_of() {
    local file=$1 start=$2
    if [[ ! -s "${file}" ]]; then
        find_free_port "${start}" >"${file}"
    fi
    cat "${file}"
}

# The database of the cluster in the PostgreSQL of scripts/postgres.sh; sets DATABASE_URL.
ensure_database() {
    local admin
    admin=$("${ROOT}/scripts/postgres.sh" start)
    if [[ "$(psql -X -A -t "${admin}" -c "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != 1 ]]; then
        psql -q -X "${admin}" -c "CREATE DATABASE ${DB_NAME}" >/dev/null ||
            die "could not create the database ${DB_NAME}"
    fi
    DATABASE_URL=${admin%/*}/${DB_NAME}
}

# Loads the S3 server's endpoint and credentials (AWS_* for the nodes) into this shell.
load_s3_env() {
    local env
    env=$("${ROOT}/scripts/s3.sh" env) || die "the S3 server is not running"
    eval "${env}"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    S3_URL=${STRONGROOM_TEST_S3_URL/\?//${S3_PREFIX}?}
}

write_config() {
    local nginx_port
    nginx_port=$(port_of "${NGINX}/port" 28443)
    (
        umask 077
        cat >"${CONFIG}.tmp" <<EOF
# Written by scripts/cluster.sh: what both nodes share. Each node gets its data dir, listen
# address and metrics address on its command line (see node_start).
database_url = "${DATABASE_URL}"
master_key_file = "${STATE}/master.key"
# Links and playback URLs name the balancer, not the node that made them.
public_url = "https://127.0.0.1:${nginx_port}"
# nginx is on 127.0.0.1: its X-Forwarded-For names the client (brute-force limits, logs, links).
trusted_proxies = ["127.0.0.1/32"]

[tls]
cert = "${TLS}/cert.pem"
key = "${TLS}/key.pem"

[timeouts]
drain_delay = ${DRAIN_DELAY}

[storage]
copies = 1
[[storage.backends]]
name = "s3"
url = "${S3_URL}"
EOF
    )
    mv "${CONFIG}.tmp" "${CONFIG}"
}

prepare() {
    mkdir -p "${STATE}" "${NGINX}"
    # Others may pass through but not list it: as root, PostgreSQL runs as `postgres` and must
    # reach its own folder inside. Every secret in it is a 0600 file.
    chmod 711 "${STATE}"
    make_certificates
    make_root_key
    step "PostgreSQL"
    ensure_database
    step "S3 server"
    "${ROOT}/scripts/s3.sh" start
    load_s3_env
    write_config
}

# ---------------------------------------------------------------------------------------------
# Nodes

node_dir() {
    [[ "$1" == 1 || "$1" == 2 ]] || die "no node $1 (1 or 2)"
    printf '%s/node%s\n' "${STATE}" "$1"
}

node_pid() {
    local dir
    dir=$(node_dir "$1")
    [[ -f "${dir}/pid" ]] && kill -0 "$(cat "${dir}/pid")" 2>/dev/null && cat "${dir}/pid"
}

node_url() {
    printf 'https://127.0.0.1:%s\n' "$(cat "$(node_dir "$1")/port")"
}

# Waits up to 60 s for node N's /readyz to answer 200; fails at once when the process is gone.
wait_ready() {
    local n=$1 pid=$2 url i
    url=$(node_url "${n}")/readyz
    for ((i = 0; i < 600; i++)); do
        if curl -sf -o /dev/null --max-time 2 --cacert "${TLS}/ca.pem" "${url}"; then
            return 0
        fi
        kill -0 "${pid}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

node_start() {
    local n=$1 dir port metrics pid
    dir=$(node_dir "${n}")
    if pid=$(node_pid "${n}"); then
        note "node ${n} runs already (pid ${pid}, $(node_url "${n}"))"
        return 0
    fi
    ensure_binary
    [[ -s "${CONFIG}" ]] || die "no ${CONFIG}: run '$0 start' first"
    load_s3_env
    mkdir -p "${dir}"
    port=$(port_of "${dir}/port" $((28500 + n * 10)))
    metrics=$(port_of "${dir}/metrics-port" $((29500 + n * 10)))
    port_is_free "${port}" || die "node ${n}'s port ${port} is taken by another process"
    # The log is appended to: a rolling restart's story is one file per node.
    printf '\n=== %s: scripts/cluster.sh starts node %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%S.%3NZ')" "${n}" >>"${dir}/serve.log"
    STRONGROOM_CONFIG=${CONFIG} STRONGROOM_METRICS_LISTEN=127.0.0.1:${metrics} \
        STRONGROOM_LOG=${STRONGROOM_LOG:-info} STRONGROOM_LOG_FORMAT=${STRONGROOM_LOG_FORMAT:-json} \
        nohup "${BIN}" serve --data-dir "${dir}/data" --listen "127.0.0.1:${port}" \
        >>"${dir}/serve.log" 2>&1 </dev/null &
    pid=$!
    echo "${pid}" >"${dir}/pid"
    wait_ready "${n}" "${pid}" || {
        tail -n 20 "${dir}/serve.log" >&2
        die "node ${n} did not become ready; see ${dir}/serve.log"
    }
    note "node ${n} ready on $(node_url "${n}") (pid ${pid}, metrics http://127.0.0.1:${metrics}/metrics)"
}

# SIGTERM, then waits for the exit: the drain delay, then in-flight requests (at most the drain
# timeout, 30 s), then the shutdown of the workers; 90 s in all before giving up.
node_stop() {
    local n=$1 pid i
    pid=$(node_pid "${n}") || return 0
    kill -TERM "${pid}"
    for ((i = 0; i < 900; i++)); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "${pid}" 2>/dev/null && die "node ${n} (pid ${pid}) still runs 90 s after SIGTERM"
    rm -f "$(node_dir "${n}")/pid"
    note "node ${n} stopped"
}

# ---------------------------------------------------------------------------------------------
# nginx

nginx_user_line() {
    # As root, the workers would run as nobody, who cannot read the state dir (0700).
    if [[ ${EUID} -eq 0 ]]; then
        echo "user root;"
    fi
}

nginx_pid() {
    [[ -f "${NGINX}/nginx.pid" ]] && kill -0 "$(cat "${NGINX}/nginx.pid")" 2>/dev/null &&
        cat "${NGINX}/nginx.pid"
}

write_nginx_config() {
    local port
    port=$(port_of "${NGINX}/port" 28443)
    mkdir -p "${NGINX}/logs" "${NGINX}/temp"
    cat >"${NGINX}/nginx.conf" <<EOF
# Written by scripts/cluster.sh. docs/operations.md "Several nodes" explains each choice.
$(nginx_user_line)
worker_processes auto;
pid ${NGINX}/nginx.pid;
error_log ${NGINX}/logs/error.log warn;
events { worker_connections 1024; }
http {
    # Which node answered, and what each try got: a retried request shows two upstreams.
    log_format cluster '\$time_iso8601 \$status \$request_method \$uri \$request_time '
                       'upstream=\$upstream_addr status=\$upstream_status time=\$upstream_response_time';
    access_log ${NGINX}/logs/access.log cluster;
    client_body_temp_path ${NGINX}/temp/body;
    proxy_temp_path ${NGINX}/temp/proxy;
    fastcgi_temp_path ${NGINX}/temp/fastcgi;
    uwsgi_temp_path ${NGINX}/temp/uwsgi;
    scgi_temp_path ${NGINX}/temp/scgi;
    client_max_body_size 0;
    # Bodies up to 1 MiB stay in memory; larger ones go to client_body_temp_path.
    client_body_buffer_size 1m;

    upstream strongroom {
        # Passive health check: a node that fails a connection is left alone for 5 s.
        server 127.0.0.1:$(cat "${STATE}/node1/port") max_fails=1 fail_timeout=5s;
        server 127.0.0.1:$(cat "${STATE}/node2/port") max_fails=1 fail_timeout=5s;
        keepalive 32;
        # Shorter than the nodes' drain delay (${DRAIN_DELAY} s): see the header of this script.
        keepalive_timeout ${UPSTREAM_KEEPALIVE}s;
    }

    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${TLS}/cert.pem;
        ssl_certificate_key ${TLS}/key.pem;
        ssl_protocols TLSv1.3;

        location / {
            proxy_pass https://strongroom;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            # nginx 1.22 offers TLS 1.2 at most to upstreams by default; the nodes want 1.3.
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate ${TLS}/ca.pem;
            proxy_ssl_name 127.0.0.1;
            proxy_ssl_session_reuse on;
            # A refused or reset connection, or a timeout, is tried on the other node. nginx
            # never resends a POST that reached a node (non_idempotent is off): a node that
            # drains answers what it accepted, and a stopped one refuses the connection, which
            # nginx may always retry. Bodies are buffered (the default), so a retry has one.
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
        }
    }
}
EOF
    nginx -t -q -e "${NGINX}/logs/error.log" -p "${NGINX}" -c "${NGINX}/nginx.conf" 2>"${NGINX}/logs/config-test.log" ||
        die "nginx rejected its configuration: $(cat "${NGINX}/logs/config-test.log")"
}

nginx_start() {
    local pid i
    if pid=$(nginx_pid); then
        note "nginx runs already (pid ${pid})"
        return 0
    fi
    command -v nginx >/dev/null 2>&1 || apt_ensure nginx
    write_nginx_config
    # Daemonizes; the pid file says where the master is.
    nginx -e "${NGINX}/logs/error.log" -p "${NGINX}" -c "${NGINX}/nginx.conf" ||
        die "nginx did not start; see ${NGINX}/logs/error.log"
    for ((i = 0; i < 100; i++)); do
        if curl -sf -o /dev/null --max-time 2 --cacert "${TLS}/ca.pem" "https://127.0.0.1:$(cat "${NGINX}/port")/readyz"; then
            note "nginx on https://127.0.0.1:$(cat "${NGINX}/port") (pid $(nginx_pid))"
            return 0
        fi
        sleep 0.1
    done
    die "nginx does not answer /readyz; see ${NGINX}/logs/error.log"
}

nginx_stop() {
    local pid i
    pid=$(nginx_pid) || return 0
    # QUIT: graceful (finishes the requests it has); TERM would cut them.
    kill -QUIT "${pid}"
    for ((i = 0; i < 300; i++)); do
        kill -0 "${pid}" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "${pid}" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------

start() {
    apt_ensure nginx curl openssl
    ensure_binary
    prepare
    step "Strongroom nodes"
    node_start 1
    node_start 2
    step "nginx"
    nginx_start
    print_summary
}

stop() {
    nginx_stop
    node_stop 1
    node_stop 2
    if [[ -d "${STRONGROOM_S3_DIR}" ]]; then
        "${ROOT}/scripts/s3.sh" stop
    fi
    if [[ -d "${STRONGROOM_PG_DIR}" ]]; then
        "${ROOT}/scripts/postgres.sh" stop
    fi
}

status() {
    local ok=0 pid
    if "${ROOT}/scripts/postgres.sh" status 2>/dev/null; then echo "postgresql: running"; else echo "postgresql: stopped"; ok=1; fi
    if "${ROOT}/scripts/s3.sh" status 2>/dev/null; then echo "s3: running"; else echo "s3: stopped"; ok=1; fi
    for n in 1 2; do
        if pid=$(node_pid "${n}"); then echo "node ${n}: running (pid ${pid}, $(node_url "${n}"))"; else echo "node ${n}: stopped"; ok=1; fi
    done
    if pid=$(nginx_pid); then echo "nginx: running (pid ${pid}, https://127.0.0.1:$(cat "${NGINX}/port"))"; else echo "nginx: stopped"; ok=1; fi
    return "${ok}"
}

print_summary() {
    note "cluster state in ${STATE}; clients: eval \"\$($0 env)\""
}

# For clients: the balancer's URL and CA; for `strongroom admin ...`: the nodes' config (database,
# root key, storage) and S3 credentials. STRONGROOM_DATA_DIR is node 1's, for commands that want
# one; nothing in it is shared.
print_env() {
    [[ -s "${CONFIG}" ]] || die "no cluster in ${STATE}: run '$0 start'"
    load_s3_env
    printf 'export STRONGROOM_CLUSTER_URL=%q STRONGROOM_CLUSTER_CA=%q STRONGROOM_NODE1_URL=%q STRONGROOM_NODE2_URL=%q\n' \
        "https://127.0.0.1:$(cat "${NGINX}/port")" "${TLS}/ca.pem" "$(node_url 1)" "$(node_url 2)"
    printf 'export STRONGROOM_CONFIG=%q STRONGROOM_DATA_DIR=%q STRONGROOM_BIN=%q AWS_ACCESS_KEY_ID=%q AWS_SECRET_ACCESS_KEY=%q\n' \
        "${CONFIG}" "${STATE}/node1/data" "${BIN}" "${AWS_ACCESS_KEY_ID}" "${AWS_SECRET_ACCESS_KEY}"
    printf 'export STRONGROOM_CLUSTER_DATABASE_URL=%q\n' "$(grep '^database_url' "${CONFIG}" | cut -d'"' -f2)"
}

case "${1:-}" in
start) [[ $# -eq 1 ]] || usage; start ;;
stop) [[ $# -eq 1 ]] || usage; stop ;;
status) [[ $# -eq 1 ]] || usage; status ;;
env) [[ $# -eq 1 ]] || usage; print_env ;;
stop-node) [[ $# -eq 2 ]] || usage; node_stop "$2" ;;
start-node) [[ $# -eq 2 ]] || usage; node_start "$2" ;;
restart-node)
    [[ $# -eq 2 ]] || usage
    node_stop "$2"
    node_start "$2"
    ;;
*) usage ;;
esac
