# shellcheck shell=bash
# Helpers shared by scripts/*.sh and bench/*.sh. Sourced, never run.
#
# Everything here must work on a fresh Debian 12 machine (CI starts from one) and be cheap when the
# machine is already set up, because developers run these scripts many times a day.

# Guard against double sourcing (bench/lib.sh sources this and so may its callers).
if [[ -n "${STRONGROOM_SCRIPTS_LIB_LOADED:-}" ]]; then
    return 0
fi
STRONGROOM_SCRIPTS_LIB_LOADED=1

# A step header that stands out in long CI logs.
step() {
    printf '\n==> %s\n' "$*" >&2
}

# A secondary message; on stderr so that stdout stays usable for values (URLs, ids).
note() {
    printf '    %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, through sudo otherwise. Package installation
# is the only thing that needs this.
as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run '$*' (no sudo found); run as root or install it by hand"
    fi
}

# True when a Debian package is installed. dpkg-query is the authority: a binary on PATH may come
# from somewhere else (e.g. /usr/local/bin symlinks on dev machines).
deb_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == "installed" ]]
}

# Installs the given Debian packages that are missing. `apt-get update` runs at most once per
# script tree: the exported marker tells child scripts (scripts/postgres.sh started from test.sh)
# that the package lists are already fresh.
apt_ensure() {
    local missing=() pkg
    if ! command -v dpkg-query >/dev/null 2>&1; then
        note "not a Debian system: make sure these are installed: $*"
        return 0
    fi
    for pkg in "$@"; do
        deb_installed "${pkg}" || missing+=("${pkg}")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    note "installing Debian packages: ${missing[*]}"
    local log
    log=$(mktemp)
    # apt's chatter (and debconf's) would bury the steps that matter; shown only on failure.
    if [[ -z "${STRONGROOM_APT_UPDATED:-}" ]]; then
        as_root apt-get update -qq >"${log}" 2>&1 || {
            cat "${log}" >&2
            die "apt-get update failed"
        }
        export STRONGROOM_APT_UPDATED=1
    fi
    # noninteractive: CI has no stdin, and tzdata/postgresql must not prompt.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >"${log}" 2>&1 || {
        tail -n 30 "${log}" >&2
        die "apt-get install ${missing[*]} failed"
    }
    rm -f "${log}"
}

# True when nothing accepts TCP connections on 127.0.0.1:PORT. Uses bash's /dev/tcp so it works
# before iproute2 (ss) or python3 are installed. A listener on 0.0.0.0 also answers here, so it is
# detected too. The timeout guards against a filtered port hanging the connect.
port_is_free() {
    ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Prints the first free port at or above START (default 54329), trying 200 ports.
find_free_port() {
    local port=${1:-54329} last
    last=$((port + 200))
    while ((port < last)); do
        if port_is_free "${port}"; then
            printf '%s\n' "${port}"
            return 0
        fi
        port=$((port + 1))
    done
    die "no free TCP port in ${1:-54329}..${last}"
}

# Prints the absolute path of the server binary the test scripts run: $STRONGROOM_BIN, or else
# this checkout's debug build, built first (progress on stderr, so stdout stays the path).
server_binary() {
    local bin=${STRONGROOM_BIN:-}
    if [[ -z "${bin}" ]]; then
        step "cargo build -p strongroom --bin strongroom --locked"
        cargo build -p strongroom --bin strongroom --locked >&2
        bin=${CARGO_TARGET_DIR:-target}/debug/strongroom
    fi
    [[ -x "${bin}" ]] || die "no server binary at ${bin}"
    realpath "${bin}"
}
