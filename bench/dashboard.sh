#!/usr/bin/env bash
# Dashboard benchmark (issue 10 item 4), against a running Strongroom:
#   (a) page weight: `/` and every file the dashboard loads, found by following the page's own
#       references (index.html's href/src, the modules' static and dynamic imports, the proof-of-
#       work worker), each fetched from the server; raw bytes and gzip -9 bytes per file and in
#       total, and what the server actually sends when asked for gzip/br.
#   (b) a space of ASSETS (10,000) small assets, created through the API; headless Chromium
#       (Debian's, driven by playwright-core from browser/node_modules: bench/dashboard.mjs),
#       signed in through the form, opens /#/spaces/SPC until the first row of the asset table is
#       visible (median of LOADS, after one discarded load), and clicks "Show more" once per load
#       until the next page's first row is visible. The peer: the API call the page makes for that
#       first page (GET /api/v1/spaces/SPC/assets?limit=50) with curl alone, median of API_RUNS.
# Targets (issue 10): every page's scripts and styles together under 150 KiB compressed; a space
# of 10,000 assets opens (first page) in under 1 s.
#
#   bench/dashboard.sh           ASSETS=10000 LOADS=5 API_RUNS=20 CREATE_PARALLEL=4 by default
# Raw figures: bench/out/dashboard.weight.tsv (per file), bench/out/dashboard.browser.tsv (per
# load), bench/out/dashboard.api.tsv (per API call); summary: bench/out/dashboard.summary.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ASSETS=${ASSETS:-10000}
LOADS=${LOADS:-5}
API_RUNS=${API_RUNS:-20}
CREATE_PARALLEL=${CREATE_PARALLEL:-4}
# Assets per curl process (one keep-alive connection each, transfers one after the other).
BATCH=250
# The dashboard's page size (crates/http/ui/js/content.js PAGE).
PAGE_SIZE=50

bench_ensure_tools
# As scripts/browser-tests.sh: Debian's Chromium, node, playwright-core pinned by
# browser/package-lock.json (installed there, gitignored, when missing).
apt_ensure chromium openssl
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_ensure nodejs npm
fi
BROWSER_DIR=${BENCH_ROOT}/browser
PLAYWRIGHT_VERSION=$(node -p "require('${BROWSER_DIR}/package.json').devDependencies['playwright-core']")
installed=$(node -p "require('${BROWSER_DIR}/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [[ "${installed}" != "${PLAYWRIGHT_VERSION}" ]]; then
    note "installing playwright-core ${PLAYWRIGHT_VERSION} from browser/package-lock.json"
    (cd "${BROWSER_DIR}" && npm ci --no-audit --no-fund --loglevel=error)
fi
need_free_mib 1024

WORK=${BENCH_OUT}/dashboard
rm -rf "${WORK}"
mkdir -p "${WORK}/files" "${WORK}/batches"
remove_work() {
    if [[ "${BENCH_KEEP_DATA:-}" != "1" ]]; then
        rm -rf "${WORK}"
    fi
}
BENCH_EXIT_HOOKS+=(remove_work)

build_strongroom
step "Starting Strongroom"
start_strongroom
CA=${SR_DATA}/tls/cert.pem
# A person to sign in as: an owner of the benchmark's organization with a password of our own
# (bootstrap's one-time password is not kept by start_strongroom).
UI_EMAIL=dashboard@example.com
UI_PASSWORD="long passphrase $(openssl rand -hex 12) for one sitting"
"${STRONGROOM_BIN}" admin create-user --email "${UI_EMAIL}" --org "${SR_ORG}" --role owner \
    --password-stdin --data-dir "${SR_DATA}" --json <<<"${UI_PASSWORD}" >/dev/null ||
    die "strongroom admin create-user failed"

# ---------------------------------------------------------------------------------------------
# (a) Page weight

step "Page weight: / and every file it loads"
WEIGHT_TSV=${BENCH_OUT}/dashboard.weight.tsv
printf 'path\tcontent_type\tloaded_by\traw_bytes\tgzip9_bytes\tserved_bytes\tserved_content_encoding\n' >"${WEIGHT_TSV}"
declare -A loaded_by=(["/"]="the navigation")
queue=("/")
order=()
# resolve FROM REF: REF (absolute, or ./ ../ relative to FROM's folder) as an absolute path.
resolve() {
    local from=$1 ref=$2 dir
    case ${ref} in
    /*) printf '%s\n' "${ref}" ;;
    ./* | ../*)
        dir=${from%/*}
        while [[ ${ref} == ../* ]]; do
            dir=${dir%/*} ref=${ref#../}
        done
        printf '%s/%s\n' "${dir}" "${ref#./}"
        ;;
    *) printf '%s\n' "EXTERNAL:${ref}" ;;
    esac
}
# enqueue FROM KIND REF...: queues what FROM refers to, the first reason seen kept.
enqueue() {
    local from=$1 kind=$2 ref p
    shift 2
    for ref in "$@"; do
        p=$(resolve "${from}" "${ref}")
        [[ ${p} != EXTERNAL:* ]] || die "the dashboard refers to another origin: ${ref} (from ${from})"
        if [[ -z "${loaded_by[${p}]:-}" ]]; then
            loaded_by[${p}]="${kind} from ${from}"
            queue+=("${p}")
        fi
    done
}
while ((${#queue[@]} > 0)); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    order+=("${p}")
    f=${WORK}/files/$(tr '/' '_' <<<"${p}")
    # The identity bytes, then what the server sends to a browser asking for compression.
    ctype=$(curl -sS --fail --cacert "${CA}" -o "${f}" -w '%{content_type}' "${SR_URL}${p}") ||
        die "GET ${p} failed"
    served=$(curl -sS --fail --cacert "${CA}" -H 'Accept-Encoding: gzip, deflate, br' -o /dev/null \
        -D "${f}.headers" -w '%{size_download}' "${SR_URL}${p}")
    encoding=$(awk -F': *' 'tolower($1) == "content-encoding" { gsub(/\r/, "", $2); print $2 }' "${f}.headers")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${p}" "${ctype%%;*}" "${loaded_by[${p}]}" \
        "$(stat -c %s "${f}")" "$(gzip -9 -c "${f}" | wc -c)" "${served}" "${encoding:-identity}" >>"${WEIGHT_TSV}"
    case ${ctype%%;*} in
    text/html)
        mapfile -t refs < <(grep -oE '(href|src)="/[^"]*"' "${f}" | sed -E 's/^[a-z]+="//; s/"$//')
        enqueue "${p}" "href/src" "${refs[@]}"
        ;;
    text/javascript | application/javascript)
        mapfile -t refs < <(grep -oE '(^|[^.[:alnum:]_])import[[:space:]]*[^(;]*from[[:space:]]*"[^"]+"|^import[[:space:]]+"[^"]+"' "${f}" |
            sed -E 's/.*"([^"]+)"$/\1/')
        enqueue "${p}" "static import" "${refs[@]}"
        mapfile -t refs < <(grep -oE 'import\([[:space:]]*"[^"]+"' "${f}" | sed -E 's/.*"([^"]+)"$/\1/')
        enqueue "${p}" "dynamic import" "${refs[@]}"
        mapfile -t refs < <(grep -oE 'Worker\([[:space:]]*"[^"]+"' "${f}" | sed -E 's/.*"([^"]+)"$/\1/')
        enqueue "${p}" "worker" "${refs[@]}"
        ;;
    text/css)
        mapfile -t refs < <(grep -oE 'url\([^)]+\)' "${f}" | sed -E 's/^url\(["'\'']?//; s/["'\'']?\)$//' | grep -v '^data:' || true)
        enqueue "${p}" "stylesheet url()" "${refs[@]}"
        ;;
    esac
done
note "$(printf '%s ' "${order[@]}")"
# Sums over the rows whose content type matches RE: "<raw> <gzip -9> <served> <files>".
weight_sum() {
    awk -F'\t' -v re="$1" 'NR > 1 && $2 ~ re { r += $4; g += $5; s += $6; n++ } END { printf "%d %d %d %d\n", r, g, s, n }' "${WEIGHT_TSV}"
}
kib() {
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'
}
read -r code_raw code_gz code_served code_n < <(weight_sum '^(text/javascript|application/javascript|text/css)$')
read -r all_raw all_gz all_served all_n < <(weight_sum '.')
code_gz_kib=$(kib "${code_gz}")
encodings=$(awk -F'\t' 'NR > 1 { print $7 }' "${WEIGHT_TSV}" | sort -u | paste -sd, -)

# ---------------------------------------------------------------------------------------------
# (b) A space of ASSETS assets

step "Creating ${ASSETS} assets in space ${SR_SPACE} (${CREATE_PARALLEL} curl processes at a time, ${BATCH} uploads each on one connection)"
for ((b = 0; b * BATCH < ASSETS; b++)); do
    {
        for ((i = b * BATCH + 1; i <= (b + 1) * BATCH && i <= ASSETS; i++)); do
            name=$(printf 'asset-%05d.txt' "${i}")
            printf 'url = "%s/api/v1/spaces/%s/assets?filename=%s"\n' "${SR_URL}" "${SR_SPACE}" "${name}"
            printf 'cacert = "%s"\nhttp1.1\nsilent\nshow-error\noutput = "/dev/null"\n' "${CA}"
            printf 'write-out = "%%{http_code}\\n"\n'
            printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: text/plain"\n' "${SR_KEY}"
            printf 'data-binary = "Strongroom dashboard benchmark, asset %s of %s.\\n"\n' "${i}" "${ASSETS}"
            ((i == (b + 1) * BATCH || i == ASSETS)) || printf 'next\n'
        done
    } >"${WORK}/batches/$(printf '%04d' "${b}").cfg"
done
created_start=${EPOCHREALTIME}
# shellcheck disable=SC2016 # expanded by the inner sh
printf '%s\n' "${WORK}"/batches/*.cfg | xargs -P "${CREATE_PARALLEL}" -I{} sh -c 'curl -K "$1" >"$1.codes" 2>"$1.err" || true' _ {}
created_s=$(awk -v s="${created_start}" -v n="${EPOCHREALTIME}" 'BEGIN { printf "%.1f", n - s }')
created=$(cat "${WORK}"/batches/*.codes | grep -c '^201$' || true)
((created == ASSETS)) || die "only ${created} of ${ASSETS} uploads answered 201: $(cat "${WORK}"/batches/*.codes | sort | uniq -c | tr '\n' ' ') $(head -c 500 "${WORK}"/batches/*.err)"
note "${created} assets in ${created_s} s"

step "The API alone: GET /api/v1/spaces/${SR_SPACE}/assets?limit=${PAGE_SIZE}, ${API_RUNS} times (after one warm-up)"
API_TSV=${BENCH_OUT}/dashboard.api.tsv
printf 'run\thttp_code\titems\ttotal_ms\tserver_ms\tbytes\n' >"${API_TSV}"
api_total=() api_server=()
for ((run = 0; run <= API_RUNS; run++)); do
    out=$(curl --http1.1 -sS --cacert "${CA}" -H "Authorization: Bearer ${SR_KEY}" -o "${WORK}/page.json" \
        -w '%{http_code} %{time_pretransfer} %{time_starttransfer} %{time_total} %{size_download}' \
        "${SR_URL}/api/v1/spaces/${SR_SPACE}/assets?limit=${PAGE_SIZE}")
    read -r code pre start total size <<<"${out}"
    [[ "${code}" == 200 ]] || die "the asset list answered ${code}"
    items=$(jq '.items | length' "${WORK}/page.json")
    [[ "${items}" == "${PAGE_SIZE}" ]] || die "the asset list had ${items} items, not ${PAGE_SIZE}"
    ((run > 0)) || continue
    total_ms=$(awk -v t="${total}" 'BEGIN { printf "%.1f", t * 1000 }')
    server_ms=$(awk -v a="${pre}" -v b="${start}" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${run}" "${code}" "${items}" "${total_ms}" "${server_ms}" "${size}" >>"${API_TSV}"
    api_total+=("${total_ms}") api_server+=("${server_ms}")
done
note "median ${API_RUNS} API calls: $(median "${api_total[@]}") ms total, $(median "${api_server[@]}") ms from request sent to first byte"

step "Headless Chromium: ${LOADS} loads of /#/spaces/${SR_SPACE} (after one warm-up), one \"Show more\" each"
SPKI=$(openssl x509 -in "${CA}" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)
BROWSER_TSV=${BENCH_OUT}/dashboard.browser.tsv
BENCH_URL=${SR_URL} BENCH_SPACE=${SR_SPACE} BENCH_SPKI=${SPKI} BENCH_EMAIL=${UI_EMAIL} \
    BENCH_PASSWORD=${UI_PASSWORD} BENCH_BROWSER_DIR=${BROWSER_DIR} LOADS=${LOADS} WARMUP=1 \
    PAGE_SIZE=${PAGE_SIZE} CHROMIUM=${CHROMIUM:-$(command -v chromium)} \
    node "${BENCH_ROOT}/bench/dashboard.mjs" >"${WORK}/loads.jsonl" ||
    die "the browser run failed (see above)"
jq -r '[.load, .warmup, .first_row_ms, .first_row_in_page_ms, .rows, .more_ms, .more_in_page_ms, .rows_after_more, .requests] | @tsv' \
    "${WORK}/loads.jsonl" |
    { printf 'load\twarmup\tfirst_row_ms\tfirst_row_in_page_ms\trows\tmore_ms\tmore_in_page_ms\trows_after_more\trequests\n'; cat; } >"${BROWSER_TSV}"
# column N of the measured loads
col() {
    awk -F'\t' -v c="$1" 'NR > 1 && $2 == "false" { print $c }' "${BROWSER_TSV}"
}
bad=$(awk -F'\t' -v p="${PAGE_SIZE}" 'NR > 1 && ($5 != p || $8 != 2 * p)' "${BROWSER_TSV}")
[[ -z "${bad}" ]] || die "a load did not show ${PAGE_SIZE} rows, then $((2 * PAGE_SIZE)) after Show more: ${bad}"
mapfile -t first < <(col 3)
mapfile -t first_in < <(col 4)
mapfile -t more < <(col 6)
mapfile -t more_in < <(col 7)
mapfile -t reqs < <(col 9)
first_med=$(median "${first[@]}")
range() {
    printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'
}

step "Dashboard results"
raw_figures dashboard dashboard.weight.tsv dashboard.browser.tsv dashboard.api.tsv
weight_rows=$(awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %d | %d |\n", $1, $2, $3, $4, $5 }' "${WEIGHT_TSV}")
report dashboard \
    "### Dashboard: page weight, and a space of ${ASSETS} assets in headless Chromium" \
    "" \
    "Files fetched from the running server, following the page's own references (${all_n} files; pow.js is a worker started only when a captcha is asked for, account.js is also imported on demand by keys.js; all are counted)." \
    "" \
    "| file | type | loaded by | bytes | gzip -9 bytes |" \
    "|---|---|---|---|---|" \
    "${weight_rows}" \
    "| **scripts and styles (${code_n} files)** | | | ${code_raw} | **${code_gz}** |" \
    "| all files | | | ${all_raw} | ${all_gz} |" \
    "" \
    "- scripts and styles together, gzip -9: **${code_gz_kib} KiB** (target < 150 KiB: $(verdict "${code_gz_kib}" '<' 150)); all ${all_n} files $(kib "${all_gz}") KiB compressed, $(kib "${all_raw}") KiB raw" \
    "- what the server sends to a browser accepting gzip/br: ${all_served} bytes for all files, Content-Encoding: ${encodings}" \
    "" \
    "Space of ${ASSETS} text assets (made through the API in ${created_s} s, ${CREATE_PARALLEL} curl processes of ${BATCH} uploads at a time); signed in through the form; $(chromium --version 2>/dev/null | cut -d' ' -f1-2) headless, playwright-core ${PLAYWRIGHT_VERSION}; each load from about:blank (the HTTP cache warm from signing in and the warm-up). Medians of ${LOADS}, with their range:" \
    "" \
    "| measure | median ms | range ms |" \
    "|---|---|---|" \
    "| navigation to /#/spaces/SPC -> first row of the asset table visible (Node's clock) | **${first_med}** | $(range "${first[@]}") |" \
    "| the same on the page's clock (navigation start -> first row in the document) | $(median "${first_in[@]}") | $(range "${first_in[@]}") |" \
    "| \"Show more\" click -> row $((PAGE_SIZE + 1)) visible (Node's clock) | $(median "${more[@]}") | $(range "${more[@]}") |" \
    "| the same on the page's clock (click event -> row $((PAGE_SIZE + 1)) in the document) | $(median "${more_in[@]}") | $(range "${more_in[@]}") |" \
    "| peer: curl GET /api/v1/spaces/SPC/assets?limit=${PAGE_SIZE}, new TLS connection each, median of ${API_RUNS} | $(median "${api_total[@]}") | $(range "${api_total[@]}") |" \
    "| peer: the same, request sent -> first byte of the answer | $(median "${api_server[@]}") | $(range "${api_server[@]}") |" \
    "" \
    "- first page of a ${ASSETS}-asset space: **${first_med} ms** (target < 1000 ms: $(verdict "${first_med}" '<' 1000)); $(ratio "${first_med}" "$(median "${api_total[@]}")")x the API call alone; the page made $(median "${reqs[@]}") requests (median) before its first row" \
    "- raw figures: bench/out/dashboard.weight.tsv (per file), bench/out/dashboard.browser.tsv (per load), bench/out/dashboard.api.tsv (per API call)"
