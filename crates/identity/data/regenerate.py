#!/usr/bin/env python3
"""Rebuild common-passwords.txt from SecLists' "10-million-password-list-top-1000000".

Usage: regenerate.py PATH/TO/common-credentials-1M.txt > common-passwords.txt
(see README.md beside this script for where the input comes from).

Rules, kept in step with src/password_policy.rs:
- every entry is lower-cased (the check is case-insensitive) and deduplicated;
- entries shorter than 4 characters are dropped (the length rule refuses them anyway);
- the first TOP entries in the source's frequency order are kept, plus every later entry of
  at least MIN_CHARS characters, because only those can ever match a password that passed
  the length rule;
- the output is sorted by code point (= byte order of UTF-8 = Rust's `str` order), one entry a
  line, so the crate can binary-search it without sorting at start-up.
"""

import sys

TOP = 100_000
SHORTEST = 4
MIN_CHARS = 12  # password_policy::MIN_CHARS


def main() -> None:
    source = sys.argv[1]
    with open(source, encoding="utf-8", newline="") as f:
        lines = [line.rstrip("\r\n") for line in f]

    seen: set[str] = set()
    kept: list[str] = []
    for line in lines:
        entry = line.lower()
        if len(entry) < SHORTEST or entry in seen:
            continue
        if len(kept) < TOP or len(entry) >= MIN_CHARS:
            seen.add(entry)
            kept.append(entry)

    kept.sort(key=lambda s: s.encode("utf-8"))
    sys.stdout.write("".join(e + "\n" for e in kept))
    print(f"{len(kept)} entries", file=sys.stderr)


if __name__ == "__main__":
    main()
