#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite: scripts/postgres.sh start|stop|status|url
#
#   start   installs Debian's postgresql if needed, creates the cluster on first use, starts it
#           (or reuses the running one) and prints its URL
#   url     prints the URL of the running cluster
#   status  exits 0 when the cluster runs
#   stop    stops it (the data stays, so the next start is fast)
#
# The cluster lives in $STRONGROOM_PG_DIR (default /tmp/strongroom-pg-$UID), never in the system
# cluster: tests must not depend on, or damage, a developer's own PostgreSQL. The URL names a
# password-authenticated superuser `strongroom` on 127.0.0.1 because the tests create and drop a
# database per test (CREATE DATABASE needs the privilege) and connect over TCP like a deployment.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_DIR=${STRONGROOM_PG_DIR:-/tmp/strongroom-pg-${UID}}
PG_DATA=${PG_DIR}/data
PG_LOG=${PG_DIR}/postgres.log
PG_USER=strongroom

# The OS account that owns the cluster. PostgreSQL refuses to run as root, so root hands the
# cluster to Debian's `postgres` account; anyone else owns it themselves.
if [[ ${EUID} -eq 0 ]]; then
    OWNER=postgres
else
    OWNER=$(id -un)
fi

usage() {
    echo "usage: $0 start|stop|status|url" >&2
    exit 2
}

# Prints the directory holding initdb/pg_ctl/postgres. Debian's versioned directory is preferred
# over whatever is on PATH: dev machines carry /usr/local/bin symlinks that may point elsewhere.
pg_bindir() {
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "${dir}/postgres" && -x "${dir}/initdb" ]] || continue
        # Keep the newest major version; 15 on Debian 12. `sort -V` handles 9.6 < 15.
        if [[ -z "${best}" ]] || [[ "$(printf '%s\n%s\n' "${best}" "${dir}" | sort -V | tail -n1)" == "${dir}" ]]; then
            best=${dir}
        fi
    done
    if [[ -z "${best}" ]] && command -v postgres >/dev/null 2>&1; then
        best=$(dirname "$(readlink -f "$(command -v postgres)")")
    fi
    [[ -n "${best}" ]] && printf '%s\n' "${best}"
}

ensure_installed() {
    if [[ -z "$(pg_bindir)" ]]; then
        step "Installing PostgreSQL (Debian package)"
        apt_ensure postgresql
    fi
    BIN=$(pg_bindir) || die "PostgreSQL is not installed and could not be installed"
}

# Runs a command as the cluster owner, from a directory that account can read (initdb and pg_ctl
# complain when the current directory, e.g. /root, is not accessible to them).
as_owner() {
    if [[ ${EUID} -eq 0 ]]; then
        (cd / && runuser -u "${OWNER}" -- "$@")
    else
        (cd / && "$@")
    fi
}

is_running() {
    [[ -f "${PG_DATA}/PG_VERSION" ]] && [[ -n "$(pg_bindir)" ]] &&
        as_owner "$(pg_bindir)/pg_ctl" status -D "${PG_DATA}" >/dev/null 2>&1
}

# The URL of the cluster; the port and password files are written by `start`.
print_url() {
    local password port
    password=$(cat "${PG_DIR}/password")
    port=$(cat "${PG_DIR}/port")
    printf 'postgres://%s:%s@127.0.0.1:%s/postgres\n' "${PG_USER}" "${password}" "${port}"
}

init_cluster() {
    step "Creating a PostgreSQL cluster in ${PG_DIR}"
    # Left over from an interrupted initdb: start again from nothing.
    rm -rf "${PG_DATA}"
    mkdir -p "${PG_DIR}"
    chmod 700 "${PG_DIR}"
    # Hex keeps the password URL-safe without percent-encoding.
    if [[ ! -s "${PG_DIR}/password" ]]; then
        (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"${PG_DIR}/password")
    fi
    if [[ ${EUID} -eq 0 ]]; then
        chown -R "${OWNER}:" "${PG_DIR}"
    fi
    # scram-sha-256 everywhere, socket included: the only way in is the password in the URL.
    as_owner "${BIN}/initdb" --pgdata="${PG_DATA}" --username="${PG_USER}" \
        --pwfile="${PG_DIR}/password" --auth=scram-sha-256 --encoding=UTF8 --locale=C \
        >"${PG_DIR}/initdb.log" 2>&1 ||
        {
            cat "${PG_DIR}/initdb.log" >&2
            die "initdb failed"
        }
    # Settings for a local test peer. fsync and friends stay at their defaults on purpose: the
    # durability tests must see real PostgreSQL behaviour.
    cat >>"${PG_DATA}/postgresql.conf" <<EOF

# --- added by scripts/postgres.sh ---
listen_addresses = '127.0.0.1'
# The socket goes next to the data: /var/run/postgresql may not exist or belong to someone else.
unix_socket_directories = '${PG_DIR}'
# Tests run in parallel, each with its own database and pool.
max_connections = 300
EOF
}

start() {
    ensure_installed
    if is_running; then
        print_url
        return 0
    fi
    if [[ ! -f "${PG_DATA}/PG_VERSION" ]]; then
        init_cluster
    fi
    # A port is chosen at every start: the one used last time may have been taken since.
    local port attempt
    for attempt in 1 2 3; do
        port=$(find_free_port 54329)
        printf '%s\n' "${port}" >"${PG_DIR}/port"
        # -w waits until the server accepts connections; -t bounds that wait.
        if as_owner "${BIN}/pg_ctl" start -w -t 60 -D "${PG_DATA}" -l "${PG_LOG}" \
            -o "-p ${port}" >/dev/null; then
            print_url
            return 0
        fi
        # Most likely another process grabbed the port between the check and the bind.
        note "PostgreSQL did not start on port ${port} (attempt ${attempt}); log tail:"
        tail -n 5 "${PG_LOG}" >&2 || true
    done
    die "PostgreSQL failed to start; see ${PG_LOG}"
}

stop() {
    if is_running; then
        # fast: roll back open transactions instead of waiting for test connections to go away.
        as_owner "$(pg_bindir)/pg_ctl" stop -w -t 60 -m fast -D "${PG_DATA}" >/dev/null
    fi
}

[[ $# -eq 1 ]] || usage
case "$1" in
start) start ;;
stop) stop ;;
status) is_running ;;
url)
    is_running || die "PostgreSQL is not running; run '$0 start'"
    print_url
    ;;
*) usage ;;
esac
