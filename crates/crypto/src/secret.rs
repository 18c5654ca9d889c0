//! Fixed-size secret byte buffers shared by the key types.

use zeroize::Zeroize;

/// 32 secret bytes on the heap, so moving the owning key never leaves copies on the stack, wiped
/// on drop. Deliberately neither `Debug` nor `Clone`.
pub(crate) struct Secret32(Box<[u8; 32]>);

impl Secret32 {
    /// Fresh random bytes from the system CSPRNG.
    pub(crate) fn random() -> Self {
        let mut s = Self(Box::new([0u8; 32]));
        crate::token::fill_random(&mut s.0[..]);
        s
    }

    /// Copies `b` (which the caller has length-checked) into a new secret.
    pub(crate) fn from_array(b: &[u8; 32]) -> Self {
        let mut s = Self(Box::new([0u8; 32]));
        s.0.copy_from_slice(b);
        s
    }

    /// Copies a slice that must be exactly 32 bytes.
    pub(crate) fn from_slice(b: &[u8]) -> Option<Self> {
        if b.len() != 32 {
            return None;
        }
        let mut s = Self(Box::new([0u8; 32]));
        s.0.copy_from_slice(b);
        Some(s)
    }

    /// Borrow the raw bytes; callers must not copy them anywhere that outlives the call.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for Secret32 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
