#!/usr/bin/env python3
"""Verify a Strongroom audit export offline, with nothing but the Python standard library.

Usage:
    scripts/verify-audit-export.py EXPORT.ndjson      (or - for standard input)
    curl -H "Authorization: Bearer $KEY" https://HOST/api/v1/orgs/ORG/audit/export \
        | scripts/verify-audit-export.py -

The export (docs/audit.md, format "strongroom-audit-export" version 1) is NDJSON: a header line,
the organization's events in chain order with each checkpoint after the event of its seq, then
any checkpoints past the chain's end, then an end line with the counts.

What this checks, in one pass and constant memory:
  - sequence numbers run 1, 2, 3, ... without a gap;
  - every event links to the one before it (the first to the organization's genesis hash);
  - every event's hash is SHA-256(prev_hash || canonical JSON of its fields); for a version-2
    event (a person's), the digest of its address and detail matches, unless the person was
    erased (then only the digest is left, and the hash is checked over it);
  - every checkpoint names the hash the chain has at its seq, and none lies past the chain's end
    (a rollback: the events in between are missing);
  - the export is complete (its end line is present and its counts match).

What it cannot check: the checkpoints' signatures. They are HMAC-SHA256 under a key derived from
the server's root key, so only a holder of that key can verify them; the export carries the
server's verdict ("authentic") instead, and this script fails when any checkpoint is not
authentic. A checkpoint you kept from an earlier export (or copied from the server's blob store)
is the independent evidence: run with --expect SEQ:HASH to require the chain to pass through it.

Exit status: 0 when every check passes, 1 naming the first problem, 2 on a usage error.
"""

import argparse
import hashlib
import json
import sys

FORMAT = "strongroom-audit-export"
VERSION = 1
GENESIS_LABEL = b"strongroom audit genesis v1\0"


class Broken(Exception):
    """The export fails a check; the message names where and why."""


def genesis(org_id):
    return hashlib.sha256(GENESIS_LABEL + org_id.encode("utf-8")).hexdigest()


PERSONAL_LABEL = b"strongroom audit personal v2\0"


def personal_digest(salt_hex, ip, detail):
    """A version-2 event's digest of its personal part: label, salt, then each part
    length-prefixed (u64 big-endian)."""
    h = hashlib.sha256(PERSONAL_LABEL + bytes.fromhex(salt_hex))
    for part in (ip, detail):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def canonical(org_id, ev):
    """The bytes Strongroom hashes: compact JSON, keys in this order, non-ASCII as UTF-8.

    A version-2 event (one with a "subject") hashes the person's id and the digest of its
    address and detail instead of them, so it still verifies once the person is erased."""
    fields = {
        "org": org_id,
        "seq": ev["seq"],
        "at": ev["at_ms"],
        "actor": ev["actor"],
        "action": ev["action"],
        "target": ev["target"],
    }
    if "subject" in ev:
        fields["subject"] = ev["subject"]
        fields["personal"] = ev["personal"]
    else:
        fields["ip"] = ev["ip"]
        fields["detail"] = ev["detail"]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_hash(org_id, ev):
    h = hashlib.sha256()
    h.update(bytes.fromhex(ev["prev_hash"]))
    h.update(canonical(org_id, ev))
    return h.hexdigest()


def parse_expect(values):
    out = {}
    for v in values:
        seq, sep, digest = v.partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise SystemExit(f"--expect wants SEQ:HASH (64 hex digits), not {v!r}")
        out[int(seq)] = digest.lower()
    return out


def verify(lines, expect):
    """Checks the export; returns a one-line summary or raises Broken."""
    org_id = None
    prev = None
    last_seq = 0
    events = 0
    checkpoints = 0
    latest = None
    past_end = None
    ended = False
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as e:
            raise Broken(f"line {number} is not JSON ({e})")
        kind = item.get("type") if isinstance(item, dict) else None
        if ended:
            raise Broken(f"line {number} follows the end line")
        if org_id is None:
            if kind != "header" or item.get("format") != FORMAT or item.get("version") != VERSION:
                raise Broken(f"line {number} is not a {FORMAT} version {VERSION} header")
            org_id = item["org_id"]
            prev = genesis(org_id)
            if item.get("genesis") != prev:
                raise Broken("the header's genesis hash is not the organization's")
            continue
        try:
            if kind == "event":
                seq = item["seq"]
                if past_end is not None:
                    raise Broken(f"event {seq} follows a checkpoint past the chain's end")
                if seq != last_seq + 1:
                    raise Broken(f"event {last_seq + 1} is missing (the next event is {seq})")
                if item["prev_hash"] != prev:
                    raise Broken(f"event {seq} does not link to event {seq - 1}")
                if "subject" in item and item.get("salt") is not None:
                    if personal_digest(item["salt"], item["ip"], item["detail"]) != item["personal"]:
                        raise Broken(f"event {seq} was edited: its address or detail does not match its digest")
                elif "subject" in item and not item.get("erased"):
                    raise Broken(f"event {seq} has neither its personal part nor the mark of an erasure")
                if event_hash(org_id, item) != item["hash"]:
                    raise Broken(f"event {seq} was edited: its content does not match its hash")
                prev = item["hash"]
                last_seq = seq
                events += 1
                if seq in expect and expect.pop(seq) != prev:
                    raise Broken(f"event {seq} does not match the checkpoint given with --expect")
            elif kind == "checkpoint":
                seq = item["seq"]
                checkpoints += 1
                if item.get("authentic") is not True:
                    why = item.get("problem", "no reason given")
                    raise Broken(f"the checkpoint at seq {seq} is not authentic: {why}")
                if seq > last_seq:
                    # Checkpoints past the chain's end come last: the newest of them names the
                    # whole gap, once they are all read.
                    if past_end is None or seq > past_end["seq"]:
                        past_end = item
                    continue
                if past_end is not None or seq < last_seq:
                    raise Broken(f"the checkpoint at seq {seq} is out of place (after event {last_seq})")
                if item["head"] != prev:
                    raise Broken(
                        f"event {seq} does not match the checkpoint at seq {seq} "
                        f"(written {item['at']}): the chain was rewritten"
                    )
                latest = item
            elif kind == "end":
                if past_end is not None:
                    raise Broken(
                        f"the chain ends at event {last_seq} but the checkpoint at seq "
                        f"{past_end['seq']} (written {past_end['at']}) is newer: events "
                        f"{last_seq + 1}..{past_end['seq']} are missing (the database was rolled "
                        "back or truncated)"
                    )
                if item.get("events") != events or item.get("checkpoints") != checkpoints:
                    raise Broken(
                        f"the end line counts {item.get('events')} events and "
                        f"{item.get('checkpoints')} checkpoints, the export holds {events} and "
                        f"{checkpoints}: lines were removed or added"
                    )
                ended = True
            else:
                raise Broken(f"line {number} has an unknown type {kind!r}")
        except (KeyError, TypeError, ValueError) as e:
            raise Broken(f"line {number} ({kind}) is malformed: {e!r}")
    if org_id is None:
        raise Broken("the export is empty")
    if not ended:
        raise Broken(f"the export is truncated after event {last_seq}: its end line is missing")
    if expect:
        seq = min(expect)
        raise Broken(
            f"the chain ends at event {last_seq} but --expect names seq {seq}: "
            f"events {last_seq + 1}..{seq} are missing"
        )
    summary = f"{org_id}: intact, {events} events, {checkpoints} checkpoints match the chain"
    if latest is not None:
        summary += f" (the latest at seq {latest['seq']}, written {latest['at']})"
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="the NDJSON export, or - for standard input")
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="a checkpoint kept elsewhere: the chain must hold this hash at this seq",
    )
    args = parser.parse_args()
    expect = parse_expect(args.expect)
    try:
        if args.export == "-":
            summary = verify(sys.stdin, expect)
        else:
            with open(args.export, encoding="utf-8") as f:
                summary = verify(f, expect)
    except OSError as e:
        print(f"error: cannot read the export: {e}", file=sys.stderr)
        return 2
    except Broken as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(f"OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
