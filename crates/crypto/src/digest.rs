//! SHA-256, one-shot and streaming (content hashes, token lookup hashes).

use aws_lc_rs::digest::{Context, SHA256, digest};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

/// Incremental SHA-256, for hashing a stream (an upload) without holding it in memory.
pub struct Sha256(Context);

impl Sha256 {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self(Context::new(&SHA256))
    }

    /// Feed more bytes.
    pub fn update(&mut self, d: &[u8]) {
        self.0.update(d);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_and_streaming_agree() {
        // FIPS 180-2 "abc" test vector.
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex::encode(sha256(b"abc")), want);
        let mut h = Sha256::default();
        h.update(b"a");
        h.update(b"");
        h.update(b"bc");
        assert_eq!(hex::encode(h.finish()), want);
    }
}
