#!/usr/bin/env bash
# A throwaway S3 server for the test suite: scripts/s3.sh start|stop|status|env
#
#   start   installs s3s-fs if needed, starts it on 127.0.0.1 (or reuses the running one) and
#           creates the test bucket
#   env     prints an `export ...` line for the tests: STRONGROOM_TEST_S3_URL, AWS_ACCESS_KEY_ID,
#           AWS_SECRET_ACCESS_KEY, STRONGROOM_TEST_S3_ROOT (use: eval "$(scripts/s3.sh env)")
#   status  exits 0 when the server runs
#   stop    stops it (the files stay, so the next start is fast)
#
# The server is s3s-fs (the s3s project's S3 on a local folder): it verifies every request's SigV4
# signature against one access key, so a wrong secret fails like it would on AWS or Garage, and it
# keeps each object as a plain file (<root>/<bucket>/<key>), where the tests look for plaintext.
# Installed with `cargo install s3s-fs@0.14.1 --features binary --locked` (0.14.1: the newest whose
# rust-version builds on our 1.95), once per machine: 5 min 44 s measured here (2 cores, nice 10,
# crates downloaded from crates.io, 169 crates compiled; nothing else running).
#
# Why not Garage, the real distributed engine: `cargo install garage@2.5.0 --locked` builds on our
# toolchain, but took 57 min here (3444 s, 286 crates, nice 19 while two other builds and
# benchmarks kept the load at 4-9; measured on 2026-12-02). Even at half that on a quiet machine it
# would take most of CI's time budget on every fresh machine, so the suite uses s3s-fs, which
# verifies SigV4 signatures the same way. Garage remains the engine to deploy on.
#
# Everything lives in $STRONGROOM_S3_DIR (default /tmp/strongroom-s3-$UID, mode 0700): the data
# root, a generated access key and secret (mode 0600, kept across restarts), the port, the pid and
# the log. The server listens on 127.0.0.1 only, on port 54330 or the next free one.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

S3S_FS_VERSION=0.14.1
S3_DIR=${STRONGROOM_S3_DIR:-/tmp/strongroom-s3-${UID}}
S3_ROOT=${S3_DIR}/data
PID_FILE=${S3_DIR}/s3s-fs.pid
PORT_FILE=${S3_DIR}/port
LOG=${S3_DIR}/s3s-fs.log
BUCKET=strongroom-test
REGION=us-east-1

usage() {
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
}

# cargo install puts binaries in ~/.cargo/bin, which a non-login shell may not have on PATH.
s3s_fs() {
    if command -v s3s-fs >/dev/null 2>&1; then
        command -v s3s-fs
    elif [[ -x "${CARGO_HOME:-${HOME}/.cargo}/bin/s3s-fs" ]]; then
        printf '%s\n' "${CARGO_HOME:-${HOME}/.cargo}/bin/s3s-fs"
    else
        return 1
    fi
}

ensure_installed() {
    local bin
    if bin=$(s3s_fs) && [[ "$("${bin}" --version 2>/dev/null || true)" == "s3s-fs ${S3S_FS_VERSION}" ]]; then
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: needed to install s3s-fs ${S3S_FS_VERSION}"
    note "installing s3s-fs ${S3S_FS_VERSION} (cargo install, a few minutes, once per machine)"
    cargo install "s3s-fs@${S3S_FS_VERSION}" --features binary --locked --quiet ||
        die "cargo install s3s-fs@${S3S_FS_VERSION} failed"
    s3s_fs >/dev/null || die "s3s-fs was installed but is not on PATH or in ~/.cargo/bin"
}

running() {
    [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null
}

# A secret of 40 hex characters, created once (umask: never readable by others, even briefly).
make_secret() {
    local file=$1 bytes=$2
    if [[ ! -s "${file}" ]]; then
        (umask 077 && od -An -tx1 -N"${bytes}" /dev/urandom | tr -d ' \n' >"${file}")
    fi
    chmod 600 "${file}"
}

endpoint() {
    printf 'http://127.0.0.1:%s' "$(cat "${PORT_FILE}")"
}

# Creates the bucket with a signed request (curl's SigV4), so the credentials are proven to work;
# the secret reaches curl on its standard input, not its command line. curl 7.88 does not send the
# payload hash header S3 requires; it is given (the empty body's) and signed with the rest.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
create_bucket() {
    local code
    code=$(printf 'user = "%s:%s"\n' "$(cat "${S3_DIR}/access-key")" "$(cat "${S3_DIR}/secret-key")" |
        curl --silent --show-error --output /dev/null --write-out '%{http_code}' --config - \
            --aws-sigv4 "aws:amz:${REGION}:s3" -H "x-amz-content-sha256: ${EMPTY_SHA256}" \
            -X PUT "$(endpoint)/${BUCKET}") ||
        die "creating the bucket ${BUCKET} failed (see ${LOG})"
    case "${code}" in
    200 | 409) ;; # created, or already ours
    *) die "creating the bucket ${BUCKET} answered HTTP ${code} (see ${LOG})" ;;
    esac
}

start() {
    ensure_installed
    mkdir -p "${S3_ROOT}"
    chmod 700 "${S3_DIR}"
    make_secret "${S3_DIR}/access-key" 10
    make_secret "${S3_DIR}/secret-key" 20
    if running; then
        return 0
    fi
    local port attempt bin
    bin=$(s3s_fs)
    for attempt in 1 2 3; do
        port=$(find_free_port 54330)
        printf '%s\n' "${port}" >"${PORT_FILE}"
        # The secret is on s3s-fs's command line (it has no other way to take it): visible to local
        # users in `ps`. Acceptable for a throwaway test server on 127.0.0.1.
        nohup "${bin}" --host 127.0.0.1 --port "${port}" \
            --access-key "$(cat "${S3_DIR}/access-key")" --secret-key "$(cat "${S3_DIR}/secret-key")" \
            "${S3_ROOT}" >"${LOG}" 2>&1 &
        echo $! >"${PID_FILE}"
        for _ in $(seq 1 100); do
            if ! port_is_free "${port}"; then
                create_bucket
                note "s3s-fs ${S3S_FS_VERSION} on $(endpoint), bucket ${BUCKET}, files in ${S3_ROOT}"
                return 0
            fi
            running || break
            sleep 0.1
        done
        note "s3s-fs did not start on port ${port} (attempt ${attempt}); log tail:"
        tail -n 5 "${LOG}" >&2 || true
        stop
    done
    die "s3s-fs failed to start; see ${LOG}"
}

stop() {
    if running; then
        local pid
        pid=$(cat "${PID_FILE}")
        kill "${pid}" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "${PID_FILE}"
}

print_env() {
    running || die "s3s-fs is not running: run '$0 start'"
    local url root
    url="s3://${BUCKET}?endpoint=$(endpoint)&region=${REGION}"
    # s3s-fs resolves its root to the canonical path; the tests compare against that.
    root=$(cd "${S3_ROOT}" && pwd -P)
    printf 'export STRONGROOM_TEST_S3_URL=%q AWS_ACCESS_KEY_ID=%q AWS_SECRET_ACCESS_KEY=%q STRONGROOM_TEST_S3_ROOT=%q\n' \
        "${url}" "$(cat "${S3_DIR}/access-key")" "$(cat "${S3_DIR}/secret-key")" "${root}"
}

[[ $# -eq 1 ]] || usage
case "$1" in
start) start ;;
stop) stop ;;
status) running ;;
env) print_env ;;
*) usage ;;
esac
