#!/usr/bin/env python3
"""An independent implementation of Strongroom's stored formats, for `tests/vectors.rs`.

Written from docs/blob-format.md alone, on Python `cryptography` (OpenSSL), sharing no code with
the Rust crate. It reads the test's inputs on stdin, one `name=value` per line (bytes in hex):
fixed keys, the nonces of the frozen values, and values the Rust code has just made with fresh
random nonces. It prints what it computes the same way:
- the frozen values, recomputed from their inputs (blob header and blobs, wrapped KEK and DEK
  given their nonces, root key fingerprint, a purpose-derived MAC, a field-encrypted value);
- the plaintexts of the fresh values, which it decrypts with its own key derivation and
  associated data (so a wrap the Rust code makes today is readable by another implementation).

Any value that does not authenticate raises, and the process exits non-zero.

Run by `cargo test -p strongroom-crypto --test vectors`; needs python3 with `cryptography`
(Debian: python3-cryptography, installed by scripts/test.sh).
"""

import hashlib
import hmac
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The constants as docs/blob-format.md states them.
MAGIC = b"SRBLOB"
FORMAT_VERSION = 1
CHUNK_SIZE = 65536
TAG_LEN = 16
HEADER_LEN = 32
BLOB_AAD_LABEL = b"strongroom blob v1"
KEK_AAD_LABEL = b"strongroom kek"
DEK_AAD_LABEL = b"strongroom dek"
HKDF_SALT = b"strongroom hkdf salt v1"
HKDF_INFO_PREFIX = b"strongroom v1 "
FIELD_PURPOSE_PREFIX = b"field:"
FINGERPRINT_MSG = b"strongroom root key fingerprint v1"
NONCE_LEN = 12


def header(prefix):
    return MAGIC + struct.pack(">HI", FORMAT_VERSION, CHUNK_SIZE) + prefix + bytes(13)


def blob_aad(object_id, head):
    return BLOB_AAD_LABEL + struct.pack(">I", len(object_id)) + object_id + head


def chunk_nonce(prefix, index, last):
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def seal_blob(dek, object_id, prefix, plaintext):
    head = header(prefix)
    aad = blob_aad(object_id, head)
    chunks = [plaintext[i : i + CHUNK_SIZE] for i in range(0, len(plaintext), CHUNK_SIZE)] or [b""]
    out = head
    for i, chunk in enumerate(chunks):
        out += AESGCM(dek).encrypt(chunk_nonce(prefix, i, i == len(chunks) - 1), chunk, aad)
    return out


def open_blob(dek, object_id, blob):
    head = blob[:HEADER_LEN]
    if head[:6] != MAGIC or struct.unpack(">HI", head[6:12]) != (FORMAT_VERSION, CHUNK_SIZE):
        raise ValueError("not a version 1 blob header")
    if head[19:] != bytes(13):
        raise ValueError("reserved header bytes are set")
    prefix = head[12:19]
    aad = blob_aad(object_id, head)
    body = blob[HEADER_LEN:]
    sealed = CHUNK_SIZE + TAG_LEN
    pieces = [body[i : i + sealed] for i in range(0, len(body), sealed)] or [b""]
    out = b""
    for i, piece in enumerate(pieces):
        out += AESGCM(dek).decrypt(chunk_nonce(prefix, i, i == len(pieces) - 1), piece, aad)
    return out


def kek_aad(version):
    return KEK_AAD_LABEL + struct.pack(">I", version)


def dek_aad(version, object_id):
    return DEK_AAD_LABEL + struct.pack(">II", version, len(object_id)) + object_id


def wrap(key, nonce, aad, secret):
    return nonce + AESGCM(key).encrypt(nonce, secret, aad)


def unwrap(key, aad, wrapped):
    if len(wrapped) != NONCE_LEN + 32 + TAG_LEN:
        raise ValueError("a wrapped key is 60 bytes")
    return AESGCM(key).decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], aad)


def unwrap_field(key, aad, sealed):
    return AESGCM(key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], aad)


def purpose_key(root, purpose):
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO_PREFIX + purpose)
    return hkdf.derive(root)


def field_key(root, purpose):
    return purpose_key(root, FIELD_PURPOSE_PREFIX + purpose)


def main():
    given = dict(line.rstrip("\n").split("=", 1) for line in sys.stdin if "=" in line)
    h = bytes.fromhex
    root, kek, dek = h(given["root"]), h(given["kek"]), h(given["dek"])
    version = int(given["kek_version"])
    oid = given["object_id"].encode()
    prefix = h(given["blob_prefix"])
    pattern = bytes(i % 251 for i in range(int(given["pattern_len"])))
    pattern_blob = seal_blob(dek, oid, prefix, pattern)
    fkey = field_key(root, given["field_purpose"].encode())
    field_aad = given["field_aad"].encode()
    out = {
        "header": header(prefix).hex(),
        "hello_blob": seal_blob(dek, oid, prefix, b"hello").hex(),
        "pattern_blob_len": len(pattern_blob),
        "pattern_blob_sha256": hashlib.sha256(pattern_blob).hexdigest(),
        "wrapped_kek": wrap(root, h(given["wrapped_kek_nonce"]), kek_aad(version), kek).hex(),
        "wrapped_dek": wrap(kek, h(given["wrapped_dek_nonce"]), dek_aad(version, oid), dek).hex(),
        "fingerprint": hmac.new(root, FINGERPRINT_MSG, "sha256").digest()[:8].hex(),
        "derived_mac": hmac.new(
            purpose_key(root, given["derive_purpose"].encode()),
            given["derive_message"].encode(),
            "sha256",
        ).hexdigest(),
        "field_sealed": wrap(
            fkey, h(given["field_nonce"]), field_aad, given["field_plaintext"].encode()
        ).hex(),
        "fresh_kek": unwrap(root, kek_aad(version), h(given["fresh_wrapped_kek"])).hex(),
        "fresh_dek": unwrap(kek, dek_aad(version, oid), h(given["fresh_wrapped_dek"])).hex(),
        "fresh_field": unwrap_field(fkey, field_aad, h(given["fresh_field"])).decode(),
        "fresh_blob_sha256": hashlib.sha256(open_blob(dek, oid, h(given["fresh_blob"]))).hexdigest(),
    }
    for name, value in out.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
