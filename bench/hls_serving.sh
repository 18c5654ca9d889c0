#!/usr/bin/env bash
# HLS segment-serving benchmark: many concurrent viewers fetching a stream's encrypted segments
# from Strongroom (`/hls/<token>/720p/segNNNNN.ts`: every request checks the playback token in
# the database and decrypts the segment's at-rest blob) against nginx serving the very same bytes
# as plain files. No target (DESIGN.md sets none); measured to know the cost.
#
#   bench/hls_serving.sh            DURATION=20 SECONDS_PER_RUN=15 VIEWERS=1,50,200 PROTOCOLS=1.1,2
#   bench/hls_serving.sh --append   also appends a dated section to bench/RESULTS.md
#
# A release server processes a DURATION-second 1280x720 video (the same synthetic input as
# bench/hls_packaging.sh); a playback is created and the 720p rung's segments are fetched once
# through it and written, byte for byte (still AES-128 ciphertext), under nginx's root at the same
# paths. The load generator (crates/strongroom/examples/hls_viewers.rs) then runs, for each HTTP
# version and viewer count, one run per server (alternating which goes first): every viewer has
# its own keep-alive TLS 1.3 connection and fetches the segment list in order, back to back, for
# SECONDS_PER_RUN. One viewer is the unloaded reference (per-request latency without queueing);
# 50 and 200 are the crowds. Same client, same machine, same sitting. Summary:
# bench/out/hls_serving.summary.md; the generator's JSON: bench/out/hls_serving.json.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-20}
# Not SECONDS: bash's own SECONDS counts the shell's running time.
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
VIEWERS=${VIEWERS:-1,50,200}
PROTOCOLS=${PROTOCOLS:-1.1,2}
RUNG=${RUNG:-720p}
APPEND=0
if [[ "${1:-}" == "--append" ]]; then
    APPEND=1
fi

bench_ensure_tools
# ffmpeg makes the input (and the server's media pipeline needs it, with prlimit).
apt_ensure ffmpeg util-linux

build_args=(--example hls_viewers)
if ((!STRONGROOM_PREBUILT)); then
    build_args+=(--bin strongroom)
fi
step "Building ${build_args[*]} (release)"
(cd "${BENCH_ROOT}" && cargo build --release --locked -p strongroom "${build_args[@]}")
VIEWERS_BIN=${BENCH_TARGET_DIR}/release/examples/hls_viewers

INPUT=${BENCH_OUT}/hls-input-${DURATION}s.mp4
if [[ ! -f "${INPUT}" ]]; then
    step "Generating a ${DURATION} s 1280x720 25 fps H.264/AAC input"
    # As bench/hls_packaging.sh makes it: moving test pattern plus temporal noise, a tone.
    ffmpeg -hide_banner -nostdin -loglevel error \
        -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=${DURATION},noise=alls=5:allf=t" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=${DURATION}" \
        -c:v libx264 -preset fast -crf 20 -pix_fmt yuv420p -c:a aac -b:a 128k -shortest \
        -y "${INPUT}.tmp.mp4"
    mv "${INPUT}.tmp.mp4" "${INPUT}"
fi

start_strongroom

# nginx's document root holds a token in its paths: it goes with the run, whatever the outcome.
DOCROOT=${BENCH_OUT}/hls-serving-root
trap 'bench_cleanup; rm -rf "${DOCROOT}"' EXIT

step "Uploading and processing the video"
body=$(sr_api POST "/api/v1/spaces/${SR_SPACE}/assets?filename=clip.mp4" \
    -H 'Content-Type: video/mp4' --data-binary "@${INPUT}") || die "upload failed: ${body}"
ASSET=$(jq -er .id <<<"${body}") || die "upload answered without an id: ${body}"
status=processing
for ((i = 0; i < 1200; i++)); do
    body=$(sr_api GET "/api/v1/assets/${ASSET}") || die "could not read the asset: ${body}"
    status=$(jq -er .status <<<"${body}")
    [[ ${status} == processing ]] || break
    sleep 0.5
done
[[ ${status} == ready ]] || die "the video ended as '${status}' (10 min at most): ${body}"

body=$(sr_api POST "/api/v1/assets/${ASSET}/playback" -H 'Content-Type: application/json' \
    --data '{"expires_in": 86400}') || die "could not create a playback: ${body}"
PLAYBACK_URL=$(jq -er .url <<<"${body}") || die "playback without a url: ${body}"
# /hls/<token>: the part of the path both servers share.
STREAM=${PLAYBACK_URL#https://*/}
STREAM=/${STREAM%/*}

step "Copying the ${RUNG} segments, as served, into nginx's root"
rm -rf "${DOCROOT}"
mkdir -p "${DOCROOT}${STREAM}/${RUNG}"
LIST=${BENCH_OUT}/hls_serving.segments
: >"${LIST}"
mapfile -t SEGS < <(curl -sSkf "${SR_URL}${STREAM}/${RUNG}/index.m3u8" | grep -E '^seg[0-9]+\.ts$')
((${#SEGS[@]} > 0)) || die "the ${RUNG} playlist lists no segments"
for seg in "${SEGS[@]}"; do
    file=${DOCROOT}${STREAM}/${RUNG}/${seg}
    curl -sSkf -o "${file}" "${SR_URL}${STREAM}/${RUNG}/${seg}" || die "could not fetch ${seg}"
    # MPEG-TS starts with the sync byte 0x47; ciphertext almost never does.
    [[ "$(head -c 1 "${file}" | od -An -tx1 | tr -d ' ')" != 47 ]] ||
        die "${seg} is plain MPEG-TS: the stream is not encrypted"
    printf '%s %s\n' "${STREAM}/${RUNG}/${seg}" "$(stat -c %s "${file}")" >>"${LIST}"
done
SEG_COUNT=${#SEGS[@]}
SEG_MB=$(awk '{ s += $2 } END { printf "%.2f", s / 1e6 }' "${LIST}")
note "${SEG_COUNT} segments, ${SEG_MB} MB"

# nginx as a stock static-file deployment would run it, plus HTTP/2 and unlimited keep-alive
# requests (its default of 1000 per connection would reconnect mid-run and handicap it).
start_hls_nginx() {
    local root=$1 prefix=${BENCH_OUT}/nginx-hls port user_line=""
    mkdir -p "${prefix}/logs" "${prefix}/temp"
    # ECDSA P-256, like the certificate Strongroom makes for itself, so handshakes cost alike; an
    # end-entity certificate (CA:FALSE), which the client's verifier (webpki) insists on.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE \
        -keyout "${prefix}/key.pem" -out "${prefix}/cert.pem" 2>/dev/null
    # As root, workers would run as nobody, who may not traverse the checkout.
    if [[ ${EUID} -eq 0 ]]; then
        user_line="user root;"
    fi
    port=$(find_free_port 18543)
    cat >"${prefix}/nginx.conf" <<EOF
# Generated by bench/hls_serving.sh for one benchmark run.
${user_line}
daemon off;
worker_processes auto;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    types { video/mp2t ts; }
    default_type application/octet-stream;
    client_body_temp_path ${prefix}/temp;
    proxy_temp_path ${prefix}/temp;
    fastcgi_temp_path ${prefix}/temp;
    uwsgi_temp_path ${prefix}/temp;
    scgi_temp_path ${prefix}/temp;
    server {
        listen 127.0.0.1:${port} ssl http2;
        ssl_certificate ${prefix}/cert.pem;
        ssl_certificate_key ${prefix}/key.pem;
        ssl_protocols TLSv1.3;
        location = /healthz { return 200 "ok\n"; }
        location / {
            root ${root};
            add_header Access-Control-Allow-Origin "*";
        }
    }
}
EOF
    nginx -t -q -e "${prefix}/logs/error.log" -p "${prefix}" -c "${prefix}/nginx.conf" 2>"${prefix}/logs/config-test.log" ||
        die "nginx rejected its configuration: $(cat "${prefix}/logs/config-test.log")"
    nginx -e "${prefix}/logs/error.log" -p "${prefix}" -c "${prefix}/nginx.conf" &
    NGINX_PID=$!
    BENCH_PIDS+=("${NGINX_PID}")
    NGINX_URL="https://127.0.0.1:${port}"
    NGINX_CA=${prefix}/cert.pem
    wait_for_https "${NGINX_URL}/healthz" "${NGINX_PID}" ||
        die "nginx did not come up; see ${prefix}/logs/error.log"
    note "nginx $(nginx -v 2>&1 | sed 's|.*/||') on ${NGINX_URL} (pid ${NGINX_PID}), serving ${root}"
}
start_hls_nginx "${DOCROOT}"

# Anything else running (builds, tests) competes for the same cores: record how busy it was.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
JSON=${BENCH_OUT}/hls_serving.json
step "Viewers ${VIEWERS}, HTTP ${PROTOCOLS}, ${SECONDS_PER_RUN} s per run and server"
"${VIEWERS_BIN}" --segments "${LIST}" \
    --strongroom "${SR_URL}" --strongroom-ca "${SR_DATA}/tls/cert.pem" --strongroom-pid "${SR_PID}" \
    --nginx "${NGINX_URL}" --nginx-ca "${NGINX_CA}" --nginx-pid "${NGINX_PID}" \
    --viewers "${VIEWERS}" --http "${PROTOCOLS}" --seconds "${SECONDS_PER_RUN}" \
    --clk-tck "${CLK_TCK}" >"${JSON}"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "${SR_PID}" 2>/dev/null || die "Strongroom died during the run; see ${BENCH_OUT}/strongroom.log"

# One table row per run, then the ratios.
rows=$(jq -r '.runs[] | "| HTTP/\(.http) (\(.negotiated)) | \(.viewers) | \(.server) | \(.requests_per_s) | \(.mb_per_s) | \(.p50_ms) | \(.p99_ms) | \(.ttfb_p50_ms) / \(.ttfb_p99_ms) | \(.server_cpu_cores // "n/a") | \(.server_cpu_s_per_gb // "n/a") | \(.generator_cpu_cores // "n/a") | \(.other_cpu_cores // "n/a") | \(.errors) |"' "${JSON}")
ratio_rows=$(jq -r '.ratios_strongroom_over_nginx[] | "| HTTP/\(.http) | \(.viewers) | **\(.mb_per_s)** | \(.requests_per_s) | \(.p50_ms) | \(.p99_ms) | \(.server_cpu_s_per_gb // "n/a") |"' "${JSON}")

report hls_serving \
    "### HLS segment serving to ${VIEWERS//,/, } concurrent viewers: Strongroom against nginx" \
    "" \
    "Stream: the ${RUNG} rung of a ${DURATION} s 1280x720 video, ${SEG_COUNT} AES-128 segments, ${SEG_MB} MB in all. Strongroom serves \`/hls/<token>/${RUNG}/segNNNNN.ts\` (token looked up in SQLite, rendition and blob rows read, the at-rest blob decrypted and sent 1 MiB at a time); nginx serves the same ciphertext as plain files at the same paths (\`sendfile on\`, \`keepalive_requests 1000000\`, \`worker_processes auto\`, TLS 1.3, \`listen ... ssl http2\`). Client: $(jq -r .client "${JSON}"); viewer i starts at segment i mod ${SEG_COUNT} and loops over the list in order for ${SECONDS_PER_RUN} s per run; a request counts when it answers 200 with the exact size. MB = 10^6 bytes, counted as they arrive; latency is request to last byte." \
    "" \
    "| protocol (negotiated) | viewers | server | req/s | MB/s | p50 ms | p99 ms | TTFB p50 / p99 ms | server CPU cores | server CPU s per GB | client CPU cores | other CPU cores | errors |" \
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|" \
    "${rows}" \
    "" \
    "Strongroom / nginx:" \
    "" \
    "| protocol | viewers | MB/s | req/s | p50 latency | p99 latency | server CPU per GB |" \
    "|---|---|---|---|---|---|---|" \
    "${ratio_rows}" \
    "" \
    "- other CPU cores: what the rest of the machine used during the window (builds, tests), from /proc/stat; a run with much of it is skewed" \
    "- load average (1/5/15 min) before: ${LOAD_BEFORE}, after: ${LOAD_AFTER}; $(nproc) cores shared by both servers (one at a time) and the client" \
    "- raw figures: bench/out/hls_serving.json"

if ((APPEND)); then
    commit=$(git -C "${BENCH_ROOT}" rev-parse --short HEAD 2>/dev/null || echo "no commit")
    if [[ -n "$(git -C "${BENCH_ROOT}" status --porcelain 2>/dev/null)" ]]; then
        commit="${commit} + uncommitted changes"
    fi
    {
        printf '\n## %s (%s: bench/hls_serving.sh alone)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "${commit}"
        printf -- '- machine: %s; nginx %s\n\n' "$(machine_line)" "$(nginx -v 2>&1 | sed 's|.*/||')"
        cat "${BENCH_OUT}/hls_serving.summary.md"
    } >>"${BENCH_ROOT}/bench/RESULTS.md"
    step "Appended to bench/RESULTS.md"
fi
