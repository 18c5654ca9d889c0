#!/usr/bin/env bash
# The test command: ./scripts/test.sh [TEST FILTER ARGS...]
#
# Runs every gate CI runs, in CI's order, on a fresh Debian 12 machine or a developer's: installs
# what is missing (Debian packages, rustup components, cargo-deny, cargo-nextest), then
# fmt -> clippy -> cargo-deny -> the test suite against SQLite and a throwaway PostgreSQL -> the
# dashboard in Chromium (scripts/browser-tests.sh) -> the API contract check
# (scripts/schemathesis.sh: the OpenAPI document against a real server).
#
# Environment:
#   SKIP_LINT=1                       skip fmt, clippy and cargo-deny (quick local runs)
#   SKIP_SCHEMATHESIS=1               skip the API contract check (quick local runs; CI runs it)
#   SKIP_BROWSER=1                    skip the dashboard's browser tests (scripts/browser-tests.sh;
#                                     also skipped when a test filter is given)
#   STRONGROOM_TEST_DATABASE_URL=...  use this PostgreSQL instead of starting scripts/postgres.sh
#   STRONGROOM_TEST_SMTP_URL=... and STRONGROOM_TEST_MAILDIR=...
#                                     use this SMTP sink instead of starting scripts/mailsink.sh
#   STRONGROOM_TEST_S3_URL=... (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, STRONGROOM_TEST_S3_ROOT)
#                                     use this S3 server instead of starting scripts/s3.sh
#   STRONGROOM_REQUIRE_ADVISORIES=1   fail, instead of warning, when the advisory DB is unreachable
#   CI=true                           set by CI: no fail-fast, no incremental builds
# Arguments are passed to the test runner (e.g. a test name filter).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# Pinned tool versions: the newest releases whose rust-version (1.88 and 1.91) builds on our 1.95
# toolchain. A pin keeps deny.toml's format and nextest's output stable across machines.
CARGO_DENY_VERSION=0.20.2
CARGO_NEXTEST_VERSION=0.9.143

START=${SECONDS}
TIMINGS=()
# Records how long the step that just finished took, for the summary at the end.
lap() {
    TIMINGS+=("$(printf '%4ss  %s' "$((SECONDS - LAP_START))" "$1")")
    LAP_START=${SECONDS}
}
LAP_START=${SECONDS}

if [[ "${CI:-}" == "true" ]]; then
    # A fresh clone never reuses incremental state, so writing it only costs time and disk.
    export CARGO_INCREMENTAL=0
    export RUST_BACKTRACE=1
fi

# rustup installs into ~/.cargo/bin, which a non-login shell (CI) may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "${HOME}/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    source "${HOME}/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust 1.95 with rustup first"

step "System packages (postgresql, ffmpeg, SMTP sink, openssl, curl, C toolchain)"
# gcc/libc6-dev: aws-lc-sys and the bundled SQLite compile C code. postgresql: the PostgreSQL
# variants of the tests. openssl, curl: used by tests and scripts to make certificates and probe
# the server. oathtool: an independent TOTP. ffmpeg: the media pipeline and the HLS client in the
# tests. python3-aiosmtpd: the SMTP sink that receives the mail the tests cause (scripts/mailsink.sh).
# chromium: plays the HLS stream in a real browser. nginx: the peer of the segment-serving
# benchmark. python3-cryptography: the independent implementation the crypto vectors are checked
# against (crates/crypto/tests/independent_vectors.py). prometheus: its promtool checks the format
# of a metrics scrape (tests/it/metrics.rs).
apt_ensure postgresql openssl curl ca-certificates gcc libc6-dev oathtool ffmpeg python3-aiosmtpd chromium nginx python3-cryptography prometheus
lap "system packages"

ensure_component() {
    local component=$1
    shift
    if ! "$@" >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 || die "'$*' fails and rustup is not installed to add ${component}"
        note "adding rustup component ${component}"
        rustup component add "${component}"
    fi
}

# cargo install replaces a different installed version, and is skipped when this one is present.
ensure_cargo_deny() {
    if [[ "$(cargo deny --version 2>/dev/null || true)" != "cargo-deny ${CARGO_DENY_VERSION}" ]]; then
        note "installing cargo-deny ${CARGO_DENY_VERSION} (a few minutes, once per machine)"
        cargo install "cargo-deny@${CARGO_DENY_VERSION}" --locked --quiet
    fi
}

# The advisory database is a git repository on GitHub, which some networks (ours included) cannot
# reach, while crates.io can. The licence, ban and source checks need only Cargo.lock and crates.io
# metadata, so they always run; advisories run whenever the database can be fetched, or from a
# copy fetched earlier, and otherwise are skipped with a loud notice.
run_cargo_deny() {
    step "cargo deny check licenses bans sources"
    # The inclusion graphs of the duplicate-version warnings run to hundreds of lines: show them
    # only when something fails, where they tell which dependency brought the culprit in.
    if ! cargo deny --locked check --hide-inclusion-graph licenses bans sources; then
        note "cargo-deny failed; again with inclusion graphs:"
        cargo deny --locked check licenses bans sources || true
        die "cargo deny check licenses bans sources failed (see above; exceptions go in deny.toml, with a reason)"
    fi

    step "cargo deny check advisories"
    local fetch_log
    # timeout: an unreachable host may hang the fetch instead of failing fast.
    if fetch_log=$(timeout 180 cargo deny --locked fetch db 2>&1); then
        cargo deny --locked --offline check advisories
        return 0
    fi
    note "NOTICE: could not fetch the RustSec advisory database from github.com:"
    # git's own "fatal:" line names the cause (DNS, refused, ...); cargo-deny's wraps it.
    note "        $({ grep -m1 '^fatal' <<<"${fetch_log}" || tail -n1 <<<"${fetch_log}"; } | cut -c1-150)"
    # A usable earlier copy has the database's crates/ folder (a failed fetch leaves a db.lock).
    if compgen -G "${CARGO_HOME:-${HOME}/.cargo}/advisory-dbs/advisory-db-*/crates" >/dev/null; then
        note "        checking against the copy fetched earlier, which may be out of date."
        cargo deny --locked --offline check advisories
    elif [[ "${STRONGROOM_REQUIRE_ADVISORIES:-}" == "1" ]]; then
        die "no advisory database and STRONGROOM_REQUIRE_ADVISORIES=1"
    else
        note "        SKIPPED the advisory check (no earlier copy on this machine either)."
        note "        Run 'cargo deny check advisories' where GitHub is reachable."
    fi
}

if [[ "${SKIP_LINT:-}" == "1" ]]; then
    step "SKIP_LINT=1: skipping fmt, clippy and cargo-deny"
else
    step "Rust components (rustfmt, clippy)"
    ensure_component rustfmt cargo fmt --version
    ensure_component clippy cargo clippy --version
    lap "components"

    step "cargo fmt --all -- --check"
    cargo fmt --all -- --check
    lap "fmt"

    step "cargo clippy --workspace --all-targets --locked -- -D warnings"
    cargo clippy --workspace --all-targets --locked -- -D warnings
    lap "clippy"

    step "cargo-deny ${CARGO_DENY_VERSION}"
    ensure_cargo_deny
    run_cargo_deny
    lap "cargo-deny"
fi

# Services this run started, stopped at exit (a developer may keep them running between runs to
# save the start-up; those are left alone).
CLEANUP=()
cleanup() {
    local c
    for c in "${CLEANUP[@]}"; do
        ${c} || true
    done
}
trap cleanup EXIT
# Without these, a Ctrl-C or SIGTERM would end bash without running the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM

step "PostgreSQL for the tests"
if [[ -n "${STRONGROOM_TEST_DATABASE_URL:-}" ]]; then
    note "using STRONGROOM_TEST_DATABASE_URL from the environment"
else
    scripts/postgres.sh status || CLEANUP+=("scripts/postgres.sh stop")
    STRONGROOM_TEST_DATABASE_URL=$(scripts/postgres.sh start)
    export STRONGROOM_TEST_DATABASE_URL
    note "PostgreSQL at ${STRONGROOM_TEST_DATABASE_URL%%:*}://strongroom:***@${STRONGROOM_TEST_DATABASE_URL##*@}"
fi
lap "postgresql"

step "SMTP sink for the tests"
if [[ -n "${STRONGROOM_TEST_SMTP_URL:-}" ]]; then
    note "using STRONGROOM_TEST_SMTP_URL and STRONGROOM_TEST_MAILDIR from the environment"
else
    scripts/mailsink.sh status || CLEANUP+=("scripts/mailsink.sh stop")
    sink=$(scripts/mailsink.sh start)
    STRONGROOM_TEST_SMTP_URL=$(sed -n 1p <<<"${sink}")
    STRONGROOM_TEST_MAILDIR=$(sed -n 2p <<<"${sink}")
    export STRONGROOM_TEST_SMTP_URL STRONGROOM_TEST_MAILDIR
    note "SMTP sink at ${STRONGROOM_TEST_SMTP_URL}, mail in ${STRONGROOM_TEST_MAILDIR}/new"
fi
lap "smtp sink"

step "S3 server for the tests"
if [[ -n "${STRONGROOM_TEST_S3_URL:-}" ]]; then
    note "using STRONGROOM_TEST_S3_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and STRONGROOM_TEST_S3_ROOT from the environment"
else
    scripts/s3.sh status || CLEANUP+=("scripts/s3.sh stop")
    scripts/s3.sh start
    eval "$(scripts/s3.sh env)"
    note "S3 (s3s-fs) at ${STRONGROOM_TEST_S3_URL}, files in ${STRONGROOM_TEST_S3_ROOT}"
fi
lap "s3 server"

step "Test runner"
runner=cargo-test
if cargo nextest --version >/dev/null 2>&1; then
    runner=nextest
else
    note "cargo-nextest missing: installing ${CARGO_NEXTEST_VERSION} (a few minutes, once per machine)"
    if cargo install "cargo-nextest@${CARGO_NEXTEST_VERSION}" --locked --quiet; then
        runner=nextest
    else
        note "could not install cargo-nextest; falling back to cargo test"
    fi
fi
lap "test runner"

fail_fast=()
if [[ "${CI:-}" == "true" ]]; then
    # CI should report every failing test in one go, not just the first.
    fail_fast=(--no-fail-fast)
fi

if [[ ${runner} == nextest ]]; then
    step "cargo nextest run --workspace --locked ${fail_fast[*]} $*"
    cargo nextest run --workspace --locked "${fail_fast[@]}" "$@"
    lap "tests (nextest)"
    # nextest does not run doctests; skip them too when the caller narrowed the run with a filter.
    if [[ $# -eq 0 ]]; then
        step "cargo test --doc --workspace --locked"
        cargo test --doc --workspace --locked "${fail_fast[@]}"
        lap "doctests"
    fi
else
    step "cargo test --workspace --locked ${fail_fast[*]} $*"
    cargo test --workspace --locked "${fail_fast[@]}" "$@"
    lap "tests (cargo test)"
fi

if [[ "${SKIP_BROWSER:-}" == "1" ]]; then
    step "SKIP_BROWSER=1: skipping the dashboard's browser tests"
elif [[ $# -eq 0 ]]; then
    # The dashboard end to end in Chromium, against a real server (~1-2 min).
    scripts/browser-tests.sh
    lap "dashboard (Playwright + Chromium)"
fi

if [[ "${SKIP_SCHEMATHESIS:-}" == "1" ]]; then
    step "SKIP_SCHEMATHESIS=1: skipping the API contract check"
else
    # Every documented status, content type and schema, against the real server (~3 min).
    scripts/schemathesis.sh
    lap "API contract (schemathesis)"
fi

step "All checks passed in $((SECONDS - START))s"
printf '%s\n' "${TIMINGS[@]}" >&2
