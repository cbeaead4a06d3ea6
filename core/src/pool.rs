//! Buffers of large incoming frames, kept for the next ones: memory, not
//! I/O. Every transport reads large frames into them (as sessions reuse
//! the buffers of outgoing frames, [`crate::ClientSession::recycle`]).
//!
//! The allocator gives every buffer over 32 MiB fresh pages from the kernel,
//! zeroed and faulted in one by one, and unmaps it when it is freed: reading
//! a stream of 64 MiB frames into new buffers costs more than moving the
//! bytes (measured over a socketpair: 1.3-1.6 GB/s, a quarter of it in page
//! faults, and 4.1 GB/s pooled). A frame read into a pooled buffer hands it
//! out inside its `Bytes`; when the last user of those bytes lets go (a
//! numpy array made over them, say), the buffer comes back here for the
//! next frame, from whatever thread drops it. A pool keeps at most [`KEPT`]
//! buffers, and its transport calls [`FramePool::trim`] when the connection
//! idles, so memory goes back to the system after a transfer.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;

/// Frames from this size up are worth reading into pooled buffers...
pub const POOLED_MIN: usize = 16 << 20;
/// ...and buffers up to this size are kept: a huge one is given back to the
/// system at once, lest it double the memory of a huge transfer.
pub const POOLED_MAX: usize = 256 << 20;
/// How many buffers a pool keeps.
pub const KEPT: usize = 2;

/// A connection's pool of frame buffers. Cheap to clone (one pool).
#[derive(Clone, Default)]
pub struct FramePool(Arc<Mutex<Vec<Vec<u8>>>>);

impl std::fmt::Debug for FramePool {
    /// The capacities of the kept buffers, not their bytes (up to
    /// [`KEPT`] x [`POOLED_MAX`] of them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("FramePool")
            .field("kept", &kept.iter().map(Vec::capacity).collect::<Vec<_>>())
            .finish()
    }
}

impl FramePool {
    /// A kept buffer with room for `len` bytes and not more than twice
    /// that, if there is one. Its length is kept: those bytes are already
    /// initialized (and mapped), so a reader need not zero them again.
    pub fn take(&self, len: usize) -> Option<Vec<u8>> {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let i = kept
            .iter()
            .position(|b| b.capacity() >= len && b.capacity() / 2 <= len)?;
        Some(kept.swap_remove(i))
    }

    /// Bytes over `data[start..]` that give `data` back to this pool when
    /// the last of them is dropped.
    pub fn lend(&self, data: Vec<u8>, start: usize) -> Bytes {
        Bytes::from_owner(Lent {
            data,
            pool: Arc::downgrade(&self.0),
        })
        .slice(start..)
    }

    /// Let every kept buffer go.
    pub fn trim(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// How many buffers are kept.
    pub fn kept(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// A pooled buffer out on loan inside a `Bytes`.
struct Lent {
    data: Vec<u8>,
    pool: Weak<Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // A pool that is gone (its connection closed) frees it.
        if let Some(pool) = self.pool.upgrade() {
            let mut kept = pool.lock().unwrap_or_else(PoisonError::into_inner);
            if self.data.capacity() <= POOLED_MAX {
                // The newest stay: when frame sizes change, the buffers
                // kept follow them.
                if kept.len() >= KEPT {
                    kept.remove(0);
                }
                kept.push(std::mem::take(&mut self.data));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_bytes_are_dropped_and_is_reused() {
        let pool = FramePool::default();
        let data = vec![7u8; 1000];
        let at = data.as_ptr();
        let bytes = pool.lend(data, 10);
        assert_eq!(bytes.len(), 990);
        let view = bytes.slice(5..20);
        drop(bytes);
        assert_eq!(pool.kept(), 0, "a view still holds it");
        drop(view);
        assert_eq!(pool.kept(), 1);
        assert!(pool.take(2000).is_none(), "too small");
        assert!(pool.take(400).is_none(), "far too large");
        let again = pool.take(900).expect("kept");
        assert_eq!(again.as_ptr(), at);
        assert_eq!(again.len(), 1000, "its bytes stay initialized");
        pool.lend(again, 0);
        assert_eq!(pool.kept(), 1);
        pool.trim();
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn the_newest_buffers_are_kept_and_a_gone_pool_frees() {
        let pool = FramePool::default();
        for size in [100usize, 200, 400] {
            drop(pool.lend(vec![0u8; size], 0));
        }
        assert_eq!(pool.kept(), 2);
        assert!(pool.take(90).is_none(), "the oldest (100) went");
        let bytes = pool.lend(vec![1u8; 10], 0);
        drop(pool);
        drop(bytes);
    }

    #[test]
    fn debug_names_the_kept_buffers_not_their_bytes() {
        let pool = FramePool::default();
        drop(pool.lend(vec![0u8; 1 << 20], 0));
        let shown = format!("{pool:?}");
        assert_eq!(shown, format!("FramePool {{ kept: [{}] }}", 1 << 20));
    }
}
