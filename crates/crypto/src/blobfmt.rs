//! The encrypted blob format, version 1 (pure: no I/O). Specified in `docs/blob-format.md`.
//!
//! ```text
//! blob   = header(32) || chunk_0 || ... || chunk_{n-1}
//! header = "SRBLOB" || version u16 BE (=1) || chunk size u32 BE (=65536) || nonce prefix (7)
//!          || 13 zero bytes
//! chunk  = AES-256-GCM(DEK, nonce_i, aad, plaintext_i) = ciphertext_i || tag_i(16)
//! nonce_i = prefix(7) || i u32 BE || last flag (1 = final chunk, 0 otherwise)
//! aad    = "strongroom blob v1" || len(object_id) u32 BE || object_id || header
//! ```
//!
//! Every chunk but the last holds exactly [`CHUNK_SIZE`] plaintext bytes; the last holds 1 to
//! [`CHUNK_SIZE`] bytes, or 0 only when the whole blob is empty (so every length has exactly one
//! encoding). This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): the
//! counter in the nonce pins each chunk's position, the last flag makes dropping trailing chunks
//! detectable, and the associated data binds the object id and the whole header, so reordering,
//! truncating, splicing between blobs, editing the header or moving a blob under another object id
//! all fail with [`CryptoError::ChunkAuth`].
//!
//! All constants marked "frozen" are part of the stored format: changing them makes existing data
//! unreadable. `tests/vectors.rs` pins them.

use aws_lc_rs::aead::LessSafeKey;

use crate::CryptoError;
use crate::aead::{NONCE_LEN, open, seal_into};
use crate::keys::DataKey;

/// Plaintext bytes per chunk. Frozen: changing it makes existing data unreadable (it is also
/// recorded in each header, and headers with another value are refused).
pub const CHUNK_SIZE: usize = 65536;
/// AES-GCM tag bytes appended to every chunk. Frozen: changing it makes existing data unreadable.
pub const TAG_LEN: usize = 16;
/// Header bytes at the start of every blob. Frozen: changing it makes existing data unreadable.
pub const HEADER_LEN: usize = 32;
/// Stored bytes of one full chunk (plaintext plus tag).
pub const CHUNK_CIPHERTEXT_LEN: usize = CHUNK_SIZE + TAG_LEN;
/// First bytes of every blob. Frozen: changing it makes existing data unreadable.
pub const MAGIC: [u8; 6] = *b"SRBLOB";
/// The format version this code writes and the only one it reads. Frozen for version 1; a new
/// format gets a new number and this code keeps reading 1.
pub const FORMAT_VERSION: u16 = 1;
/// Random per-blob bytes at the start of every chunk nonce. Frozen: changing it makes existing
/// data unreadable.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Domain-separation label at the start of every chunk's associated data. Frozen: changing it
/// makes existing data unreadable.
const AAD_LABEL: &[u8] = b"strongroom blob v1";
/// Highest chunk index: the counter in the nonce is 32 bits (a 256 TiB blob).
const MAX_CHUNK_INDEX: u64 = u32::MAX as u64;

const CHUNK_U64: u64 = CHUNK_SIZE as u64;
const CHUNK_CT_U64: u64 = CHUNK_CIPHERTEXT_LEN as u64;

/// Number of chunks of a blob of `plaintext_len` bytes: `max(1, ceil(p / CHUNK_SIZE))`. An empty
/// blob is one empty final chunk, so even it is authenticated.
pub fn chunk_count(plaintext_len: u64) -> u64 {
    plaintext_len.div_ceil(CHUNK_U64).max(1)
}

/// Stored size of a blob of `plaintext_len` bytes: header + plaintext + one tag per chunk.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    (HEADER_LEN as u64)
        .saturating_add(plaintext_len)
        .saturating_add((TAG_LEN as u64).saturating_mul(chunk_count(plaintext_len)))
}

/// Plaintext size of a stored blob of `ciphertext_len` bytes; [`CryptoError::Truncated`] for a
/// length no blob can have (the inverse of [`ciphertext_len`]).
pub fn plaintext_len(ciphertext_len: u64) -> Result<u64, CryptoError> {
    let tag = TAG_LEN as u64;
    let body = ciphertext_len
        .checked_sub(HEADER_LEN as u64)
        .filter(|b| *b >= tag)
        .ok_or(CryptoError::Truncated)?;
    let full = body / CHUNK_CT_U64;
    let rest = body % CHUNK_CT_U64;
    let chunks = if rest == 0 { full } else { full + 1 };
    if chunks > MAX_CHUNK_INDEX + 1 {
        return Err(CryptoError::TooManyChunks);
    }
    match rest {
        0 => Ok(full * CHUNK_U64),
        // A partial chunk shorter than its tag, or an empty final chunk after full ones (the
        // sealer never writes one), cannot be a blob.
        r if r < tag || (r == tag && full > 0) => Err(CryptoError::Truncated),
        r => Ok(full * CHUNK_U64 + r - tag),
    }
}

/// Byte offset of chunk `index` in the stored blob.
pub fn chunk_offset(index: u64) -> u64 {
    (HEADER_LEN as u64).saturating_add(index.saturating_mul(CHUNK_CT_U64))
}

/// Plaintext bytes in chunk `index` of a blob of `plaintext_len` bytes (0 past the end).
pub fn chunk_plaintext_len(plaintext_len: u64, index: u64) -> usize {
    let start = index.saturating_mul(CHUNK_U64);
    // At most CHUNK_SIZE, so the cast cannot truncate.
    plaintext_len.saturating_sub(start).min(CHUNK_U64) as usize
}

fn build_header(prefix: &[u8; NONCE_PREFIX_LEN]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..6].copy_from_slice(&MAGIC);
    h[6..8].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    h[8..12].copy_from_slice(&(CHUNK_SIZE as u32).to_be_bytes());
    h[12..19].copy_from_slice(prefix);
    // h[19..32] stay zero: reserved, and refused if set.
    h
}

fn build_aad(object_id: &str, header: &[u8; HEADER_LEN]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 4 + object_id.len() + HEADER_LEN);
    aad.extend_from_slice(AAD_LABEL);
    // Length-prefixed so no (object id, header) pair can encode like another.
    aad.extend_from_slice(&(object_id.len() as u32).to_be_bytes());
    aad.extend_from_slice(object_id.as_bytes());
    aad.extend_from_slice(header);
    aad
}

fn chunk_nonce(
    prefix: &[u8; NONCE_PREFIX_LEN],
    index: u64,
    last: bool,
) -> Result<[u8; NONCE_LEN], CryptoError> {
    let counter = u32::try_from(index).map_err(|_| CryptoError::TooManyChunks)?;
    let mut n = [0u8; NONCE_LEN];
    n[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    n[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
    n[NONCE_LEN - 1] = u8::from(last);
    Ok(n)
}

/// Encrypts one blob, chunk by chunk, in order. Write [`BlobSealer::header`] first, then the
/// output of each [`BlobSealer::seal_chunk`] call.
pub struct BlobSealer {
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
    next: u64,
    done: bool,
}

impl BlobSealer {
    /// A sealer for the blob of `object_id` under `dek`, with a random nonce prefix. The DEK is
    /// unique per blob already; the random prefix keeps nonces unique even if a DEK were reused.
    pub fn new(dek: &DataKey, object_id: &str) -> BlobSealer {
        BlobSealer::with_nonce_prefix(dek, object_id, crate::token::random_bytes())
    }

    /// A sealer with a fixed nonce prefix. For test vectors only: reusing a prefix with the same
    /// DEK reuses nonces, which breaks AES-GCM.
    pub fn with_nonce_prefix(
        dek: &DataKey,
        object_id: &str,
        prefix: [u8; NONCE_PREFIX_LEN],
    ) -> BlobSealer {
        let header = build_header(&prefix);
        BlobSealer {
            key: dek.aead_key(),
            aad: build_aad(object_id, &header),
            header,
            prefix,
            next: 0,
            done: false,
        }
    }

    /// The 32-byte header that starts the stored blob.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        self.header
    }

    /// Index of the next chunk to be sealed (the number sealed so far).
    pub fn chunks_sealed(&self) -> u64 {
        self.next
    }

    /// Seal the next chunk (exactly [`CHUNK_SIZE`] bytes unless `last`; the last holds
    /// 1..=[`CHUNK_SIZE`] bytes, or 0 only as the sole chunk of an empty blob), appending
    /// `ciphertext || tag` to `out`. [`CryptoError::Misuse`] if called after the last chunk or with
    /// a wrong-size chunk; [`CryptoError::TooManyChunks`] past chunk index `u32::MAX`.
    pub fn seal_chunk(
        &mut self,
        plaintext: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let start = out.len();
        out.resize(start + plaintext.len() + TAG_LEN, 0);
        let written = self.seal_chunk_into(plaintext, &[], last, &mut out[start..]);
        if written.is_err() {
            out.truncate(start);
        }
        written.map(|_| ())
    }

    /// Like [`BlobSealer::seal_chunk`] for a chunk that arrived in two pieces, `first || second`
    /// (`second` may be empty), read where they lie: `ciphertext || tag` goes to the start of
    /// `out`, which must have room for it ([`CryptoError::Misuse`] otherwise). Returns the bytes
    /// written.
    pub fn seal_chunk_into(
        &mut self,
        first: &[u8],
        second: &[u8],
        last: bool,
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let len = first.len() + second.len();
        if self.done {
            return Err(CryptoError::Misuse("chunk sealed after the last chunk"));
        }
        if !last && len != CHUNK_SIZE {
            return Err(CryptoError::Misuse(
                "a non-last chunk must be exactly CHUNK_SIZE bytes",
            ));
        }
        if len > CHUNK_SIZE {
            return Err(CryptoError::Misuse("chunk larger than CHUNK_SIZE"));
        }
        if last && len == 0 && self.next > 0 {
            return Err(CryptoError::Misuse(
                "an empty last chunk is only valid for an empty blob",
            ));
        }
        let Some(out) = out.get_mut(..len + TAG_LEN) else {
            return Err(CryptoError::Misuse("no room for the sealed chunk"));
        };
        let nonce = chunk_nonce(&self.prefix, self.next, last)?;
        seal_into(&self.key, nonce, &self.aad, first, second, out);
        self.next += 1;
        self.done = last;
        Ok(len + TAG_LEN)
    }
}

/// Decrypts chunks of one blob, in any order (for range reads). The caller must know which chunk
/// is the last one from the plaintext size it stored; that knowledge is what makes truncation
/// detectable.
pub struct BlobOpener {
    key: LessSafeKey,
    prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
}

impl BlobOpener {
    /// An opener for the blob of `object_id` under `dek`, given its stored header. Checks magic,
    /// version, chunk size and reserved bytes ([`CryptoError::BadHeader`]); every other header
    /// edit is caught when a chunk fails to authenticate.
    pub fn new(dek: &DataKey, object_id: &str, header: &[u8]) -> Result<BlobOpener, CryptoError> {
        if header.len() < HEADER_LEN {
            return Err(CryptoError::Truncated);
        }
        let header: &[u8; HEADER_LEN] = header
            .try_into()
            .map_err(|_| CryptoError::BadHeader(format!("expected {HEADER_LEN} bytes")))?;
        if header[0..6] != MAGIC {
            return Err(CryptoError::BadHeader(
                "not a Strongroom blob (bad magic)".into(),
            ));
        }
        let version = u16::from_be_bytes([header[6], header[7]]);
        if version != FORMAT_VERSION {
            return Err(CryptoError::BadHeader(format!(
                "unsupported format version {version}"
            )));
        }
        let chunk = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if chunk as usize != CHUNK_SIZE {
            return Err(CryptoError::BadHeader(format!(
                "unsupported chunk size {chunk}"
            )));
        }
        if header[19..].iter().any(|b| *b != 0) {
            return Err(CryptoError::BadHeader("reserved bytes are set".into()));
        }
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        prefix.copy_from_slice(&header[12..19]);
        Ok(BlobOpener {
            key: dek.aead_key(),
            prefix,
            aad: build_aad(object_id, header),
        })
    }

    /// Decrypt chunk `index` (`ciphertext || tag`, in place). `last` says whether it is the final
    /// chunk of the blob. Returns the plaintext length (the plaintext is `chunk[..len]`).
    /// [`CryptoError::ChunkAuth`] if it does not authenticate at this position, for this object;
    /// [`CryptoError::Truncated`] if its length is impossible for its position.
    pub fn open_chunk(
        &self,
        index: u64,
        last: bool,
        chunk: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let nonce = chunk_nonce(&self.prefix, index, last)?;
        let len_ok = if last {
            (TAG_LEN..=CHUNK_CIPHERTEXT_LEN).contains(&chunk.len())
        } else {
            chunk.len() == CHUNK_CIPHERTEXT_LEN
        };
        if !len_ok {
            return Err(CryptoError::Truncated);
        }
        open(&self.key, nonce, &self.aad, chunk).map_err(|_| CryptoError::ChunkAuth { index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ast_test";

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Seals a whole plaintext the way a writer would.
    fn seal_all(dek: &DataKey, id: &str, pt: &[u8]) -> Vec<u8> {
        let mut s = BlobSealer::new(dek, id);
        let mut out = s.header().to_vec();
        let n = chunk_count(pt.len() as u64) as usize;
        for i in 0..n {
            let end = ((i + 1) * CHUNK_SIZE).min(pt.len());
            s.seal_chunk(&pt[i * CHUNK_SIZE..end], i + 1 == n, &mut out)
                .unwrap();
        }
        assert_eq!(out.len() as u64, ciphertext_len(pt.len() as u64));
        out
    }

    /// Opens a whole blob whose plaintext size is `size`, as a reader knowing the size would.
    fn open_all(dek: &DataKey, id: &str, blob: &[u8], size: u64) -> Result<Vec<u8>, CryptoError> {
        let opener = BlobOpener::new(
            dek,
            id,
            blob.get(..HEADER_LEN).ok_or(CryptoError::Truncated)?,
        )?;
        let n = chunk_count(size);
        let mut pt = Vec::new();
        for i in 0..n {
            let start = chunk_offset(i) as usize;
            let len = chunk_plaintext_len(size, i) + TAG_LEN;
            let mut buf = blob
                .get(start..start + len)
                .ok_or(CryptoError::Truncated)?
                .to_vec();
            let got = opener.open_chunk(i, i + 1 == n, &mut buf)?;
            pt.extend_from_slice(&buf[..got]);
        }
        Ok(pt)
    }

    #[test]
    fn round_trips_at_every_interesting_size() {
        let dek = DataKey::generate();
        for size in [0, 1, 65535, 65536, 65537, 3 * 65536 + 5] {
            let pt = pattern(size);
            let blob = seal_all(&dek, ID, &pt);
            assert_eq!(plaintext_len(blob.len() as u64).unwrap(), size as u64);
            assert_eq!(
                open_all(&dek, ID, &blob, size as u64).unwrap(),
                pt,
                "size {size}"
            );
        }
    }

    #[test]
    fn length_arithmetic() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(65536), 1);
        assert_eq!(chunk_count(65537), 2);
        assert_eq!(ciphertext_len(0), 48);
        assert_eq!(ciphertext_len(65536), 32 + 65536 + 16);
        assert_eq!(ciphertext_len(65537), 32 + 65537 + 32);
        for p in [
            0u64, 1, 15, 16, 17, 65535, 65536, 65537, 131072, 131073, 10_000_000,
        ] {
            assert_eq!(plaintext_len(ciphertext_len(p)).unwrap(), p);
        }
        // Impossible lengths: no header+tag, a partial chunk shorter than a tag, a trailing empty
        // chunk after full ones.
        for c in [0u64, 31, 47, 32 + 65552 + 5, 32 + 65552 + 16] {
            assert!(
                matches!(plaintext_len(c), Err(CryptoError::Truncated)),
                "{c}"
            );
        }
        assert_eq!(chunk_plaintext_len(65537, 0), 65536);
        assert_eq!(chunk_plaintext_len(65537, 1), 1);
        assert_eq!(chunk_plaintext_len(65537, 2), 0);
        assert_eq!(chunk_offset(2), 32 + 2 * 65552);
    }

    #[test]
    fn flipped_byte_in_any_region_fails() {
        let dek = DataKey::generate();
        let size = 2 * CHUNK_SIZE + 100;
        let blob = seal_all(&dek, ID, &pattern(size));
        let c1 = chunk_offset(1) as usize;
        let c2 = chunk_offset(2) as usize;
        // magic, version, chunk size, prefix, reserved, chunk 0 body, chunk 0 tag, chunk 1 body,
        // chunk 1 tag, last chunk body, last chunk tag.
        let positions = [
            0,
            7,
            10,
            14,
            25,
            40,
            c1 - 1,
            c1 + 5,
            c2 - 3,
            c2 + 50,
            blob.len() - 1,
        ];
        for pos in positions {
            let mut bad = blob.clone();
            bad[pos] ^= 0x01;
            let err = open_all(&dek, ID, &bad, size as u64).unwrap_err();
            if pos < 12 || (19..HEADER_LEN).contains(&pos) {
                assert!(matches!(err, CryptoError::BadHeader(_)), "pos {pos}: {err}");
            } else {
                assert!(
                    matches!(err, CryptoError::ChunkAuth { .. }),
                    "pos {pos}: {err}"
                );
            }
        }
    }

    #[test]
    fn prefix_edit_fails_every_chunk() {
        let dek = DataKey::generate();
        let blob = seal_all(&dek, ID, &pattern(10));
        let mut bad = blob.clone();
        bad[12] ^= 0xff;
        assert!(matches!(
            open_all(&dek, ID, &bad, 10),
            Err(CryptoError::ChunkAuth { index: 0 })
        ));
    }

    #[test]
    fn truncation_is_detected() {
        let dek = DataKey::generate();
        let size = 2 * CHUNK_SIZE + 100;
        let blob = seal_all(&dek, ID, &pattern(size));
        // Cut at a chunk boundary: the reader that trusts the stored length sees chunk 1 as last,
        // and chunk 1 was sealed as non-last.
        let cut = &blob[..chunk_offset(2) as usize];
        let claimed = plaintext_len(cut.len() as u64).unwrap();
        assert_eq!(claimed, 2 * CHUNK_SIZE as u64);
        assert!(matches!(
            open_all(&dek, ID, cut, claimed),
            Err(CryptoError::ChunkAuth { index: 1 })
        ));
        // A reader that knows the real size finds bytes missing.
        assert!(open_all(&dek, ID, cut, size as u64).is_err());
        // Cut mid-chunk.
        let mid = &blob[..blob.len() - 10];
        assert!(open_all(&dek, ID, mid, size as u64).is_err());
        let claimed = plaintext_len(mid.len() as u64).unwrap();
        assert!(matches!(
            open_all(&dek, ID, mid, claimed),
            Err(CryptoError::ChunkAuth { index: 2 })
        ));
        // Only a header left.
        assert!(open_all(&dek, ID, &blob[..HEADER_LEN], size as u64).is_err());
        assert!(matches!(
            BlobOpener::new(&dek, ID, &blob[..10]),
            Err(CryptoError::Truncated)
        ));
    }

    #[test]
    fn swapped_chunks_fail() {
        let dek = DataKey::generate();
        let size = 3 * CHUNK_SIZE;
        let blob = seal_all(&dek, ID, &pattern(size));
        let (a, b) = (chunk_offset(0) as usize, chunk_offset(1) as usize);
        let mut bad = blob.clone();
        bad[a..b].copy_from_slice(&blob[b..b + CHUNK_CIPHERTEXT_LEN]);
        bad[b..b + CHUNK_CIPHERTEXT_LEN].copy_from_slice(&blob[a..b]);
        assert!(matches!(
            open_all(&dek, ID, &bad, size as u64),
            Err(CryptoError::ChunkAuth { index: 0 })
        ));
    }

    #[test]
    fn chunk_spliced_from_another_blob_fails() {
        let dek = DataKey::generate();
        let size = 2 * CHUNK_SIZE;
        let one = seal_all(&dek, ID, &pattern(size));
        let two = seal_all(&dek, ID, &pattern(size));
        let mut bad = one.clone();
        let c1 = chunk_offset(1) as usize;
        bad[c1..].copy_from_slice(&two[c1..]);
        assert!(matches!(
            open_all(&dek, ID, &bad, size as u64),
            Err(CryptoError::ChunkAuth { index: 1 })
        ));
    }

    #[test]
    fn other_object_id_or_key_fails() {
        let dek = DataKey::generate();
        let blob = seal_all(&dek, ID, &pattern(1000));
        assert!(matches!(
            open_all(&dek, "ast_other", &blob, 1000),
            Err(CryptoError::ChunkAuth { index: 0 })
        ));
        assert!(matches!(
            open_all(&DataKey::generate(), ID, &blob, 1000),
            Err(CryptoError::ChunkAuth { index: 0 })
        ));
    }

    #[test]
    fn header_checks() {
        let dek = DataKey::generate();
        let good = BlobSealer::new(&dek, ID).header();
        assert!(BlobOpener::new(&dek, ID, &good).is_ok());
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(
            BlobOpener::new(&dek, ID, &long),
            Err(CryptoError::BadHeader(_))
        ));
        for (pos, what) in [
            (0, "magic"),
            (7, "version"),
            (9, "chunk size"),
            (31, "reserved"),
        ] {
            let mut h = good;
            h[pos] ^= 0x01;
            assert!(
                matches!(
                    BlobOpener::new(&dek, ID, &h),
                    Err(CryptoError::BadHeader(_))
                ),
                "{what}"
            );
        }
        // Fresh sealers pick different prefixes.
        assert_ne!(good, BlobSealer::new(&dek, ID).header());
    }

    #[test]
    fn sealer_refuses_misuse() {
        let dek = DataKey::generate();
        let mut s = BlobSealer::new(&dek, ID);
        let mut out = Vec::new();
        assert!(matches!(
            s.seal_chunk(&[0u8; 10], false, &mut out),
            Err(CryptoError::Misuse(_))
        ));
        assert!(matches!(
            s.seal_chunk(&vec![0u8; CHUNK_SIZE + 1], true, &mut out),
            Err(CryptoError::Misuse(_))
        ));
        s.seal_chunk(&vec![0u8; CHUNK_SIZE], false, &mut out)
            .unwrap();
        assert!(matches!(
            s.seal_chunk(&[], true, &mut out),
            Err(CryptoError::Misuse(_))
        ));
        s.seal_chunk(&[1, 2, 3], true, &mut out).unwrap();
        assert_eq!(s.chunks_sealed(), 2);
        assert!(matches!(
            s.seal_chunk(&[4], true, &mut out),
            Err(CryptoError::Misuse(_))
        ));
        assert_eq!(out.len(), CHUNK_CIPHERTEXT_LEN + 3 + TAG_LEN);
    }

    #[test]
    fn a_chunk_sealed_from_two_pieces_is_the_chunk_sealed_whole() {
        let dek = DataKey::generate();
        let prefix = [9u8; NONCE_PREFIX_LEN];
        let full = pattern(CHUNK_SIZE);
        let tail = pattern(1000);
        let mut whole = BlobSealer::with_nonce_prefix(&dek, ID, prefix);
        let mut want = Vec::new();
        whole.seal_chunk(&full, false, &mut want).unwrap();
        whole.seal_chunk(&tail, true, &mut want).unwrap();
        for split in [0, 1, 15, 16, 17, 4096, CHUNK_SIZE - 1, CHUNK_SIZE] {
            let mut parts = BlobSealer::with_nonce_prefix(&dek, ID, prefix);
            let mut got = vec![0xAAu8; want.len() + 5];
            let (a, b) = full.split_at(split);
            let n = parts.seal_chunk_into(a, b, false, &mut got).unwrap();
            let (a, b) = tail.split_at(split.min(tail.len()));
            let m = parts.seal_chunk_into(a, b, true, &mut got[n..]).unwrap();
            assert_eq!(n + m, want.len(), "split at {split}");
            assert!(got[..n + m] == want[..], "split at {split}");
            assert!(
                got[n + m..].iter().all(|b| *b == 0xAA),
                "wrote past its chunk"
            );
        }
        // No room: refused, nothing sealed (the next chunk index is unchanged).
        let mut s = BlobSealer::with_nonce_prefix(&dek, ID, prefix);
        let mut short = vec![0u8; CHUNK_CIPHERTEXT_LEN - 1];
        assert!(matches!(
            s.seal_chunk_into(&full, &[], false, &mut short),
            Err(CryptoError::Misuse(_))
        ));
        assert_eq!(s.chunks_sealed(), 0);
    }

    #[test]
    fn chunk_index_is_limited_to_32_bits() {
        let dek = DataKey::generate();
        let s = BlobSealer::new(&dek, ID);
        let opener = BlobOpener::new(&dek, ID, &s.header()).unwrap();
        let mut buf = [0u8; 32];
        assert!(matches!(
            opener.open_chunk(u64::from(u32::MAX) + 1, true, &mut buf),
            Err(CryptoError::TooManyChunks)
        ));
        assert!(matches!(
            opener.open_chunk(u64::from(u32::MAX), true, &mut buf),
            Err(CryptoError::ChunkAuth { .. })
        ));
    }

    #[test]
    fn wrong_length_chunks_are_refused() {
        let dek = DataKey::generate();
        let s = BlobSealer::new(&dek, ID);
        let opener = BlobOpener::new(&dek, ID, &s.header()).unwrap();
        assert!(matches!(
            opener.open_chunk(0, true, &mut [0u8; 15]),
            Err(CryptoError::Truncated)
        ));
        assert!(matches!(
            opener.open_chunk(0, false, &mut vec![0u8; CHUNK_CIPHERTEXT_LEN - 1]),
            Err(CryptoError::Truncated)
        ));
        assert!(matches!(
            opener.open_chunk(0, true, &mut vec![0u8; CHUNK_CIPHERTEXT_LEN + 1]),
            Err(CryptoError::Truncated)
        ));
    }

    #[test]
    fn ciphertext_does_not_contain_plaintext() {
        let dek = DataKey::generate();
        let marker = b"STRONGROOM-PLAINTEXT-MARKER";
        let pt: Vec<u8> = marker.iter().copied().cycle().take(200_000).collect();
        let blob = seal_all(&dek, ID, &pt);
        assert!(!blob.windows(marker.len()).any(|w| w == marker));
    }
}
