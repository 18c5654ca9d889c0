#!/usr/bin/env bash
# The API contract check: ./scripts/schemathesis.sh
#
# Starts a real server (the `strongroom` binary, on 127.0.0.1, a free port and a fresh data
# directory), gives it an organization with a space, assets, a link, keys, members, roles and
# signed-in sessions, and runs `schemathesis run --checks all` against /api/openapi.json: every
# response must be documented there (status, content type, headers, body schema), every request
# the document allows must be accepted and every request it forbids refused. Exits non-zero on
# any finding. A bounded run: about 2-3 minutes on 2 cores, plus building the binary.
#
# Arguments narrow the check to one `schemathesis run` with them (e.g. --include-path-regex
# '/links' to try one area); without any, every operation is checked.
#
# Environment:
#   STRONGROOM_BIN=PATH          the server binary (default: build <target>/debug/strongroom)
#   SCHEMATHESIS_MAX_EXAMPLES=N  test cases per operation and phase (default 50)
#   SCHEMATHESIS_SEED=N          reproduce an earlier run (default: random, printed at the end)
#   SCHEMATHESIS_KEEP=1          keep the temporary directory (server log, reports) for a look
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=${PWD}
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# Pinned: a new release may add checks or change what they accept; moving the pin is a change
# reviewed like any other.
SCHEMATHESIS_VERSION=4.32.5
VENV=${XDG_CACHE_HOME:-${HOME}/.cache}/strongroom/schemathesis-${SCHEMATHESIS_VERSION}
# Debian's interpreter, which python3-venv belongs to (a pyenv python3 on PATH may lack venv).
PYTHON=/usr/bin/python3

step "schemathesis ${SCHEMATHESIS_VERSION}"
apt_ensure python3 python3-venv curl ca-certificates
if [[ "$("${VENV}/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version ${SCHEMATHESIS_VERSION}" ]]; then
    note "installing schemathesis ${SCHEMATHESIS_VERSION} into ${VENV}"
    rm -rf "${VENV}"
    "${PYTHON}" -m venv "${VENV}"
    "${VENV}/bin/pip" install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
fi

BIN=$(server_binary)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strongroom-schemathesis.XXXXXX")
DATA=${WORK}/data
SERVER_PID=
STOP_SINK=
finish() {
    if [[ -n "${SERVER_PID}" ]] && kill -0 "${SERVER_PID}" 2>/dev/null; then
        kill -TERM "${SERVER_PID}" 2>/dev/null || true
        wait "${SERVER_PID}" 2>/dev/null || true
    fi
    if [[ -n "${STOP_SINK}" ]]; then
        scripts/mailsink.sh stop || true
    fi
    if [[ "${SCHEMATHESIS_KEEP:-}" == "1" ]]; then
        note "kept ${WORK} (server.log, report/)"
    else
        rm -rf "${WORK}"
    fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "A server with test data"
# The environment of the caller must not point this server at another database or key.
unset STRONGROOM_DATABASE_URL STRONGROOM_MASTER_KEY STRONGROOM_MASTER_KEY_FILE STRONGROOM_CONFIG \
    STRONGROOM_DATA_DIR STRONGROOM_LISTEN STRONGROOM_TLS_CERT STRONGROOM_TLS_KEY STRONGROOM_SMTP_URL
json_field() {
    "${PYTHON}" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
"${BIN}" admin bootstrap --email owner@example.com --org Contract --data-dir "${DATA}" --json >"${WORK}/owner.json"
ORG_ID=$(json_field org_id <"${WORK}/owner.json")
OWNER_KEY=$(json_field api_key <"${WORK}/owner.json")
OWNER_PASSWORD=$(json_field password <"${WORK}/owner.json")
# A second organization, for the one operation that could lock the first out of the run:
# PATCH /api/v1/orgs/{org_id} may turn require_mfa on, after which its owner (who has no second
# factor) is refused everything but enrolment.
"${BIN}" admin bootstrap --email policy@example.com --org Policy --data-dir "${DATA}" --json >"${WORK}/policy.json"
POLICY_ORG_ID=$(json_field org_id <"${WORK}/policy.json")
POLICY_KEY=$(json_field api_key <"${WORK}/policy.json")
member() {
    "${BIN}" admin create-user --email "$1" --org "${ORG_ID}" --role "$2" --password-stdin \
        --data-dir "${DATA}" --json <<<"$("${PYTHON}" -c 'import secrets; print(secrets.token_urlsafe(18))')" |
        json_field user_id
}
MEMBER_ID=$(member member@example.com editor)
LEAVER_ID=$(member leaver@example.com viewer)

# With mail, so that invitations are made (without it they are a documented 503).
if [[ -z "${STRONGROOM_TEST_SMTP_URL:-}" ]]; then
    scripts/mailsink.sh status || STOP_SINK=1
    STRONGROOM_TEST_SMTP_URL=$(scripts/mailsink.sh start | sed -n 1p)
fi

PORT=$(find_free_port 47200)
BASE=https://127.0.0.1:${PORT}
STRONGROOM_SMTP_URL=${STRONGROOM_TEST_SMTP_URL} \
    "${BIN}" serve --data-dir "${DATA}" --listen "127.0.0.1:${PORT}" >"${WORK}/server.log" 2>&1 &
SERVER_PID=$!
CA=${DATA}/tls/cert.pem
for _ in $(seq 1 100); do
    curl -fsS --cacert "${CA}" "${BASE}/healthz" >/dev/null 2>&1 && break
    kill -0 "${SERVER_PID}" 2>/dev/null || { cat "${WORK}/server.log" >&2; die "the server exited"; }
    sleep 0.2
done
curl -fsS --cacert "${CA}" "${BASE}/readyz" >/dev/null || { cat "${WORK}/server.log" >&2; die "the server is not ready"; }
note "serving ${BASE} (data in ${DATA})"

# api METHOD PATH [CURL ARGS...]: the owner key's call; prints the body, fails on a non-2xx.
api() {
    local method=$1 path=$2
    shift 2
    curl -fsS --cacert "${CA}" -X "${method}" -H "Authorization: Bearer ${OWNER_KEY}" "$@" "${BASE}${path}"
}
SPACE_ID=$(api POST "/api/v1/orgs/${ORG_ID}/spaces" -H 'Content-Type: application/json' \
    --data-binary '{"name":"contract"}' | json_field id)
# An image (a 2x2 PNG made here), so that its renditions exist for links and downloads.
"${PYTHON}" - "${WORK}/kept.png" <<'PY'
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
ASSET_ID=$(api POST "/api/v1/spaces/${SPACE_ID}/assets?filename=kept.png" -H 'Content-Type: image/png' \
    --data-binary "@${WORK}/kept.png" | json_field id)
DOOMED_ASSET_ID=$(api POST "/api/v1/spaces/${SPACE_ID}/assets?filename=deleted.txt" \
    -H 'Content-Type: text/plain' --data-binary "to be deleted" | json_field id)
for _ in $(seq 1 150); do
    media_status=$(api GET "/api/v1/assets/${ASSET_ID}" | json_field status)
    [[ "${media_status}" == "processing" ]] || break
    sleep 0.2
done
[[ "${media_status}" == "ready" ]] || die "the image's renditions were not made (status ${media_status})"
link() {
    api POST "/api/v1/assets/${ASSET_ID}/links" -H 'Content-Type: application/json' \
        --data-binary '{"expires_in":3600}' | json_field id
}
LINK_ID=$(link)
new_key() {
    api POST "/api/v1/orgs/${ORG_ID}/api-keys" -H 'Content-Type: application/json' \
        --data-binary "{\"name\":\"$1\",\"role\":\"viewer\"}" | json_field id
}
ROTATED_KEY_ID=$(new_key rotated)
REVOKED_KEY_ID=$(new_key revoked)
role() {
    api POST "/api/v1/orgs/${ORG_ID}/roles" -H 'Content-Type: application/json' \
        --data-binary "{\"name\":\"$1\",\"permissions\":[\"asset:read\"]}" | json_field id
}
ROLE_ID=$(role edited)
DOOMED_ROLE_ID=$(role deleted)
api POST "/api/v1/spaces/${SPACE_ID}/grants" -H 'Content-Type: application/json' \
    --data-binary "{\"user_id\":\"${MEMBER_ID}\",\"role\":\"viewer\"}" >/dev/null
# login: prints "<cookie value> <csrf token> <session id>" of a new session of the owner.
login() {
    local headers=${WORK}/login.headers body
    body=$(curl -fsS --cacert "${CA}" -D "${headers}" -H 'Content-Type: application/json' \
        --data-binary "{\"email\":\"owner@example.com\",\"password\":\"${OWNER_PASSWORD}\"}" \
        "${BASE}/api/v1/auth/login")
    printf '%s %s %s\n' \
        "$(sed -n 's/^set-cookie: __Host-strongroom_session=\([^;]*\).*/\1/Ip' "${headers}")" \
        "$(json_field csrf_token <<<"${body}")" "$(json_field session_id <<<"${body}")"
}
read -r SESSION_SECRET SESSION_CSRF _ < <(login)
read -r _ _ DOOMED_SESSION_ID < <(login)

export ORG_ID SPACE_ID ASSET_ID DOOMED_ASSET_ID LINK_ID ROTATED_KEY_ID REVOKED_KEY_ID \
    MEMBER_ID LEAVER_ID ROLE_ID DOOMED_ROLE_ID DOOMED_SESSION_ID OWNER_KEY \
    SESSION_SECRET SESSION_CSRF
seed=()
if [[ -n "${SCHEMATHESIS_SEED:-}" ]]; then
    seed=(--seed "${SCHEMATHESIS_SEED}")
fi
# run NAME DIR ARGS...: one schemathesis run; a failure is remembered and the next run still goes.
# One worker: Debian 12's Python 3.11 can fail ast.parse in concurrent threads ("AST constructor
# recursion depth mismatch", fixed in later 3.11 releases), which hypothesis calls while
# generating. Retries are for the network only (a kept-alive connection closed just as a request
# went out was seen once in many runs); every response still goes through every check.
status=0
run() {
    local name=$1 dir=$2
    shift 2
    step "schemathesis run --checks all: ${name}"
    (cd "${WORK}" && "${VENV}/bin/schemathesis" --config-file "${ROOT}/scripts/schemathesis.toml" run \
        "${BASE}/api/openapi.json" --url "${BASE}" --tls-verify "${CA}" \
        --checks all --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" --workers 1 "${seed[@]}" \
        --request-retries 2 --report junit --report-dir "${WORK}/report/${dir}" "$@") || status=$?
}
if [[ $# -gt 0 ]]; then
    # A narrowed run: the caller's filters, in one run.
    run "the selected operations" selected "$@"
else
    LAST='^(POST /api/v1/auth/logout|PATCH /api/v1/orgs/\{org_id\})$'
    run "every operation" main --exclude-name-regex "${LAST}"
    # Logging out ends the session; the policy may lock its organization's owner out: last, and
    # the policy in an organization of its own, with its owner's key.
    ORG_ID=${POLICY_ORG_ID} OWNER_KEY=${POLICY_KEY} run "logging out, organization policy" last \
        --include-name-regex "${LAST}"
fi
if [[ ${status} -ne 0 ]]; then
    note "server log (last 10 lines):"
    tail -n 10 "${WORK}/server.log" >&2
    die "schemathesis found problems (exit ${status}); rerun with SCHEMATHESIS_KEEP=1 to keep the log and reports"
fi
