#!/usr/bin/env bash
# Upload benchmark: one 1 GiB file over HTTPS (TLS 1.3, HTTP/1.1, one stream), nginx accepting it
# by WebDAV PUT (buffered, not fsync'd) vs Strongroom storing it encrypted and fsync'd.
# Target (DESIGN.md): throughput >= 1.0x nginx.
#
#   bench/upload.sh              RUNS=3 SIZE_MIB=1024 by default
# Raw figures: bench/out/upload.tsv; summary: bench/out/upload.summary.md.
#
# Buffered-write speed on this kind of VM swings widely (DEPENDENCIES.md), hence interleaved runs,
# alternating order, and medians. Each stored copy is deleted before the next run so that both
# servers always write into the same amount of free space and dirty page cache.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_ensure_tools
# The source file + one stored copy at a time.
need_free_mib $((SIZE_MIB * 2 + 512))

SRC_DIR=${BENCH_OUT}/src
WWW=${BENCH_OUT}/dav
mkdir -p "${SRC_DIR}" "${WWW}"
FILE=${SRC_DIR}/upload.bin
make_random_file "${FILE}"
BYTES=$(stat -c %s "${FILE}")

build_strongroom
step "Starting servers"
start_nginx "${WWW}"
start_strongroom

# Both stores write into page cache that the kernel flushes later; flush it between runs so one
# run's write-back does not land on the next run's clock.
settle() {
    sync
}

# put_nginx RUN: prints "<bytes/s> <server CPU s>".
put_nginx() {
    local target=${WWW}/put-$1.bin before after out code speed
    before=$(cpu_seconds "${NGINX_PID}")
    out=$(curl --http1.1 -sSk -T "${FILE}" -H 'Expect:' -o /dev/null \
        -w '%{http_code} %{speed_upload}' "${NGINX_URL}/put-$1.bin")
    after=$(cpu_seconds "${NGINX_PID}")
    read -r code speed <<<"${out}"
    [[ "${code}" == 201 || "${code}" == 204 ]] || die "nginx PUT answered ${code}"
    [[ "$(stat -c %s "${target}")" == "${BYTES}" ]] || die "nginx stored a different size"
    rm -f "${target}"
    printf '%s %s\n' "${speed}" "$(awk -v a="${before}" -v b="${after}" 'BEGIN { print b - a }')"
}

# post_strongroom RUN: prints "<bytes/s> <server CPU s>".
post_strongroom() {
    local before after code speed body id sha
    before=$(cpu_seconds "${SR_PID}")
    read -r code speed body < <(sr_upload "${FILE}" "big-$1.bin")
    after=$(cpu_seconds "${SR_PID}")
    [[ "${code}" == 201 ]] || die "Strongroom upload answered ${code}: ${body}"
    [[ "$(jq -r .size <<<"${body}")" == "${BYTES}" ]] || die "Strongroom stored a different size: ${body}"
    sha=$(jq -r .sha256 <<<"${body}")
    # Compared when it is hex (API.md does not fix the encoding; hex is the likely one).
    if [[ "${sha}" =~ ^[0-9a-fA-F]{64}$ && "${sha,,}" != "${SHA256}" ]]; then
        die "Strongroom reports a different sha256 than the file's: ${body}"
    fi
    id=$(jq -er .id <<<"${body}")
    sr_api DELETE "/api/v1/assets/${id}" >/dev/null || die "could not delete asset ${id}"
    printf '%s %s\n' "${speed}" "$(awk -v a="${before}" -v b="${after}" 'BEGIN { print b - a }')"
}

# Checks that Strongroom stored exactly our bytes (the sha256 it reports).
SHA256=$(sha256sum "${FILE}" | cut -d' ' -f1)

step "Measuring: ${RUNS} interleaved runs of ${SIZE_MIB} MiB each"
TSV=${BENCH_OUT}/upload.tsv
printf 'time\tserver\trun\tbytes\tspeed_bytes_per_s\tserver_cpu_s\tcpu_s_per_gb\n' >"${TSV}"
ng_speed=() sr_speed=() ng_cpu=() sr_cpu=()
# Run 0 is a discarded warm-up of each: it pulls the source file into the page cache, where it
# stays for every measured run.
for ((run = 0; run <= RUNS; run++)); do
    if ((run % 2)); then order=(nginx strongroom); else order=(strongroom nginx); fi
    for server in "${order[@]}"; do
        settle
        if [[ ${server} == nginx ]]; then
            read -r speed cpu < <(put_nginx "${run}")
        else
            read -r speed cpu < <(post_strongroom "${run}")
        fi
        per_gb=$(awk -v c="${cpu}" -v b="${BYTES}" 'BEGIN { printf "%.3f", c / (b / 1e9) }')
        if ((run == 0)); then
            note "warm-up ${server}: $(gbps "${speed}") GB/s (discarded)"
            continue
        fi
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

step "Upload results"
raw_figures upload upload.tsv
report upload \
    "### Upload, ${SIZE_MIB} MiB, HTTPS HTTP/1.1, median of ${RUNS}" \
    "" \
    "| server | throughput GB/s | server CPU s/GB |" \
    "|---|---|---|" \
    "| nginx (WebDAV PUT, no fsync) | $(gbps "${ng_s}") | ${ng_c} |" \
    "| Strongroom (encrypted, fsync'd) | $(gbps "${sr_s}") | ${sr_c} |" \
    "" \
    "- throughput ratio Strongroom/nginx: **${speed_ratio}** (target >= 1.0: $(verdict "${speed_ratio}" '>=' 1.0))" \
    "- raw figures: bench/out/upload.tsv"
