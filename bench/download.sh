#!/usr/bin/env bash
# Download benchmark: one 1 GiB file over HTTPS (TLS 1.3, HTTP/1.1, one stream), nginx serving
# the plaintext file vs Strongroom serving the same bytes as an encrypted asset.
# Targets (DESIGN.md): throughput >= 1.0x nginx; server CPU per GB <= 0.6x nginx.
#
#   bench/download.sh            RUNS=3 SIZE_MIB=1024 by default
# Raw figures: bench/out/download.tsv; summary: bench/out/download.summary.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_ensure_tools
# The plaintext (also nginx's copy: it serves it in place) + Strongroom's encrypted copy.
need_free_mib $((SIZE_MIB * 2 + 512))

WWW=${BENCH_OUT}/www
mkdir -p "${WWW}"
FILE=${WWW}/big.bin
make_random_file "${FILE}"
BYTES=$(stat -c %s "${FILE}")

build_strongroom
step "Starting servers"
start_nginx "${WWW}"
start_strongroom

step "Uploading the file to Strongroom"
read -r code _ body < <(sr_upload "${FILE}" big.bin)
[[ "${code}" == 201 ]] || die "upload answered ${code}: ${body}"
ASSET=$(jq -er .id <<<"${body}")
[[ "$(jq -r .size <<<"${body}")" == "${BYTES}" ]] || die "Strongroom stored a different size: ${body}"
note "asset ${ASSET}"

NGINX_GET=("${NGINX_URL}/big.bin")
SR_GET=(-H "Authorization: Bearer ${SR_KEY}" "${SR_URL}/api/v1/assets/${ASSET}/content")

# fetch PID URL-ARGS...: one download to /dev/null; prints "<bytes/s> <server CPU seconds>".
fetch() {
    local pid=$1 before after out code size speed
    shift
    before=$(cpu_seconds "${pid}")
    # --http1.1: curl would pick HTTP/2 where offered, and nginx here offers only HTTP/1.1.
    out=$(curl --http1.1 -sSk -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$@")
    after=$(cpu_seconds "${pid}")
    read -r code size speed <<<"${out}"
    [[ "${code}" == 200 && "${size}" == "${BYTES}" ]] ||
        die "download answered ${code} with ${size} of ${BYTES} bytes"
    printf '%s %s\n' "${speed}" "$(awk -v a="${before}" -v b="${after}" 'BEGIN { print b - a }')"
}

step "Warm-up (one discarded download each: both then serve from the page cache)"
fetch "${NGINX_PID}" "${NGINX_GET[@]}" >/dev/null
fetch "${SR_PID}" "${SR_GET[@]}" >/dev/null

step "Measuring: ${RUNS} interleaved runs of ${SIZE_MIB} MiB each"
TSV=${BENCH_OUT}/download.tsv
printf 'time\tserver\trun\tbytes\tspeed_bytes_per_s\tserver_cpu_s\tcpu_s_per_gb\n' >"${TSV}"
ng_speed=() ng_cpu=() sr_speed=() sr_cpu=()
for ((run = 1; run <= RUNS; run++)); do
    # Alternate which server goes first, so neither always follows the other's cache effects.
    if ((run % 2)); then order=(nginx strongroom); else order=(strongroom nginx); fi
    for server in "${order[@]}"; do
        if [[ ${server} == nginx ]]; then
            read -r speed cpu < <(fetch "${NGINX_PID}" "${NGINX_GET[@]}")
        else
            read -r speed cpu < <(fetch "${SR_PID}" "${SR_GET[@]}")
        fi
        per_gb=$(awk -v c="${cpu}" -v b="${BYTES}" 'BEGIN { printf "%.3f", c / (b / 1e9) }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Is)" "${server}" "${run}" "${BYTES}" \
            "${speed}" "${cpu}" "${per_gb}" >>"${TSV}"
        note "run ${run} ${server}: $(gbps "${speed}") GB/s, ${per_gb} CPU s/GB"
        if [[ ${server} == nginx ]]; then
            ng_speed+=("${speed}") ng_cpu+=("${per_gb}")
        else
            sr_speed+=("${speed}") sr_cpu+=("${per_gb}")
        fi
    done
done

ng_s=$(median "${ng_speed[@]}") sr_s=$(median "${sr_speed[@]}")
ng_c=$(fmt3 "$(median "${ng_cpu[@]}")") sr_c=$(fmt3 "$(median "${sr_cpu[@]}")")
speed_ratio=$(ratio "${sr_s}" "${ng_s}")
cpu_ratio=$(ratio "${sr_c}" "${ng_c}")

step "Download results"
raw_figures download download.tsv
report download \
    "### Download, ${SIZE_MIB} MiB, HTTPS HTTP/1.1, median of ${RUNS}" \
    "" \
    "| server | throughput GB/s | server CPU s/GB |" \
    "|---|---|---|" \
    "| nginx (plaintext file) | $(gbps "${ng_s}") | ${ng_c} |" \
    "| Strongroom (encrypted asset) | $(gbps "${sr_s}") | ${sr_c} |" \
    "" \
    "- throughput ratio Strongroom/nginx: **${speed_ratio}** (target >= 1.0: $(verdict "${speed_ratio}" '>=' 1.0))" \
    "- CPU per GB ratio Strongroom/nginx: **${cpu_ratio}** (target <= 0.6: $(verdict "${cpu_ratio}" '<=' 0.6))" \
    "- raw figures: bench/out/download.tsv"
