# shellcheck shell=bash
# Helpers shared by the benchmarks in bench/. Sourced, never run.
#
# The benchmarks compare Strongroom with nginx in ONE sitting, on one machine, as ratios: absolute
# throughput on this kind of VM drifts by 10-15% between sittings (DEPENDENCIES.md), so a number
# is only meaningful next to the peer measured minutes apart. They are run by people, never by CI.
#
# Both servers get the same client (curl, HTTP/1.1, one TLS 1.3 connection per transfer), the
# same file system (everything under bench/out/) and warm page caches.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "${BENCH_ROOT}/scripts/lib.sh"

# Everything the benchmarks write lives here (gitignored). Not /tmp: that may be a tmpfs, which
# would both flatter the upload figures and eat RAM.
BENCH_OUT=${BENCH_OUT:-${BENCH_ROOT}/bench/out}
mkdir -p "${BENCH_OUT}"

# Tunables (environment): size of the test file, runs per server.
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: every server started here is stopped at exit, however the script ends.

BENCH_PIDS=()
# Functions bench_cleanup calls after stopping the servers.
BENCH_EXIT_HOOKS=()

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        # TERM: nginx (fast shutdown) and Strongroom (drains, then exits) both stop on it.
        kill -TERM "${pid}" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait "${pid}" 2>/dev/null || true
    done
    BENCH_PIDS=()
    # Scripts' own clean-ups that need the servers gone first (dropping a benchmark database).
    local hook
    for hook in "${BENCH_EXIT_HOOKS[@]}"; do
        "${hook}" || true
    done
    BENCH_EXIT_HOOKS=()
    # The stored assets run to 10 GiB after the memory benchmark; the random source files stay,
    # since making them again costs more than keeping them. BENCH_KEEP_DATA=1 keeps everything.
    if [[ -n "${SR_DATA:-}" && "${BENCH_KEEP_DATA:-}" != "1" ]]; then
        rm -rf "${SR_DATA}"
    fi
}
trap bench_cleanup EXIT
# Without these, a Ctrl-C would end bash without running the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools

bench_ensure_tools() {
    # jq parses the API's JSON; procps is not needed (everything reads /proc directly); wrk is the
    # keep-alive load generator of bench/small_requests.sh.
    apt_ensure nginx curl openssl jq ca-certificates wrk
}

# ---------------------------------------------------------------------------------------------
# Arithmetic and statistics (awk: bash has no floating point)

# median N... ; the mean of the two middle values for an even count.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B -> A/B with 3 decimals
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.3f\n", a / b }'
}

# verdict VALUE OP TARGET -> "meets target" / "MISSES target" (OP is >= , <= or <)
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : v < t
        print ok ? "meets target" : "MISSES target" }'
}

# A number with 3 decimals (medians of an even count gain digits).
fmt3() {
    awk -v v="$1" 'BEGIN { printf "%.3f\n", v }'
}

# bytes/s -> GB/s (10^9, as in DEPENDENCIES.md)
gbps() {
    awk -v s="$1" 'BEGIN { printf "%.3f\n", s / 1e9 }'
}

# ---------------------------------------------------------------------------------------------
# Measuring servers through /proc

# Prints PID and, recursively, its children (nginx: master and workers). Pure bash: it runs
# around every measured transfer and must not fork hundreds of helpers.
proc_tree() {
    local root=$1 stat rest ppid pid fields
    printf '%s\n' "${root}"
    for stat in /proc/[0-9]*/stat; do
        { read -r rest <"${stat}"; } 2>/dev/null || continue
        # Field 2 (comm) may contain spaces and parentheses: cut after the last ')'.
        read -ra fields <<<"${rest##*) }"
        # fields[0] is field 3 (state), fields[1] field 4 (ppid).
        ppid=${fields[1]}
        if [[ "${ppid}" == "${root}" ]]; then
            pid=${stat#/proc/}
            proc_tree "${pid%/stat}"
        fi
    done
}

# Prints the CPU time (user + system, in seconds) used so far by PID and its children.
cpu_seconds() {
    local pid rest fields ticks=0
    while read -r pid; do
        { read -r rest <"/proc/${pid}/stat"; } 2>/dev/null || continue
        read -ra fields <<<"${rest##*) }"
        # fields[0] is field 3; utime and stime are fields 14 and 15, in clock ticks.
        ticks=$((ticks + fields[11] + fields[12]))
    done < <(proc_tree "$1")
    awk -v t="${ticks}" -v hz="${CLK_TCK}" 'BEGIN { printf "%.2f\n", t / hz }'
}

# Prints a field of /proc/PID/status in MiB (VmHWM = peak RSS, VmRSS = current RSS).
mem_mib() {
    awk -v f="$2:" '$1 == f { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

# ---------------------------------------------------------------------------------------------
# Test data

# Makes (or reuses) a random file of SIZE_MIB MiB: random so that no layer can compress it.
make_random_file() {
    local path=$1 bytes=$((SIZE_MIB * 1024 * 1024))
    if [[ -f "${path}" && "$(stat -c %s "${path}")" -eq ${bytes} ]]; then
        return 0
    fi
    note "writing ${SIZE_MIB} MiB of random data to ${path}"
    head -c "${bytes}" /dev/urandom >"${path}.tmp"
    mv "${path}.tmp" "${path}"
}

# Fails early when the file system cannot hold what a benchmark is about to write.
need_free_mib() {
    local want=$1 have
    have=$(df -Pm "${BENCH_OUT}" | awk 'NR == 2 { print $4 }')
    ((have >= want)) || die "need ${want} MiB free under ${BENCH_OUT}, have ${have} MiB"
}

# Waits until URL answers 200 (curl -k: self-signed certificates), or PID dies, or 60 s pass.
wait_for_https() {
    local url=$1 pid=$2 i
    for ((i = 0; i < 600; i++)); do
        if curl -skf -o /dev/null --max-time 2 "${url}"; then
            return 0
        fi
        kill -0 "${pid}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# nginx: the peer. HTTPS with TLS 1.3 only, sendfile on (as a stock deployment would have it;
# with TLS in user space nginx reads into its buffers anyway), WebDAV PUT for the upload peer.

# nginx_certificate DIR: DIR/cert.pem and DIR/key.pem, a self-signed ECDSA P-256 end-entity
# certificate for 127.0.0.1 (like the one Strongroom makes for itself, so handshakes cost alike;
# CA:FALSE, which rustls/webpki clients insist on).
nginx_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE \
        -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# nginx_user_line: as root, nginx's workers would run as nobody/www-data, who can neither write a
# root-owned folder (every PUT would answer 500) nor traverse the checkout; this throwaway instance
# runs them as root.
nginx_user_line() {
    if [[ ${EUID} -eq 0 ]]; then
        echo "user root;"
    fi
}

# hls_test_input SECONDS: bench/out/hls-input-SECONDS.mp4, made once: a 1280x720 25 fps H.264/AAC
# input, synthetic but not trivially compressible (moving test pattern plus temporal noise, a
# tone), with the index (moov) at the end as phones write it, so readers must seek. Prints the path.
hls_test_input() {
    local input=${BENCH_OUT}/hls-input-$1s.mp4
    if [[ ! -f "${input}" ]]; then
        step "Generating a $1 s 1280x720 25 fps H.264/AAC input" >&2
        ffmpeg -hide_banner -nostdin -loglevel error \
            -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=$1,noise=alls=5:allf=t" \
            -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$1" \
            -c:v libx264 -preset fast -crf 20 -pix_fmt yuv420p -c:a aac -b:a 128k -shortest \
            -y "${input}.tmp.mp4"
        mv "${input}.tmp.mp4" "${input}"
    fi
    echo "${input}"
}

# start_nginx ROOT_DIR: sets NGINX_PID (master), NGINX_URL (https://127.0.0.1:PORT).
# NGINX_HTTP_EXTRA: more directives for the http block (e.g. keepalive_requests).
start_nginx() {
    local root=$1 prefix=${BENCH_OUT}/nginx port user_line=""
    mkdir -p "${prefix}/logs" "${prefix}/temp" "${root}"
    # The PUT body is buffered into client_body_temp_path and then renamed into root: both must be
    # on one file system or every PUT costs a second full copy (DEPENDENCIES.md).
    mkdir -p "${prefix}/temp/body" "${prefix}/temp/proxy" "${prefix}/temp/fastcgi" \
        "${prefix}/temp/uwsgi" "${prefix}/temp/scgi"
    [[ -f "${prefix}/cert.pem" ]] || nginx_certificate "${prefix}"
    user_line=$(nginx_user_line)
    port=$(find_free_port 18443)
    cat >"${prefix}/nginx.conf" <<EOF
# Generated by bench/lib.sh for one benchmark run.
${user_line}
daemon off;
worker_processes auto;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path ${prefix}/temp/body;
    proxy_temp_path ${prefix}/temp/proxy;
    fastcgi_temp_path ${prefix}/temp/fastcgi;
    uwsgi_temp_path ${prefix}/temp/uwsgi;
    scgi_temp_path ${prefix}/temp/scgi;
    ${NGINX_HTTP_EXTRA:-}
    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${prefix}/cert.pem;
        ssl_certificate_key ${prefix}/key.pem;
        ssl_protocols TLSv1.3;
        location = /healthz { return 200 "ok\n"; }
        location / {
            root ${root};
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 0;
        }
    }
}
EOF
    nginx -t -q -e "${prefix}/logs/error.log" -p "${prefix}" -c "${prefix}/nginx.conf" 2>"${prefix}/logs/config-test.log" ||
        die "nginx rejected its configuration: $(cat "${prefix}/logs/config-test.log")"
    # -e: nginx opens its error log before reading the config; the default is under /var/log.
    nginx -e "${prefix}/logs/error.log" -p "${prefix}" -c "${prefix}/nginx.conf" &
    NGINX_PID=$!
    BENCH_PIDS+=("${NGINX_PID}")
    NGINX_URL="https://127.0.0.1:${port}"
    wait_for_https "${NGINX_URL}/healthz" "${NGINX_PID}" ||
        die "nginx did not come up; see ${prefix}/logs/error.log"
    note "nginx $(nginx -v 2>&1 | sed 's|.*/||') on ${NGINX_URL} (pid ${NGINX_PID}), serving ${root}"
}

# ---------------------------------------------------------------------------------------------
# Strongroom

# STRONGROOM_BIN=/path/to/strongroom benchmarks that binary instead of building this checkout.
# Where cargo builds: CARGO_TARGET_DIR when set (relative to the checkout), else target/.
BENCH_TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "${BENCH_TARGET_DIR}" == /* ]] || BENCH_TARGET_DIR=${BENCH_ROOT}/${BENCH_TARGET_DIR}
if [[ -n "${STRONGROOM_BIN:-}" ]]; then
    STRONGROOM_PREBUILT=1
else
    STRONGROOM_PREBUILT=0
    STRONGROOM_BIN=${BENCH_TARGET_DIR}/release/strongroom
fi

build_strongroom() {
    if ((STRONGROOM_PREBUILT)); then
        return 0
    fi
    step "Building Strongroom (release)"
    (cd "${BENCH_ROOT}" && cargo build --release --locked -p strongroom)
}

# sr_data_dir: the data dir start_strongroom uses. SR_INSTANCE (a short name) gives a server a
# data dir and log of its own, for benchmarks that run two servers side by side.
sr_data_dir() {
    printf '%s\n' "${BENCH_OUT}/strongroom-data${SR_INSTANCE:+-${SR_INSTANCE}}"
}

# start_strongroom: a fresh data dir, server, owner API key and one space. Sets SR_PID, SR_URL,
# SR_DATA, SR_KEY, SR_ORG, SR_SPACE. The server (and bootstrap) read STRONGROOM_CONFIG when the
# caller exported it (e.g. a [storage] section from strongroom_storage_config).
start_strongroom() {
    local port body log
    [[ -x "${STRONGROOM_BIN}" ]] || build_strongroom
    SR_DATA=$(sr_data_dir)
    log=${BENCH_OUT}/strongroom${SR_INSTANCE:+-${SR_INSTANCE}}.log
    # A fresh data dir each run: earlier runs' assets would only fill the disk.
    rm -rf "${SR_DATA}"
    port=$(find_free_port 28443)
    # 1 GiB uploads are the point of the exercise; the default limit may be lower. The metrics
    # listener (on, as by default) gets a free port: the default 9464 would keep a second server,
    # or any other one on the machine, from starting.
    STRONGROOM_MAX_UPLOAD_BYTES=${STRONGROOM_MAX_UPLOAD_BYTES:-$((4 * 1024 * 1024 * 1024))} \
        STRONGROOM_METRICS_LISTEN=${STRONGROOM_METRICS_LISTEN:-127.0.0.1:0} \
        "${STRONGROOM_BIN}" serve --data-dir "${SR_DATA}" --listen "127.0.0.1:${port}" \
        >"${log}" 2>&1 &
    SR_PID=$!
    BENCH_PIDS+=("${SR_PID}")
    SR_URL="https://127.0.0.1:${port}"
    wait_for_https "${SR_URL}/healthz" "${SR_PID}" ||
        die "Strongroom did not come up; see ${log}"

    body=$("${STRONGROOM_BIN}" admin bootstrap --email bench@example.com --org bench \
        --data-dir "${SR_DATA}" --json) || die "strongroom admin bootstrap failed"
    SR_KEY=$(jq -er .api_key <<<"${body}") || die "bootstrap printed no api_key: ${body}"
    SR_ORG=$(jq -er .org_id <<<"${body}") || die "bootstrap printed no org_id: ${body}"

    body=$(sr_api POST "/api/v1/orgs/${SR_ORG}/spaces" -H 'Content-Type: application/json' \
        --data '{"name":"bench"}') || die "could not create a space: ${body}"
    SR_SPACE=$(jq -er .id <<<"${body}") || die "space creation answered without an id: ${body}"
    note "Strongroom on ${SR_URL} (pid ${SR_PID}), org ${SR_ORG}, space ${SR_SPACE}"
}

# stop_strongroom: stops the server start_strongroom started (it drains, then exits) and forgets
# it, so that a script can start another one (on another database).
stop_strongroom() {
    local pid kept=()
    kill -TERM "${SR_PID}" 2>/dev/null || true
    wait "${SR_PID}" 2>/dev/null || true
    for pid in "${BENCH_PIDS[@]}"; do
        [[ "${pid}" == "${SR_PID}" ]] || kept+=("${pid}")
    done
    BENCH_PIDS=("${kept[@]}")
}

# sr_api METHOD PATH [curl args...]: an authorized API call; prints the body, fails on >= 400.
sr_api() {
    local method=$1 path=$2
    shift 2
    curl -sSk --fail-with-body -X "${method}" -H "Authorization: Bearer ${SR_KEY}" "$@" \
        "${SR_URL}${path}"
}

# sr_upload FILE NAME: uploads FILE as one raw body and prints "<http code> <bytes/s> <json>".
# curl -T streams the file; --data-binary @FILE would first read all of it into curl's memory
# (ten parallel 1 GiB uploads = 10 GiB in curl), and the nginx runs use -T too.
sr_upload() {
    local file=$1 name=$2 resp
    resp=$(mktemp -p "${BENCH_OUT}" upload-response.XXXXXX)
    # `Expect:` turns off curl's 100-continue handshake, for both servers alike.
    curl --http1.1 -sSk -X POST -T "${file}" -H 'Expect:' \
        -H "Authorization: Bearer ${SR_KEY}" -H 'Content-Type: application/octet-stream' \
        -w '%{http_code} %{speed_upload} ' -o "${resp}" \
        "${SR_URL}/api/v1/spaces/${SR_SPACE}/assets?filename=${name}" || true
    tr -d '\n' <"${resp}"
    echo
    rm -f "${resp}"
}

# ---------------------------------------------------------------------------------------------
# S3: s3s-fs (scripts/s3.sh) as the S3 server of the S3 benchmarks

# start_s3: a benchmark's own s3s-fs, with its data under bench/out/s3 (the same file system as
# everything else here; scripts/s3.sh's default, /tmp, may be another one, and the test suite's
# server must not be touched). Sets S3_ENDPOINT (http://127.0.0.1:PORT), S3_BUCKET, S3_REGION,
# S3_PID, S3_DATA (the bucket's folder) and exports AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# for Strongroom. Stopped, and its data removed, at exit.
start_s3() {
    export STRONGROOM_S3_DIR=${BENCH_OUT}/s3
    # A server left behind by an interrupted run: stopped here, started afresh with no data.
    "${BENCH_ROOT}/scripts/s3.sh" stop
    rm -rf "${STRONGROOM_S3_DIR}/data"
    "${BENCH_ROOT}/scripts/s3.sh" start
    eval "$("${BENCH_ROOT}/scripts/s3.sh" env)"
    S3_ENDPOINT=http://127.0.0.1:$(cat "${STRONGROOM_S3_DIR}/port")
    S3_PID=$(cat "${STRONGROOM_S3_DIR}/s3s-fs.pid")
    S3_BUCKET=strongroom-test
    S3_REGION=us-east-1
    # shellcheck disable=SC2034 # read by the benchmarks
    S3_DATA=${STRONGROOM_TEST_S3_ROOT}/${S3_BUCKET}
    BENCH_EXIT_HOOKS+=(stop_s3)
    note "s3s-fs $("$(command -v s3s-fs || echo "${HOME}/.cargo/bin/s3s-fs")" --version | cut -d' ' -f2) on ${S3_ENDPOINT} (pid ${S3_PID}), bucket ${S3_BUCKET}"
}

stop_s3() {
    "${BENCH_ROOT}/scripts/s3.sh" stop
    if [[ "${BENCH_KEEP_DATA:-}" != "1" ]]; then
        rm -rf "${STRONGROOM_S3_DIR}/data"
    fi
}

# s3_curl CURL-ARGS...: curl with SigV4 (curl's own --aws-sigv4), the credentials on its standard
# input rather than its command line (as scripts/s3.sh does). S3 wants the payload's hash in a
# signed header; a streamed body is sent as UNSIGNED-PAYLOAD (what AWS SDKs do over TLS; s3s-fs
# accepts it). Plain HTTP: s3s-fs has no TLS. 100-continue stays on (one loopback round trip per
# transfer): curl 7.88 signs a header removed with `-H 'Expect:'` without sending it, which
# s3s-fs rightly rejects (SignatureDoesNotMatch).
s3_curl() {
    printf 'user = "%s:%s"\n' "${AWS_ACCESS_KEY_ID}" "${AWS_SECRET_ACCESS_KEY}" |
        curl --config - --http1.1 -sS --aws-sigv4 "aws:amz:${S3_REGION}:s3" \
            -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

# strongroom_storage_config FILE COPIES BACKEND...: writes a config file holding only [storage],
# for STRONGROOM_CONFIG. Each BACKEND is NAME=URL.
strongroom_storage_config() {
    local file=$1 copies=$2 backend
    shift 2
    {
        echo "# Generated by bench/ for one benchmark run."
        echo "[storage]"
        echo "copies = ${copies}"
        # The server's own scrub would compete with the measured transfers.
        echo "scrub_interval_hours = 0"
        for backend in "$@"; do
            printf '[[storage.backends]]\nname = "%s"\nurl = "%s"\n' "${backend%%=*}" "${backend#*=}"
        done
    } >"${file}"
}

# ---------------------------------------------------------------------------------------------
# Reporting

# A machine description for reports.
machine_line() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    printf '%s cores (%s), %s MiB RAM, kernel %s' "$(nproc)" "${cpu:-unknown CPU}" \
        "$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -r)"
}

# wrk_run SECONDS URL [wrk args...]: one wrk run (WRK_THREADS threads, CONNECTIONS connections,
# bench/wrk_summary.lua); its JSON goes to WRK_JSON, its text is appended to WRK_LOG.
wrk_run() {
    local seconds=$1 url=$2
    shift 2
    printf '\n--- %s %s (%s s)\n' "$(date -Is)" "${url}" "${seconds}" >>"${WRK_LOG}"
    rm -f "${WRK_JSON}"
    # --timeout: a slow answer must count in the percentiles, not vanish as a timeout at 2 s.
    WRK_JSON=${WRK_JSON} wrk --threads "${WRK_THREADS}" --connections "${CONNECTIONS}" \
        --duration "${seconds}s" --timeout 30s --latency \
        --script "${BENCH_ROOT}/bench/wrk_summary.lua" "$@" "${url}" >>"${WRK_LOG}" 2>&1 ||
        die "wrk failed on ${url}; see ${WRK_LOG}"
    [[ -s "${WRK_JSON}" ]] || die "wrk wrote no figures for ${url}; see ${WRK_LOG}"
}

# report NAME LINE...: prints the lines and writes them to bench/out/NAME.summary.md, which
# run-all.sh copies into RESULTS.md.
report() {
    local name=$1
    shift
    printf '%s\n' "$@" | tee "${BENCH_OUT}/${name}.summary.md"
}

# ---------------------------------------------------------------------------------------------
# RESULTS.md sections: made by a script, from a clean commit, raw figures committed beside them

BENCH_RESULTS=${BENCH_ROOT}/bench/RESULTS.md

# raw_figures NAME FILE...: the files under bench/out holding NAME's raw figures (names relative
# to bench/out). results_section copies them beside RESULTS.md.
raw_figures() {
    local name=$1
    shift
    printf '%s\n' "$@" >"${BENCH_OUT}/${name}.raw"
}

# results_begin: call before measuring anything that will go into RESULTS.md. Dies when the
# checkout has uncommitted changes (tracked or untracked; bench/out is ignored): a section must
# be reproducible from the commit it names. BENCH_ALLOW_DIRTY=1 lets a run through, marked as
# such. Sets RESULTS_COMMIT (for the heading) and RESULTS_DIR (bench/results/<UTC time>-<hash>,
# relative to the checkout), where the raw figures go.
results_begin() {
    local hash dirty
    hash=$(git -C "${BENCH_ROOT}" rev-parse --short HEAD 2>/dev/null) ||
        die "${BENCH_ROOT} is not a git checkout: a RESULTS.md section names its commit"
    dirty=$(git -C "${BENCH_ROOT}" status --porcelain 2>/dev/null)
    RESULTS_COMMIT=${hash}
    RESULTS_DIR=bench/results/$(date -u '+%Y-%m-%d-%H%M')-${hash}
    if [[ -n "${dirty}" ]]; then
        [[ "${BENCH_ALLOW_DIRTY:-}" == "1" ]] ||
            die "uncommitted changes in ${BENCH_ROOT} (git status): commit them first, or set BENCH_ALLOW_DIRTY=1 to record the run as made from uncommitted changes"
        RESULTS_COMMIT="${hash} + uncommitted changes"
        RESULTS_DIR=${RESULTS_DIR}-dirty
    fi
    if ((STRONGROOM_PREBUILT)); then
        RESULTS_COMMIT="${RESULTS_COMMIT}; server binary ${STRONGROOM_BIN}, not built here"
    fi
}

# results_section NAME: prints NAME's summary (bench/out/NAME.summary.md) for RESULTS.md after
# copying the raw figures named by raw_figures into RESULTS_DIR; the summary's bench/out/ paths
# are rewritten to point at the copies.
results_section() {
    local name=$1 file
    mkdir -p "${BENCH_ROOT}/${RESULTS_DIR}"
    if [[ -f "${BENCH_OUT}/${name}.raw" ]]; then
        while read -r file; do
            [[ -n "${file}" ]] || continue
            cp "${BENCH_OUT}/${file}" "${BENCH_ROOT}/${RESULTS_DIR}/" ||
                die "raw figures ${BENCH_OUT}/${file} of ${name} are missing"
        done <"${BENCH_OUT}/${name}.raw"
    fi
    cp "${BENCH_OUT}/${name}.summary.md" "${BENCH_ROOT}/${RESULTS_DIR}/"
    sed "s|bench/out/|${RESULTS_DIR}/|g" "${BENCH_OUT}/${name}.summary.md"
}

# results_append_alone NAME LINE: appends a dated section with NAME's summary alone to RESULTS.md
# (a benchmark's --append). LINE follows the heading (the machine, the peer's version).
results_append_alone() {
    local name=$1 line=$2 section
    section=$(results_section "${name}")
    {
        printf '\n## %s (%s: bench/%s.sh alone)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
            "${RESULTS_COMMIT}" "${name}"
        printf -- '- %s\n\n' "${line}"
        printf '%s\n' "${section}"
    } >>"${BENCH_RESULTS}"
    step "Appended to bench/RESULTS.md; raw figures in ${RESULTS_DIR}: commit both"
}
