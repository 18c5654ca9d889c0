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
    let mut buf = reuse(capacity).unwrap_or_else(|| Vec::with_capacity(capacity));
    buf.clear();
    buf
}

/// A buffer of at least `len` bytes, to be written by position and truncated to what was
/// written before it is shared: a reused buffer keeps its old bytes (only a new tail is
/// zeroed), which saves clearing a whole batch before overwriting it.
pub(crate) fn take_full(len: usize) -> Vec<u8> {
    let mut buf = reuse(len).unwrap_or_else(|| Vec::with_capacity(len));
    if buf.len() < len {
        buf.resize(len, 0);
    }
    buf
}

/// A free buffer with room for `capacity` bytes, if one is kept.
fn reuse(capacity: usize) -> Option<Vec<u8>> {
    if capacity < MIN_KEPT {
        return None;
    }
    let mut free = FREE.lock().ok()?;
    let at = free.iter().rposition(|b| b.capacity() >= capacity)?;
    Some(free.swap_remove(at))
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

    #[test]
    fn a_full_buffer_is_shared_only_up_to_what_was_written() {
        let mut buf = take_full(1 << 20);
        assert!(buf.len() >= 1 << 20);
        buf[..5].copy_from_slice(b"hello");
        buf.truncate(5);
        let shared = bytes(buf);
        assert_eq!(&shared[..], b"hello");
        drop(shared);
        // Whether or not the same buffer comes back, it is long enough to write into.
        assert!(take_full(1 << 20).len() >= 1 << 20);
    }
}
