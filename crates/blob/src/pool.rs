//! Batch buffers kept for reuse.
//!
//! Every upload and download moves its data through buffers of about one batch (1 MiB): one
//! filling with plaintext, one with ciphertext, one being decrypted. Allocating each afresh let
//! the allocator hand the memory back to the kernel and fault it in (zeroed) again for the next
//! batch: a profile of a 1 GiB upload to S3 showed page faults and page clearing at about a tenth
//! of the server's CPU. A buffer handed out as [`Bytes`] by [`bytes`] comes back here when its
//! last reference is dropped (by the storage backend, the HTTP connection or the hasher), and
//! [`take`] hands it out again. At most [`KEPT`] buffers wait here; any others are freed.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept at most (about 1 MiB each).
const KEPT: usize = 64;

/// Smallest buffer worth keeping: smaller ones are cheap to allocate.
const MIN_KEPT: usize = 256 * 1024;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `capacity` bytes, reused if one is free.
pub(crate) fn take(capacity: usize) -> Vec<u8> {
    if capacity >= MIN_KEPT
        && let Ok(mut free) = FREE.lock()
        && let Some(at) = free.iter().rposition(|b| b.capacity() >= capacity)
    {
        let mut buf = free.swap_remove(at);
        buf.clear();
        return buf;
    }
    Vec::with_capacity(capacity)
}

/// `buf` as [`Bytes`] that return it for reuse once the last reference is dropped.
pub(crate) fn bytes(buf: Vec<u8>) -> Bytes {
    if buf.capacity() < MIN_KEPT {
        return Bytes::from(buf);
    }
    Bytes::from_owner(Returned(buf))
}

/// A buffer on loan: back to the free list when dropped.
struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if let Ok(mut free) = FREE.lock()
            && free.len() < KEPT
        {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_handed_out_again_empty() {
        let mut buf = take(1 << 20);
        buf.extend_from_slice(&[7u8; 1000]);
        let ptr = buf.as_ptr();
        let shared = bytes(buf);
        let slice = shared.slice(10..20);
        drop(shared);
        assert_eq!(&slice[..], &[7u8; 10]);
        // Still referenced by the slice: not free yet, so another buffer comes out.
        let other = take(1 << 20);
        assert_ne!(other.as_ptr(), ptr);
        drop(slice);
        // Other tests share the free list, so look for this buffer rather than expect it first.
        let mut seen = Vec::new();
        let found = loop {
            let b = take(1 << 20);
            if b.as_ptr() == ptr {
                break Some(b);
            }
            if seen.len() > KEPT {
                break None;
            }
            seen.push(b);
        };
        let found = found.expect("the dropped buffer came back");
        assert!(found.is_empty());
        assert!(found.capacity() >= 1 << 20);
    }
}
