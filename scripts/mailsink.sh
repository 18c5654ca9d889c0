#!/usr/bin/env bash
# A local SMTP sink for the test suite: scripts/mailsink.sh start|stop|status|url|maildir
#
#   start    installs Debian's python3-aiosmtpd if needed, starts the sink on 127.0.0.1 (or reuses
#            the running one) and prints two lines: its smtp:// URL and the Maildir it writes to
#   url      prints the URL of the running sink
#   maildir  prints the Maildir
#   status   exits 0 when the sink runs
#   stop     stops it
#
# The sink is aiosmtpd, a real RFC 5321 server: the server under test speaks SMTP to it exactly as
# it would to a production relay, and every accepted message lands as one file in the Maildir's
# new/ folder, where the tests read invitation links and security notices. It accepts mail for
# any address and relays nothing. It lives in $STRONGROOM_MAIL_DIR (default
# /tmp/strongroom-mail-$UID).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAIL_DIR=${STRONGROOM_MAIL_DIR:-/tmp/strongroom-mail-${UID}}
MAILDIR=${MAIL_DIR}/maildir
PID_FILE=${MAIL_DIR}/sink.pid
PORT_FILE=${MAIL_DIR}/port
LOG=${MAIL_DIR}/sink.log
# Debian's interpreter, which python3-aiosmtpd installs into (a pyenv python3 on PATH would not
# see it).
PYTHON=/usr/bin/python3

usage() {
    echo "usage: $0 start|stop|status|url|maildir" >&2
    exit 2
}

running() {
    [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null
}

url() {
    echo "smtp://127.0.0.1:$(cat "${PORT_FILE}")"
}

free_port() {
    "${PYTHON}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    if running; then
        url
        echo "${MAILDIR}"
        return
    fi
    "${PYTHON}" -c 'import aiosmtpd' 2>/dev/null || apt_ensure python3-aiosmtpd
    # A Maildir is three folders; Python creates them only for a path that does not exist yet.
    mkdir -p "${MAILDIR}/tmp" "${MAILDIR}/new" "${MAILDIR}/cur"
    local port
    port=$(free_port)
    echo "${port}" >"${PORT_FILE}"
    # -n: stay the current user; Mailbox: one file per message in a Maildir.
    nohup "${PYTHON}" -m aiosmtpd -n -l "127.0.0.1:${port}" \
        -c aiosmtpd.handlers.Mailbox "${MAILDIR}" >"${LOG}" 2>&1 &
    echo $! >"${PID_FILE}"
    local i
    for i in $(seq 1 50); do
        if "${PYTHON}" -c "import socket; socket.create_connection(('127.0.0.1', ${port}), 0.2)" 2>/dev/null; then
            note "SMTP sink on 127.0.0.1:${port}, mail in ${MAILDIR}/new" >&2
            url
            echo "${MAILDIR}"
            return
        fi
        sleep 0.1
    done
    cat "${LOG}" >&2 || true
    die "the SMTP sink did not start (log: ${LOG})"
}

case "${1:-}" in
    start) start ;;
    stop)
        if running; then
            kill "$(cat "${PID_FILE}")"
        fi
        rm -f "${PID_FILE}"
        ;;
    status) running ;;
    url) running || die "the SMTP sink is not running: scripts/mailsink.sh start"; url ;;
    maildir) echo "${MAILDIR}" ;;
    *) usage ;;
esac
