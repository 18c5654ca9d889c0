#!/usr/bin/env bash
# The dashboard's browser tests: ./scripts/browser-tests.sh [NODE TEST ARGS...]
#
# Installs playwright-core (pinned in browser/package-lock.json, from npm) and Debian's Chromium,
# starts a real server (the `strongroom` binary, HTTPS on 127.0.0.1, a fresh data directory, mail
# to the SMTP sink), gives it an organization with an owner, an admin, an editor and two viewers
# (and the owner a second organization with a tiny quota; a third, of its own owner, is there to
# be deleted), and runs
# browser/*.test.mjs with node's test runner: Chromium drives the dashboard over HTTPS, trusting
# the server's self-signed certificate by its public key. Exits non-zero on any failure.
#
# Environment:
#   STRONGROOM_BIN=PATH              the server binary (default: build <target>/debug/strongroom)
#   STRONGROOM_SCREENSHOTS=DIR       also save screenshots of the main pages there
#                                    (docs/dashboard/ holds the committed ones)
#   STRONGROOM_BROWSER_KEEP=1        keep the temporary directory (server log, media) for a look
#   STRONGROOM_TEST_SMTP_URL=... and STRONGROOM_TEST_MAILDIR=...
#                                    use this SMTP sink instead of starting scripts/mailsink.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=${PWD}
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

step "Browser test tools (node, npm, chromium, ffmpeg, openssl)"
apt_ensure chromium ffmpeg openssl curl ca-certificates
# Node.js may come from Debian or (as on our machines) from a nodejs package that bundles npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_ensure nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 18)) || die "node ${node_major} is too old for playwright-core: 18 or newer is needed"
PLAYWRIGHT_VERSION=$(node -p 'require("./browser/package.json").devDependencies["playwright-core"]')
installed=$(node -p 'require("./browser/node_modules/playwright-core/package.json").version' 2>/dev/null || true)
if [[ "${installed}" != "${PLAYWRIGHT_VERSION}" ]]; then
    note "installing playwright-core ${PLAYWRIGHT_VERSION} from browser/package-lock.json"
    (cd browser && npm ci --no-audit --no-fund --loglevel=error)
fi

BIN=$(server_binary)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-browser.XXXXXX")
DATA=${WORK}/data
SERVER_PID=
STOP_SINK=
finish() {
    local status=$?
    if [[ -n "${SERVER_PID}" ]] && kill -0 "${SERVER_PID}" 2>/dev/null; then
        kill -TERM "${SERVER_PID}" 2>/dev/null || true
        wait "${SERVER_PID}" 2>/dev/null || true
    fi
    if [[ -n "${STOP_SINK}" ]]; then
        "${ROOT}/scripts/mailsink.sh" stop || true
    fi
    if ((status != 0)) && [[ -f "${WORK}/server.log" ]]; then
        note "the server's last log lines:"
        tail -n 40 "${WORK}/server.log" >&2 || true
    fi
    if [[ "${STRONGROOM_BROWSER_KEEP:-}" == "1" ]]; then
        note "kept ${WORK}"
    else
        rm -rf "${WORK}"
    fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "A server with three organizations, an owner, an admin, an editor and two viewers"
unset STRONGROOM_DATABASE_URL STRONGROOM_MASTER_KEY STRONGROOM_MASTER_KEY_FILE STRONGROOM_CONFIG \
    STRONGROOM_DATA_DIR STRONGROOM_LISTEN STRONGROOM_TLS_CERT STRONGROOM_TLS_KEY STRONGROOM_SMTP_URL \
    STRONGROOM_PUBLIC_URL
json_field() {
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"
}
"${BIN}" admin bootstrap --email owner@example.com --org "Acme Media" --data-dir "${DATA}" --json >"${WORK}/owner.json"
export OWNER_EMAIL=owner@example.com
OWNER_PASSWORD=$(json_field password <"${WORK}/owner.json")
OWNER_KEY=$(json_field api_key <"${WORK}/owner.json")
ORG_ID=$(json_field org_id <"${WORK}/owner.json")
export OWNER_PASSWORD OWNER_KEY ORG_ID
member() {
    "${BIN}" admin create-user --email "$1" --org "${ORG_ID}" --role "$2" --password-stdin \
        --data-dir "${DATA}" --json <<<"$3" >/dev/null
}
# The owner's second organization, for the organization switcher, with a tiny quota (4 KiB) so
# an upload there is refused as over quota.
"${BIN}" admin bootstrap --email owner@example.com --org "Small Studio" --data-dir "${DATA}" --json >"${WORK}/second.json"
SECOND_ORG_ID=$(json_field org_id <"${WORK}/second.json")
export SECOND_ORG_ID
"${BIN}" admin set-quota --org "${SECOND_ORG_ID}" --max-bytes 4096 --max-assets none --data-dir "${DATA}" >/dev/null
# An organization of its own owner, for the test that deletes an organization.
"${BIN}" admin bootstrap --email doomed@example.com --org "Doomed Studio" --data-dir "${DATA}" --json >"${WORK}/doomed.json"
export DOOMED_EMAIL=doomed@example.com
DOOMED_PASSWORD=$(json_field password <"${WORK}/doomed.json")
DOOMED_KEY=$(json_field api_key <"${WORK}/doomed.json")
DOOMED_ORG_ID=$(json_field org_id <"${WORK}/doomed.json")
export DOOMED_PASSWORD DOOMED_KEY DOOMED_ORG_ID
export ADMIN_EMAIL=ada@example.com ADMIN_PASSWORD="ada's long passphrase 2026"
export EDITOR_EMAIL=eve@example.com EDITOR_PASSWORD="eve edits many things 31"
export CAPTCHA_EMAIL=cap@example.com CAPTCHA_PASSWORD="cap is a careful typist 5"
export VIEWER_EMAIL=vic@example.com VIEWER_PASSWORD="vic reads but never writes 7"
member "${ADMIN_EMAIL}" admin "${ADMIN_PASSWORD}"
member "${VIEWER_EMAIL}" viewer "${VIEWER_PASSWORD}"
member "${EDITOR_EMAIL}" editor "${EDITOR_PASSWORD}"
member "${CAPTCHA_EMAIL}" viewer "${CAPTCHA_PASSWORD}"

# A backup, verified, for the Backups card the owner sees on the Security page.
"${BIN}" backup create --to "fs://${WORK}/backups" --data-dir "${DATA}" --json >"${WORK}/backup.json"
BACKUP_ID=$(json_field id <"${WORK}/backup.json")
export BACKUP_ID
"${BIN}" backup verify "${BACKUP_ID}" --from "fs://${WORK}/backups" --data-dir "${DATA}" >/dev/null

if [[ -z "${STRONGROOM_TEST_SMTP_URL:-}" ]]; then
    scripts/mailsink.sh status || STOP_SINK=1
    sink=$(scripts/mailsink.sh start)
    STRONGROOM_TEST_SMTP_URL=$(sed -n 1p <<<"${sink}")
    STRONGROOM_TEST_MAILDIR=$(sed -n 2p <<<"${sink}")
fi
export STRONGROOM_TEST_MAILDIR

PORT=$(find_free_port 47400)
METRICS_PORT=$(find_free_port $((PORT + 1)))
export STRONGROOM_URL=https://127.0.0.1:${PORT}
STRONGROOM_SMTP_URL=${STRONGROOM_TEST_SMTP_URL} STRONGROOM_PUBLIC_URL=${STRONGROOM_URL} \
    STRONGROOM_METRICS_LISTEN=127.0.0.1:${METRICS_PORT} \
    "${BIN}" serve --data-dir "${DATA}" --listen "127.0.0.1:${PORT}" >"${WORK}/server.log" 2>&1 &
SERVER_PID=$!
CA=${DATA}/tls/cert.pem
for _ in $(seq 1 150); do
    curl -fsS --cacert "${CA}" "${STRONGROOM_URL}/healthz" >/dev/null 2>&1 && break
    kill -0 "${SERVER_PID}" 2>/dev/null || die "the server exited"
    sleep 0.2
done
curl -fsS --cacert "${CA}" "${STRONGROOM_URL}/readyz" >/dev/null || die "the server is not ready"
note "serving ${STRONGROOM_URL} (data in ${DATA})"

# Chromium trusts this certificate by the SHA-256 of its public key; node's fetch by the file.
STRONGROOM_SPKI=$(openssl x509 -in "${CA}" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)
export STRONGROOM_SPKI NODE_EXTRA_CA_CERTS=${CA} STRONGROOM_BROWSER_WORK=${WORK}
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}
if [[ -n "${STRONGROOM_SCREENSHOTS:-}" ]]; then
    STRONGROOM_SCREENSHOTS=$(realpath -m "${STRONGROOM_SCREENSHOTS}")
    export STRONGROOM_SCREENSHOTS
fi

step "node --test browser/ ($(chromium --version 2>/dev/null || echo chromium))"
cd browser
node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs
