#!/usr/bin/env bash
# S3 transfer benchmark: Strongroom on an S3 backend (s3s-fs from scripts/s3.sh, on 127.0.0.1)
# against the same transfer made directly against the same S3 server with a plain client.
#   - upload: one 1 GiB file, curl -> Strongroom (HTTPS, POST raw body with its Content-Length;
#     Strongroom encrypts it and streams it to s3s-fs as one PUT of the known ciphertext length, to
#     a pre-signed URL, UNSIGNED-PAYLOAD) vs curl -> s3s-fs (one SigV4-signed PUT of the same
#     file, UNSIGNED-PAYLOAD);
#   - download: the same object back, curl <- Strongroom (HTTPS; Strongroom reads the object as
#     streaming range GETs of 8 MiB segments, three at a time, and decrypts it batch by batch) vs
#     curl <- s3s-fs (one signed GET);
#   - memory: PARALLEL (10) simultaneous 1 GiB uploads to a fresh Strongroom on S3; its peak RSS.
# Targets (issue 9): download >= 0.8x the direct GET; upload >= 0.7x the direct PUT; peak RSS
# during the parallel uploads < 150 MiB (flat, as on disk).
#
#   bench/s3_transfer.sh         RUNS=3 SIZE_MIB=1024 PARALLEL=10 by default
# Raw figures: bench/out/s3_transfer.tsv (every transfer), bench/out/s3_transfer.memory.tsv (RSS
# sampled every 0.1 s); summary: bench/out/s3_transfer.summary.md.
#
# The direct client talks plain HTTP (s3s-fs has no TLS) while Strongroom's clients use HTTPS;
# Strongroom's own hop to s3s-fs is plain HTTP too (loopback). So the ratio charges Strongroom with
# its TLS, its encryption and its S3 request pattern, which is what the targets are about. Every
# process (curl, Strongroom, s3s-fs) shares the machine's cores: CPU time of Strongroom and of
# s3s-fs is recorded per transfer, to tell whose work a slow run was.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PARALLEL=${PARALLEL:-10}

bench_ensure_tools
# The source file; during the memory phase PARALLEL stored objects plus, until each completes,
# their parts (s3s-fs keeps the parts as files and copies them into the object at completion).
need_free_mib $((SIZE_MIB * (2 * PARALLEL + 1) + 512))

SRC_DIR=${BENCH_OUT}/src
mkdir -p "${SRC_DIR}"
FILE=${SRC_DIR}/upload.bin
make_random_file "${FILE}"
BYTES=$(stat -c %s "${FILE}")
SHA256=$(sha256sum "${FILE}" | cut -d' ' -f1)

build_strongroom
step "Starting servers"
start_s3
# The only backend: this bucket, under a prefix of its own. Credentials from the environment
# (start_s3 exported them), as docs/configuration.md allows.
SR_CONFIG=${BENCH_OUT}/s3_transfer.toml
strongroom_storage_config "${SR_CONFIG}" 1 \
    "s3=s3://${S3_BUCKET}/strongroom?endpoint=${S3_ENDPOINT}&region=${S3_REGION}"
export STRONGROOM_CONFIG=${SR_CONFIG}
start_strongroom

# Both stores write into page cache that the kernel flushes later; flush it between runs so one
# run's write-back does not land on the next run's clock.
settle() {
    sync
}

# cpu_delta BEFORE AFTER
cpu_delta() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", b - a }'
}

# put_direct KEY: one signed PUT of the file to s3s-fs; prints "<bytes/s> <sr CPU s> <s3s CPU s>".
put_direct() {
    local key=$1 sr0 s30 out code speed
    sr0=$(cpu_seconds "${SR_PID}") s30=$(cpu_seconds "${S3_PID}")
    out=$(s3_curl -T "${FILE}" -o /dev/null -w '%{http_code} %{speed_upload}' \
        "${S3_ENDPOINT}/${S3_BUCKET}/direct/${key}")
    read -r code speed <<<"${out}"
    [[ "${code}" == 200 ]] || die "direct PUT to s3s-fs answered ${code}"
    [[ "$(stat -c %s "${S3_DATA}/direct/${key}")" == "${BYTES}" ]] || die "s3s-fs stored a different size"
    printf '%s %s %s\n' "${speed}" "$(cpu_delta "${sr0}" "$(cpu_seconds "${SR_PID}")")" \
        "$(cpu_delta "${s30}" "$(cpu_seconds "${S3_PID}")")"
}

delete_direct() {
    local code
    code=$(s3_curl -X DELETE -o /dev/null -w '%{http_code}' "${S3_ENDPOINT}/${S3_BUCKET}/direct/$1")
    [[ "${code}" == 204 || "${code}" == 200 ]] || die "direct DELETE answered ${code}"
}

# post_strongroom NAME: one upload to Strongroom; prints "<bytes/s> <sr CPU s> <s3s CPU s> <asset id>".
post_strongroom() {
    local sr0 s30 code speed body sha
    sr0=$(cpu_seconds "${SR_PID}") s30=$(cpu_seconds "${S3_PID}")
    read -r code speed body < <(sr_upload "${FILE}" "$1")
    [[ "${code}" == 201 ]] || die "Strongroom upload answered ${code}: ${body}"
    [[ "$(jq -r .size <<<"${body}")" == "${BYTES}" ]] || die "Strongroom stored a different size: ${body}"
    sha=$(jq -r .sha256 <<<"${body}")
    if [[ "${sha}" =~ ^[0-9a-fA-F]{64}$ && "${sha,,}" != "${SHA256}" ]]; then
        die "Strongroom reports a different sha256 than the file's: ${body}"
    fi
    printf '%s %s %s %s\n' "${speed}" "$(cpu_delta "${sr0}" "$(cpu_seconds "${SR_PID}")")" \
        "$(cpu_delta "${s30}" "$(cpu_seconds "${S3_PID}")")" "$(jq -er .id <<<"${body}")"
}

# get_direct KEY / get_strongroom ASSET: one download to /dev/null; prints
# "<bytes/s> <sr CPU s> <s3s CPU s>".
get_direct() {
    local sr0 s30 out code size speed
    sr0=$(cpu_seconds "${SR_PID}") s30=$(cpu_seconds "${S3_PID}")
    out=$(s3_curl -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
        "${S3_ENDPOINT}/${S3_BUCKET}/direct/$1")
    read -r code size speed <<<"${out}"
    [[ "${code}" == 200 && "${size}" == "${BYTES}" ]] ||
        die "direct GET answered ${code} with ${size} of ${BYTES} bytes"
    printf '%s %s %s\n' "${speed}" "$(cpu_delta "${sr0}" "$(cpu_seconds "${SR_PID}")")" \
        "$(cpu_delta "${s30}" "$(cpu_seconds "${S3_PID}")")"
}

get_strongroom() {
    local sr0 s30 out code size speed
    sr0=$(cpu_seconds "${SR_PID}") s30=$(cpu_seconds "${S3_PID}")
    out=$(curl --http1.1 -sSk -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
        -H "Authorization: Bearer ${SR_KEY}" "${SR_URL}/api/v1/assets/$1/content")
    read -r code size speed <<<"${out}"
    [[ "${code}" == 200 && "${size}" == "${BYTES}" ]] ||
        die "Strongroom download answered ${code} with ${size} of ${BYTES} bytes"
    printf '%s %s %s\n' "${speed}" "$(cpu_delta "${sr0}" "$(cpu_seconds "${SR_PID}")")" \
        "$(cpu_delta "${s30}" "$(cpu_seconds "${S3_PID}")")"
}

TSV=${BENCH_OUT}/s3_transfer.tsv
printf 'time\tdirection\tpath\trun\tbytes\tspeed_bytes_per_s\tstrongroom_cpu_s\ts3s_fs_cpu_s\n' >"${TSV}"

# record DIRECTION PATH RUN SPEED SR_CPU S3_CPU
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Is)" "$1" "$2" "$3" "${BYTES}" "$4" "$5" "$6" >>"${TSV}"
    note "run $3 $1 $2: $(gbps "$4") GB/s (CPU s: Strongroom $5, s3s-fs $6)"
}

step "Upload: ${RUNS} interleaved runs of ${SIZE_MIB} MiB each (plus a discarded warm-up of each)"
up_direct=() up_sr=()
for ((run = 0; run <= RUNS; run++)); do
    # Alternate which goes first, so neither always follows the other's write-back.
    if ((run % 2)); then order=(direct strongroom); else order=(strongroom direct); fi
    for path in "${order[@]}"; do
        settle
        if [[ ${path} == direct ]]; then
            line=$(put_direct "up-${run}.bin")
            read -r speed c1 c2 <<<"${line}"
            delete_direct "up-${run}.bin"
        else
            line=$(post_strongroom "up-${run}.bin")
            read -r speed c1 c2 id <<<"${line}"
            sr_api DELETE "/api/v1/assets/${id}" >/dev/null || die "could not delete asset ${id}"
        fi
        if ((run == 0)); then
            note "warm-up ${path}: $(gbps "${speed}") GB/s (discarded)"
            continue
        fi
        record upload "${path}" "${run}" "${speed}" "${c1}" "${c2}"
        if [[ ${path} == direct ]]; then up_direct+=("${speed}"); else up_sr+=("${speed}"); fi
    done
done

step "Download: the file stored once each way, a warm-up of each, then ${RUNS} interleaved runs"
settle
line=$(post_strongroom down.bin)
read -r _ _ _ ASSET <<<"${line}"
put_direct down.bin >/dev/null
get_direct down.bin >/dev/null
get_strongroom "${ASSET}" >/dev/null
down_direct=() down_sr=()
for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then order=(direct strongroom); else order=(strongroom direct); fi
    for path in "${order[@]}"; do
        case ${path} in
        direct) line=$(get_direct down.bin) ;;
        *) line=$(get_strongroom "${ASSET}") ;;
        esac
        read -r speed c1 c2 <<<"${line}"
        record download "${path}" "${run}" "${speed}" "${c1}" "${c2}"
        case ${path} in
        direct) down_direct+=("${speed}") ;;
        strongroom) down_sr+=("${speed}") ;;
        esac
    done
done
delete_direct down.bin
sr_api DELETE "/api/v1/assets/${ASSET}" >/dev/null || die "could not delete asset ${ASSET}"

# ---------------------------------------------------------------------------------------------
# Memory: a fresh server, so that its high-water mark is the parallel uploads' alone.

step "Memory: ${PARALLEL} x ${SIZE_MIB} MiB uploaded in parallel to a fresh Strongroom on S3"
stop_strongroom
start_strongroom
idle_hwm=$(mem_mib "${SR_PID}" VmHWM)
note "peak RSS after start-up: ${idle_hwm} MiB"
settle
MEM_TSV=${BENCH_OUT}/s3_transfer.memory.tsv
printf 'seconds\trss_mib\n' >"${MEM_TSV}"
upload_pids=()
started=$(date +%s.%N)
for ((i = 1; i <= PARALLEL; i++)); do
    sr_upload "${FILE}" "parallel-${i}.bin" >"${BENCH_OUT}/s3_transfer-upload-${i}.out" &
    upload_pids+=("$!")
done
while :; do
    running=0
    for pid in "${upload_pids[@]}"; do
        if kill -0 "${pid}" 2>/dev/null; then running=1; fi
    done
    ((running)) || break
    kill -0 "${SR_PID}" 2>/dev/null || die "Strongroom died during the uploads; see ${BENCH_OUT}/strongroom.log"
    printf '%s\t%s\n' "$(awk -v s="${started}" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')" \
        "$(mem_mib "${SR_PID}" VmRSS)" >>"${MEM_TSV}"
    sleep 0.1
done
for pid in "${upload_pids[@]}"; do
    wait "${pid}" || true
done
elapsed=$(awk -v s="${started}" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
peak=$(mem_mib "${SR_PID}" VmHWM)
after=$(mem_mib "${SR_PID}" VmRSS)
s3_peak=$(mem_mib "${S3_PID}" VmHWM)
ok=0
for ((i = 1; i <= PARALLEL; i++)); do
    read -r code _ body <"${BENCH_OUT}/s3_transfer-upload-${i}.out"
    if [[ "${code}" == 201 && "$(jq -r .size <<<"${body}" 2>/dev/null)" == "${BYTES}" ]]; then
        ok=$((ok + 1))
    else
        note "upload ${i} failed: ${code} ${body}"
    fi
done
((ok == PARALLEL)) || die "${ok} of ${PARALLEL} uploads succeeded; the memory figure is not meaningful"
aggregate=$(awk -v b="${BYTES}" -v n="${PARALLEL}" -v t="${elapsed}" 'BEGIN { printf "%.3f", b * n / t / 1e9 }')
# The second half of the samples against the first: "flat" means no growth with time.
rss_halves=$(awk -F'\t' 'NR > 1 { v[++n] = $2 } END {
    if (n < 2) { print "n/a"; exit }
    for (i = 1; i <= n; i++) { if (i <= n / 2) { a += v[i]; na++ } else { b += v[i]; nb++ } }
    printf "%.1f MiB in the first half of the samples, %.1f MiB in the second", a / na, b / nb }' "${MEM_TSV}")

# ---------------------------------------------------------------------------------------------

# median_col DIRECTION PATH COLUMN: the median of a TSV column over the measured runs.
median_col() {
    # shellcheck disable=SC2046 # one number per word
    median $(awk -F'\t' -v d="$1" -v p="$2" -v c="$3" '$2 == d && $3 == p { print $c }' "${TSV}")
}
# cpu_per_gb DIRECTION PATH COLUMN
cpu_per_gb() {
    awk -v c="$(median_col "$1" "$2" "$3")" -v b="${BYTES}" 'BEGIN { printf "%.3f", c / (b / 1e9) }'
}

ud=$(median "${up_direct[@]}") us=$(median "${up_sr[@]}")
dd_=$(median "${down_direct[@]}") ds=$(median "${down_sr[@]}")
up_ratio=$(ratio "${us}" "${ud}")
down_ratio=$(ratio "${ds}" "${dd_}")

row() {
    printf '| %s | %s | %s | %s |' "$1" "$(gbps "$2")" "$(cpu_per_gb "$3" "$4" 7)" "$(cpu_per_gb "$3" "$4" 8)"
}

step "S3 transfer results"
raw_figures s3_transfer s3_transfer.tsv s3_transfer.memory.tsv
report s3_transfer \
    "### S3 backend, ${SIZE_MIB} MiB, Strongroom (HTTPS) vs the same S3 server directly, median of ${RUNS}" \
    "" \
    "S3 server: s3s-fs $("$(command -v s3s-fs || echo "${HOME}/.cargo/bin/s3s-fs")" --version | cut -d' ' -f2) on 127.0.0.1 (scripts/s3.sh; files under bench/out/s3, plain HTTP, SigV4 checked). Direct client: curl \`--aws-sigv4\`, one PUT (UNSIGNED-PAYLOAD, 100-continue) / one GET, HTTP/1.1. Strongroom: one S3 backend (\`copies = 1\`), an upload with a known length streamed as one PUT to a pre-signed URL (UNSIGNED-PAYLOAD), a download as streaming range GETs of 8 MiB segments, three in flight; its clients: curl over HTTPS as in the other sections. CPU columns: seconds per 10^9 bytes moved, of each server process." \
    "" \
    "| transfer | throughput GB/s | Strongroom CPU s/GB | s3s-fs CPU s/GB |" \
    "|---|---|---|---|" \
    "$(row "upload, curl PUT -> s3s-fs" "${ud}" upload direct)" \
    "$(row "upload, curl -> Strongroom -> s3s-fs" "${us}" upload strongroom)" \
    "$(row "download, curl GET <- s3s-fs" "${dd_}" download direct)" \
    "$(row "download, curl <- Strongroom <- s3s-fs" "${ds}" download strongroom)" \
    "" \
    "- upload ratio Strongroom/direct: **${up_ratio}** (target >= 0.7: $(verdict "${up_ratio}" '>=' 0.7))" \
    "- download ratio Strongroom/direct: **${down_ratio}** (target >= 0.8: $(verdict "${down_ratio}" '>=' 0.8))" \
    "- ${PARALLEL} parallel ${SIZE_MIB} MiB uploads on S3: peak RSS (VmHWM) of the server **${peak} MiB** (target < 150 MiB: $(verdict "${peak}" '<' 150)); after start-up ${idle_hwm} MiB, after the uploads ${after} MiB; ${rss_halves}; ${elapsed} s in all (aggregate ${aggregate} GB/s); s3s-fs peak RSS ${s3_peak} MiB" \
    "- raw figures: bench/out/s3_transfer.tsv (every transfer), bench/out/s3_transfer.memory.tsv (RSS every 0.1 s)"
