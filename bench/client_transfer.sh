#!/usr/bin/env bash
# Client transfer benchmark (issue 10 item 4): the command-line client against curl, on the same
# routes of the same Strongroom server, one 1 GiB random file over HTTPS.
#   - upload: `strongroom upload FILE --space SPC` vs curl POST /api/v1/spaces/{id}/assets?filename=
#     (raw body, HTTP/1.1, Bearer key), streamed with -T as bench/lib.sh's sr_upload does. Not
#     --data-binary @FILE: curl reads that whole file into memory first, and curl 7.88 refuses a
#     1 GiB one outright ("option --data-binary: out of memory", its limit for a file in memory);
#   - download: `strongroom download ASSET -o FILE` vs curl GET /api/v1/assets/{id}/content -o FILE;
#     beside it, the same curl followed by an fsync of the file (`sync FILE`), since the client
#     fsyncs what it wrote before it reports success.
# The server offers HTTP/2 (ALPN) and the CLI's reqwest takes it, where curl is held to HTTP/1.1
# as in every other benchmark here; so curl over HTTP/2 (--http2) is measured beside both, to
# tell the protocol's share of any gap from the client's own.
# Targets (issue 10): CLI throughput >= 0.9x curl's, upload and download, with the client's memory
# flat (its peak RSS does not grow with the file).
#
#   bench/client_transfer.sh     RUNS=3 SIZE_MIB=1024 by default
# Raw figures: bench/out/client_transfer.tsv (every transfer), bench/out/client_transfer.rss.tsv
# (the client's RSS every 0.1 s); summary: bench/out/client_transfer.summary.md.
#
# Throughput is bytes / wall time of the client process (GNU time's %e), for the CLI and curl
# alike: the CLI reports no speed of its own, and one clock for both is the fair comparison. Peak
# RSS is the kernel's high-water mark of the client process (ru_maxrss, GNU time's %M). Both
# clients trust the server's certificate by file (--cacert / STRONGROOM_CACERT), so both verify it.
# Client, server and the disk share the machine's cores: CPU seconds of the client and of the
# server are recorded per transfer, to tell whose work a slow run was.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_ensure_tools
# GNU time: the client's wall time, CPU time and peak RSS.
apt_ensure time
# The source file, one stored copy, one downloaded copy.
need_free_mib $((SIZE_MIB * 3 + 512))

WORK=${BENCH_OUT}/client_transfer
mkdir -p "${WORK}"
FILE=${WORK}/transfer.bin
OUT=${WORK}/downloaded.bin
# This benchmark's 1 GiB files are removed at exit (BENCH_KEEP_DATA=1 keeps them).
remove_work() {
    if [[ "${BENCH_KEEP_DATA:-}" != "1" ]]; then
        rm -rf "${WORK}"
    fi
}
BENCH_EXIT_HOOKS+=(remove_work)
make_random_file "${FILE}"
BYTES=$(stat -c %s "${FILE}")
SHA256=$(sha256sum "${FILE}" | cut -d' ' -f1)

build_strongroom
step "Starting Strongroom"
start_strongroom
CA=${SR_DATA}/tls/cert.pem
# The client's settings come from the environment only (docs/client.md).
export STRONGROOM_SERVER=${SR_URL} STRONGROOM_API_KEY=${SR_KEY} STRONGROOM_CACERT=${CA}
UPLOAD_URL="${SR_URL}/api/v1/spaces/${SR_SPACE}/assets?filename="

# Between runs: flush the previous run's dirty pages so that their write-back does not land on
# the next run's clock.
settle() {
    sync
}

RSS_TSV=${BENCH_OUT}/client_transfer.rss.tsv
printf 'direction\tclient\trun\tseconds\trss_mib\n' >"${RSS_TSV}"

# measure DIRECTION CLIENT RUN CMD...: runs CMD under GNU time with its stdout in
# ${WORK}/stdout, sampling the RSS of the process GNU time started every 0.1 s (rows of RSS_TSV,
# warm-ups excluded). Prints "<wall s> <client CPU s> <peak RSS MiB> <server CPU s>".
measure() {
    local direction=$1 client=$2 run=$3 times pid child rest rss started now before after status=0
    shift 3
    times=${WORK}/time.out
    before=$(cpu_seconds "${SR_PID}")
    started=${EPOCHREALTIME}
    /usr/bin/time -f '%e %U %S %M' -o "${times}" "$@" >"${WORK}/stdout" 2>"${WORK}/stderr" &
    pid=$!
    while kill -0 "${pid}" 2>/dev/null; do
        child=""
        { read -r child rest <"/proc/${pid}/task/${pid}/children"; } 2>/dev/null || true
        if [[ -n "${child}" && ${run} -gt 0 ]]; then
            rss=$(awk '$1 == "VmRSS:" { printf "%.1f", $2 / 1024 }' "/proc/${child}/status" 2>/dev/null || true)
            now=${EPOCHREALTIME}
            if [[ -n "${rss}" ]]; then
                printf '%s\t%s\t%s\t%s\t%s\n' "${direction}" "${client}" "${run}" \
                    "$(awk -v s="${started}" -v n="${now}" 'BEGIN { printf "%.1f", n - s }')" \
                    "${rss}" >>"${RSS_TSV}"
            fi
        fi
        sleep 0.1
    done
    wait "${pid}" || status=$?
    after=$(cpu_seconds "${SR_PID}")
    ((status == 0)) || die "${client} ${direction} failed (status ${status}): $(tail -n 5 "${WORK}/stderr")"
    awk -v a="${before}" -v b="${after}" '{ printf "%s %.2f %.1f %.2f\n", $1, $2 + $3, $4 / 1024, b - a }' "${times}"
}

# check_upload CLIENT: the asset the upload made has our size and SHA-256; deletes it.
check_upload() {
    local client=$1 body id
    if [[ ${client} == cli ]]; then
        body=$(jq -c '.items[0]' "${WORK}/stdout")
    else
        body=$(cat "${WORK}/stdout")
    fi
    id=$(jq -er .id <<<"${body}") || die "${client} upload answered without an id: ${body}"
    [[ "$(jq -r .size <<<"${body}")" == "${BYTES}" ]] || die "${client}: Strongroom stored a different size: ${body}"
    [[ "$(jq -r .sha256 <<<"${body}")" == "${SHA256}" ]] || die "${client}: Strongroom stored a different sha256: ${body}"
    sr_api DELETE "/api/v1/assets/${id}" >/dev/null || die "could not delete asset ${id}"
}

TSV=${BENCH_OUT}/client_transfer.tsv
printf 'time\tdirection\tclient\trun\tbytes\twall_s\tbytes_per_s\tclient_cpu_s\tclient_peak_rss_mib\tserver_cpu_s\n' >"${TSV}"

# record DIRECTION CLIENT RUN FIGURES: a TSV row (run > 0) and a note.
record() {
    local direction=$1 client=$2 run=$3 wall cpu rss server speed
    read -r wall cpu rss server <<<"$4"
    speed=$(awk -v b="${BYTES}" -v w="${wall}" 'BEGIN { printf "%.0f", (w > 0) ? b / w : 0 }')
    if ((run == 0)); then
        note "warm-up ${direction} ${client}: $(gbps "${speed}") GB/s (discarded)"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Is)" "${direction}" "${client}" \
        "${run}" "${BYTES}" "${wall}" "${speed}" "${cpu}" "${rss}" "${server}" >>"${TSV}"
    note "run ${run} ${direction} ${client}: $(gbps "${speed}") GB/s, ${wall} s, client CPU ${cpu} s, client peak RSS ${rss} MiB, server CPU ${server} s"
}

CURL=(curl --http1.1 -sS --fail-with-body --cacert "${CA}" -H "Authorization: Bearer ${SR_KEY}")
CURL_H2=(curl --http2 -sS --fail-with-body --cacert "${CA}" -H "Authorization: Bearer ${SR_KEY}")
# What the server negotiates with a client offering h2 and http/1.1 by ALPN, as reqwest does.
ALPN=$(curl --http2 -sS --cacert "${CA}" -o /dev/null -w '%{http_version}' "${SR_URL}/healthz")

upload_with() {
    local client=$1 run=$2 name="client-$1-$2.bin"
    case ${client} in
    cli)
        measure upload cli "${run}" "${STRONGROOM_BIN}" upload "${FILE}" --space "${SR_SPACE}" --json
        ;;
    curl)
        # As sr_upload: streamed (-T), `Expect:` off; the content type the CLI sends for .bin.
        measure upload curl "${run}" "${CURL[@]}" -X POST -T "${FILE}" -H 'Expect:' \
            -H 'Content-Type: application/octet-stream' "${UPLOAD_URL}${name}"
        ;;
    curl-h2)
        measure upload curl-h2 "${run}" "${CURL_H2[@]}" -X POST -T "${FILE}" -H 'Expect:' \
            -H 'Content-Type: application/octet-stream' "${UPLOAD_URL}${name}"
        ;;
    esac
}

download_with() {
    local client=$1 run=$2
    rm -f "${OUT}" "${OUT}.part"
    settle
    case ${client} in
    cli)
        measure download cli "${run}" "${STRONGROOM_BIN}" download "${ASSET}" -o "${OUT}" --json
        ;;
    curl)
        measure download curl "${run}" "${CURL[@]}" -o "${OUT}" "${SR_URL}/api/v1/assets/${ASSET}/content"
        ;;
    curl-h2)
        measure download curl-h2 "${run}" "${CURL_H2[@]}" -o "${OUT}" "${SR_URL}/api/v1/assets/${ASSET}/content"
        ;;
    curl-fsync)
        # shellcheck disable=SC2016 # expanded by the inner bash
        measure download curl-fsync "${run}" bash -c '"$@" && sync "${OUT_FILE}"' _ \
            "${CURL[@]}" -o "${OUT}" "${SR_URL}/api/v1/assets/${ASSET}/content"
        ;;
    esac
    [[ "$(stat -c %s "${OUT}")" == "${BYTES}" ]] || die "${client} downloaded a different size"
}
export OUT_FILE=${OUT}

UP_CLIENTS=(cli curl curl-h2)
DOWN_CLIENTS=(cli curl curl-h2 curl-fsync)
declare -A speeds rsss ccpus scpus

step "Upload: ${RUNS} interleaved runs of ${SIZE_MIB} MiB per client (after one warm-up each)"
for ((run = 0; run <= RUNS; run++)); do
    # Rotate which client goes first.
    order=("${UP_CLIENTS[@]:run%${#UP_CLIENTS[@]}}" "${UP_CLIENTS[@]:0:run%${#UP_CLIENTS[@]}}")
    for client in "${order[@]}"; do
        settle
        figures=$(upload_with "${client}" "${run}")
        check_upload "${client}"
        record upload "${client}" "${run}" "${figures}"
        if ((run > 0)); then
            read -r wall cpu rss server <<<"${figures}"
            speeds[upload.${client}]+="$(awk -v b="${BYTES}" -v w="${wall}" 'BEGIN { printf "%.0f", b / w }') "
            rsss[upload.${client}]+="${rss} " ccpus[upload.${client}]+="${cpu} " scpus[upload.${client}]+="${server} "
        fi
    done
done

step "Uploading the file once for the downloads"
read -r code _ body < <(sr_upload "${FILE}" download.bin)
[[ "${code}" == 201 ]] || die "upload answered ${code}: ${body}"
ASSET=$(jq -er .id <<<"${body}")

step "Download: ${RUNS} interleaved runs of ${SIZE_MIB} MiB per client (after one warm-up each)"
for ((run = 0; run <= RUNS; run++)); do
    order=("${DOWN_CLIENTS[@]:run%${#DOWN_CLIENTS[@]}}" "${DOWN_CLIENTS[@]:0:run%${#DOWN_CLIENTS[@]}}")
    for client in "${order[@]}"; do
        figures=$(download_with "${client}" "${run}")
        if [[ ${client} == cli ]]; then
            [[ "$(jq -r .sha256 "${WORK}/stdout")" == "${SHA256}" ]] || die "the CLI reports another sha256: $(cat "${WORK}/stdout")"
        fi
        record download "${client}" "${run}" "${figures}"
        if ((run > 0)); then
            read -r wall cpu rss server <<<"${figures}"
            speeds[download.${client}]+="$(awk -v b="${BYTES}" -v w="${wall}" 'BEGIN { printf "%.0f", b / w }') "
            rsss[download.${client}]+="${rss} " ccpus[download.${client}]+="${cpu} " scpus[download.${client}]+="${server} "
        fi
    done
done
rm -f "${OUT}" "${OUT}.part"

# med KIND KEY: the median of the values recorded for KEY in the array named KIND.
med() {
    local -n values=$1
    # shellcheck disable=SC2086 # word splitting intended: a space-separated list
    median ${values[$2]}
}
per_gb() {
    awk -v c="$1" -v b="${BYTES}" 'BEGIN { printf "%.3f", c / (b / 1e9) }'
}
# half_medians DIRECTION CLIENT: the CLI's median sampled RSS in the first and second half of each
# measured run's samples, over all runs ("A / B"): flat memory shows as B close to A.
half_medians() {
    awk -F'\t' -v d="$1" -v c="$2" 'NR > 1 && $1 == d && $2 == c { n[$3]++; v[$3, n[$3]] = $5 }
        END { for (r in n) for (i = 1; i <= n[r]; i++) print (i <= n[r] / 2 ? "a" : "b"), v[r, i] }' "${RSS_TSV}" |
        sort -k1,1 -k2,2g | awk '{ x[$1] = x[$1] " " $2 } END { print x["a"] "|" x["b"] }' | {
        IFS='|' read -r a b
        # shellcheck disable=SC2086
        if [[ -z "${a// /}" || -z "${b// /}" ]]; then
            printf 'too few samples'
        else
            printf '%.1f / %.1f' "$(median ${a})" "$(median ${b})"
        fi
    }
}

row() {
    local direction=$1 client=$2 label=$3 key=$1.$2
    printf '| %s | %s | %s | %s | %s | %s |' "${label}" "$(gbps "$(med speeds "${key}")")" \
        "$(fmt3 "$(med rsss "${key}")" | sed 's/0*$//; s/\.$//')" \
        "$(per_gb "$(med ccpus "${key}")")" "$(per_gb "$(med scpus "${key}")")" \
        "$(if [[ ${client} == cli ]]; then half_medians "${direction}" cli; else echo "-"; fi)"
}

up_ratio=$(ratio "$(med speeds upload.cli)" "$(med speeds upload.curl)")
down_ratio=$(ratio "$(med speeds download.cli)" "$(med speeds download.curl)")
down_ratio_fsync=$(ratio "$(med speeds download.cli)" "$(med speeds download.curl-fsync)")
up_ratio_h2=$(ratio "$(med speeds upload.cli)" "$(med speeds upload.curl-h2)")
down_ratio_h2=$(ratio "$(med speeds download.cli)" "$(med speeds download.curl-h2)")
up_rss=$(med rsss upload.cli) down_rss=$(med rsss download.cli)
max_rss=$(awk -F'\t' 'NR > 1 && $3 == "cli" && $9 > m { m = $9 } END { print m + 0 }' "${TSV}")

step "Client transfer results"
raw_figures client_transfer client_transfer.tsv client_transfer.rss.tsv
report client_transfer \
    "### Client transfer, ${SIZE_MIB} MiB, \`strongroom upload\`/\`download\` vs curl on the same routes, median of ${RUNS}" \
    "" \
    "Same server (fresh data dir, its own certificate trusted by file by both clients), HTTPS, key in \`Authorization: Bearer\`. Throughput = bytes / wall time of the client process; CPU = user+system seconds per 10^9 bytes; peak RSS = the client's ru_maxrss. curl: HTTP/1.1 unless marked, \`Expect:\` off; the CLI ($("${STRONGROOM_BIN}" --version 2>/dev/null | head -n 1 || echo strongroom), reqwest) speaks HTTP/1.1 only for transfers (a client offering h2 gets HTTP/${ALPN} from this server); $(curl --version | head -n 1 | cut -d' ' -f1-2)." \
    "" \
    "| transfer | throughput GB/s | client peak RSS MiB | client CPU s/GB | server CPU s/GB | CLI RSS, median of 1st / 2nd half of samples, MiB |" \
    "|---|---|---|---|---|---|" \
    "$(row upload cli 'upload, `strongroom upload`')" \
    "$(row upload curl 'upload, curl -T (streamed; the peer)')" \
    "$(row upload curl-h2 'upload, curl -T --http2 (not a target)')" \
    "$(row download cli 'download, `strongroom download -o` (SHA-256 checked as it arrives, fsync before the rename)')" \
    "$(row download curl 'download, curl -o (the peer)')" \
    "$(row download curl-h2 'download, curl -o --http2 (not a target)')" \
    "$(row download curl-fsync 'download, curl -o, then fsync of the file (not a target)')" \
    "" \
    "- upload ratio CLI/curl: **${up_ratio}** (target >= 0.9: $(verdict "${up_ratio}" '>=' 0.9)); against curl --http2: ${up_ratio_h2}" \
    "- download ratio CLI/curl: **${down_ratio}** (target >= 0.9: $(verdict "${down_ratio}" '>=' 0.9)); against curl --http2: ${down_ratio_h2}; against curl + fsync: ${down_ratio_fsync}" \
    "- CLI peak RSS: upload **${up_rss} MiB**, download **${down_rss} MiB** (median of ${RUNS}; highest of any run ${max_rss} MiB) for a ${SIZE_MIB} MiB file: flat if far below the file's size and the halves agree" \
    "- raw figures: bench/out/client_transfer.tsv (every transfer), bench/out/client_transfer.rss.tsv (the client's RSS every 0.1 s)"
