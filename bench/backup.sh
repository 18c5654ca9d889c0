#!/usr/bin/env bash
# Backup benchmark (issue 11): a full `strongroom backup create` and `backup restore` of a data
# dir holding BACKUP_ASSETS (1000) assets of BACKUP_ASSET_KIB (1024) KiB each, against `tar` of
# the same data dir in the same sitting; then the bytes a second backup writes after 1% of the
# assets changed. Targets: backup and restore each >= 0.8x tar's throughput; the second backup
# writes <= 3% of the first one's bytes.
#
#   bench/backup.sh             RUNS=3 BACKUP_ASSETS=1000 BACKUP_ASSET_KIB=1024 by default
# Raw figures: bench/out/backup.tsv; summary: bench/out/backup.summary.md.
#
# How it is measured:
#   - The assets are uploaded to a running server (SQLite, one fs backend), each a different
#     random file. The incremental pair runs first, against the running server as in production:
#     a backup, then 1% of the assets changed (BACKUP_ASSETS/100 purged, as many new ones
#     uploaded), then a second backup to the same destination; each reports `new_bytes`.
#   - Then the server is stopped, and each run times, in alternating order: `strongroom backup
#     create --to fs://DEST` into an empty folder vs `tar -cf DEST/data.tar -C DIR .`; and
#     `strongroom backup restore` into an empty data dir vs `tar -xf` into an empty folder. The
#     Strongroom commands fsync what they write (every object is durable before it is listed);
#     tar does not, so each tar is also timed followed by `sync`, reported beside it.
#   - Throughput = the data dir's bytes (du -sb: database, WAL, blobs, key) / wall time.
#   - Destinations and restores live under bench/out, on the same file system as the data dir.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKUP_ASSETS=${BACKUP_ASSETS:-1000}
BACKUP_ASSET_KIB=${BACKUP_ASSET_KIB:-1024}
CHANGED=$((BACKUP_ASSETS / 100))
((CHANGED >= 1)) || CHANGED=1

bench_ensure_tools
need_free_mib $((BACKUP_ASSETS * BACKUP_ASSET_KIB / 1024 * 6 + 1024))
build_strongroom

SRC=${BENCH_OUT}/backup-src
rm -rf "${SRC}"
mkdir -p "${SRC}"
step "Making ${BACKUP_ASSETS} random files of ${BACKUP_ASSET_KIB} KiB (and ${CHANGED} more)"
for ((i = 0; i < BACKUP_ASSETS + CHANGED; i++)); do
    head -c "$((BACKUP_ASSET_KIB * 1024))" /dev/urandom >"${SRC}/f${i}.bin"
done

start_strongroom
step "Uploading ${BACKUP_ASSETS} assets"
IDS=${BENCH_OUT}/backup-ids.txt
: >"${IDS}"
for ((i = 0; i < BACKUP_ASSETS; i++)); do
    read -r code _ body < <(sr_upload "${SRC}/f${i}.bin" "f${i}.bin")
    [[ "${code}" == 201 ]] || die "upload ${i} answered ${code}: ${body}"
    jq -r .id <<<"${body}" >>"${IDS}"
done

TSV=${BENCH_OUT}/backup.tsv
printf 'time\tphase\twhat\trun\tbytes\tseconds\tnew_bytes\n' >"${TSV}"
row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Is)" "$@" >>"${TSV}"
}

step "Incremental: a backup, ${CHANGED} assets purged and ${CHANGED} uploaded, a second backup"
INC=${BENCH_OUT}/backup-inc
rm -rf "${INC}"
first=$("${STRONGROOM_BIN}" backup create --to "fs://${INC}" --json --data-dir "${SR_DATA}") ||
    die "the first backup failed"
first_new=$(jq -r .new_bytes <<<"${first}")
row incremental first 0 "$(jq -r .bytes <<<"${first}")" 0 "${first_new}"
head -n "${CHANGED}" "${IDS}" | while read -r id; do
    sr_api DELETE "/api/v1/assets/${id}?purge=true" >/dev/null || die "could not purge ${id}"
done
for ((i = BACKUP_ASSETS; i < BACKUP_ASSETS + CHANGED; i++)); do
    read -r code _ body < <(sr_upload "${SRC}/f${i}.bin" "f${i}.bin")
    [[ "${code}" == 201 ]] || die "upload ${i} answered ${code}: ${body}"
done
second=$("${STRONGROOM_BIN}" backup create --to "fs://${INC}" --json --data-dir "${SR_DATA}") ||
    die "the second backup failed"
second_new=$(jq -r .new_bytes <<<"${second}")
row incremental second 0 "$(jq -r .bytes <<<"${second}")" 0 "${second_new}"
inc_share=$(awk -v a="${second_new}" -v b="${first_new}" 'BEGIN { printf "%.4f", a / b }')
note "first backup wrote ${first_new} bytes, the second ${second_new} (${inc_share} of the first)"
rm -rf "${INC}"

step "Stopping the server: the full backups and restores run on its data dir"
stop_strongroom
sync
DATA_BYTES=$(du -sb "${SR_DATA}" | cut -f1)
note "data dir: ${DATA_BYTES} bytes"

now() {
    date +%s.%N
}
since() {
    awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'
}

DEST=${BENCH_OUT}/backup-dest
TARDIR=${BENCH_OUT}/backup-tar
RESTORED=${BENCH_OUT}/backup-restored
UNTAR=${BENCH_OUT}/backup-untar
LAST_ID=

sr_backup() {
    local run=$1 t0 out
    rm -rf "${DEST}"
    sync
    t0=$(now)
    out=$("${STRONGROOM_BIN}" backup create --to "fs://${DEST}" --json --data-dir "${SR_DATA}") ||
        die "backup create failed"
    row backup strongroom "${run}" "${DATA_BYTES}" "$(since "${t0}")" "$(jq -r .new_bytes <<<"${out}")"
    LAST_ID=$(jq -r .id <<<"${out}")
}

tar_backup() {
    local run=$1 t0 synced=$2
    rm -rf "${TARDIR}"
    mkdir -p "${TARDIR}"
    sync
    t0=$(now)
    tar -cf "${TARDIR}/data.tar" -C "${SR_DATA}" .
    if ((synced)); then sync; fi
    row backup "tar$( ((synced)) && echo +sync)" "${run}" "${DATA_BYTES}" "$(since "${t0}")" 0
}

sr_restore() {
    local run=$1 t0
    rm -rf "${RESTORED}"
    mkdir -p "${RESTORED}"
    install -m 600 "${SR_DATA}/master.key" "${RESTORED}/master.key"
    sync
    t0=$(now)
    "${STRONGROOM_BIN}" backup restore "${LAST_ID}" --from "fs://${DEST}" --data-dir "${RESTORED}" \
        --json >/dev/null || die "backup restore failed"
    row restore strongroom "${run}" "${DATA_BYTES}" "$(since "${t0}")" 0
}

tar_restore() {
    local run=$1 synced=$2 t0
    rm -rf "${UNTAR}"
    mkdir -p "${UNTAR}"
    sync
    t0=$(now)
    tar -xf "${TARDIR}/data.tar" -C "${UNTAR}"
    if ((synced)); then sync; fi
    row restore "tar$( ((synced)) && echo +sync)" "${run}" "${DATA_BYTES}" "$(since "${t0}")" 0
}

step "Measuring: ${RUNS} runs, Strongroom and tar in alternating order"
for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then
        sr_backup "${run}"; tar_backup "${run}" 0; tar_backup "${run}" 1
        sr_restore "${run}"; tar_restore "${run}" 0; tar_restore "${run}" 1
    else
        tar_backup "${run}" 1; tar_backup "${run}" 0; sr_backup "${run}"
        tar_restore "${run}" 1; tar_restore "${run}" 0; sr_restore "${run}"
    fi
    note "run ${run}: $(tail -n 6 "${TSV}" | awk -F'\t' '{ printf "%s %s %.1f s; ", $2, $3, $6 }')"
done
# The restored instance answers: its audit chain verifies.
"${STRONGROOM_BIN}" audit verify --data-dir "${RESTORED}" >/dev/null || die "audit verify failed on the restore"
rm -rf "${DEST}" "${TARDIR}" "${RESTORED}" "${UNTAR}"

# speed PHASE WHAT: median bytes/s
speed() {
    # shellcheck disable=SC2046 # one number per word
    median $(awk -F'\t' -v p="$1" -v w="$2" '$2 == p && $3 == w { printf "%.0f\n", $5 / $6 }' "${TSV}")
}
b_sr=$(speed backup strongroom) b_tar=$(speed backup tar) b_tars=$(speed backup tar+sync)
r_sr=$(speed restore strongroom) r_tar=$(speed restore tar) r_tars=$(speed restore tar+sync)
b_ratio=$(ratio "${b_sr}" "${b_tar}") r_ratio=$(ratio "${r_sr}" "${r_tar}")
b_ratio_s=$(ratio "${b_sr}" "${b_tars}") r_ratio_s=$(ratio "${r_sr}" "${r_tars}")
inc_pct=$(awk -v s="${inc_share}" 'BEGIN { printf "%.2f", s * 100 }')

step "Backup results"
raw_figures backup backup.tsv
report backup \
    "### Backup and restore, ${BACKUP_ASSETS} assets x ${BACKUP_ASSET_KIB} KiB (SQLite, fs backend), median of ${RUNS}" \
    "" \
    "\`strongroom backup create --to fs://DEST\` and \`strongroom backup restore\` of the stopped server's data dir (${DATA_BYTES} bytes) into empty folders, against \`tar -cf\` / \`tar -xf\` of the same data dir, alone and followed by \`sync\` (Strongroom fsyncs each object it writes; tar alone leaves its writes in the page cache). GB/s = data dir bytes / wall time. The incremental pair ran first, against the running server: a backup, then ${CHANGED} assets purged and ${CHANGED} uploaded (1%), then a second backup to the same destination." \
    "" \
    "| what | Strongroom GB/s | tar GB/s | tar + sync GB/s | Strongroom / tar | Strongroom / (tar + sync) |" \
    "|---|---|---|---|---|---|" \
    "| backup | $(gbps "${b_sr}") | $(gbps "${b_tar}") | $(gbps "${b_tars}") | ${b_ratio} | ${b_ratio_s} |" \
    "| restore | $(gbps "${r_sr}") | $(gbps "${r_tar}") | $(gbps "${r_tars}") | ${r_ratio} | ${r_ratio_s} |" \
    "" \
    "- backup: **${b_ratio}x** tar (target >= 0.8: $(verdict "${b_ratio}" '>=' 0.8)); ${b_ratio_s}x tar followed by sync" \
    "- restore: **${r_ratio}x** tar (target >= 0.8: $(verdict "${r_ratio}" '>=' 0.8)); ${r_ratio_s}x tar followed by sync" \
    "- second backup after 1% of the assets changed: wrote **${inc_pct}%** of the first one's bytes (${second_new} of ${first_new}; target <= 3%: $(verdict "${inc_pct}" '<=' 3))" \
    "- raw figures: bench/out/backup.tsv"
