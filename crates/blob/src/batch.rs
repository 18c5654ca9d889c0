//! Many objects made durable at once: the backup's and the restore's copies.
//!
//! A blob committed alone is durable before it is visible: on a folder that is an fsync of the
//! file and one of its directory, per blob. A backup copies thousands of blobs nobody reads until
//! its manifest names them, so it writes them into a [`Batch`] instead: each writer from
//! [`BlobStore::create_in`](crate::BlobStore::create_in) leaves its bytes under a temp name, and
//! [`BlobStore::publish`](crate::BlobStore::publish) makes all of them durable with one flush of
//! the file system, renames them into place, and flushes again so the names are durable too.
//! Until then none of them is visible (an interrupted batch leaves no object that could be
//! mistaken for a complete one), and a batch dropped unpublished removes what it wrote.
//!
//! Stores without such a shortcut keep the default: a writer in a batch commits like any other,
//! and publishing has nothing left to do.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes committed into a batch between two background flushes: the disk drains the batch
/// while it is still being written, so publishing waits only for the tail.
pub(crate) const FLUSH_EVERY: u64 = 64 << 20;

/// Objects written together, published together; see the module docs.
#[derive(Clone, Default)]
pub struct Batch {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<Vec<Pending>>,
    flush: Mutex<Flush>,
}

/// The background flush of a batch's bytes.
#[derive(Default)]
struct Flush {
    /// Bytes committed since the last background flush started.
    unflushed: u64,
    running: Option<tokio::task::JoinHandle<()>>,
    /// What a background flush failed with: reported by the publish, since a later flush of
    /// the file system may not see an error an earlier one already reported.
    error: Option<std::io::Error>,
}

/// A written object waiting under its temp name.
pub(crate) struct Pending {
    /// The root of the store that wrote it: a store publishes its own objects only.
    pub(crate) root: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) fin: PathBuf,
}

impl Batch {
    /// Adds a committed object of `len` bytes; every [`FLUSH_EVERY`] bytes, starts `flush`
    /// (of the store's file system) in the background unless one still runs.
    pub(crate) fn add(
        &self,
        pending: Pending,
        len: u64,
        flush: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    ) {
        self.pending().push(pending);
        let mut state = self.flush_state();
        state.unflushed += len;
        let idle = state.running.as_ref().is_none_or(|t| t.is_finished());
        if state.unflushed >= FLUSH_EVERY && idle {
            state.unflushed = 0;
            let inner = Arc::clone(&self.inner);
            state.running = Some(tokio::task::spawn_blocking(move || {
                if let Err(e) = flush() {
                    let mut state = inner.flush.lock().unwrap_or_else(PoisonError::into_inner);
                    state.error.get_or_insert(e);
                }
            }));
        }
    }

    /// Waits for the background flush, if one runs, and returns the first error any of them
    /// met (once).
    pub(crate) async fn settle(&self) -> std::io::Result<()> {
        let running = self.flush_state().running.take();
        if let Some(task) = running {
            task.await.map_err(std::io::Error::other)?;
        }
        match self.flush_state().error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes out the objects written by the store rooted at `root`.
    pub(crate) fn take(&self, root: &Path) -> Vec<Pending> {
        let mut all = self.pending();
        let (mine, others) = std::mem::take(&mut *all)
            .into_iter()
            .partition(|p| p.root == root);
        *all = others;
        mine
    }

    /// Objects written and not published yet.
    pub fn len(&self) -> usize {
        self.pending().len()
    }

    /// Whether nothing waits to be published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic elsewhere cannot leave either half-changed: every change is one push, swap or
    // assignment.
    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn flush_state(&self) -> std::sync::MutexGuard<'_, Flush> {
        self.inner
            .flush
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // The last handle of a batch that was never (or not wholly) published: its temp files
        // would otherwise stay until the orphan sweep.
        if Arc::strong_count(&self.inner) == 1 {
            for p in self.pending().drain(..) {
                let _ = std::fs::remove_file(&p.tmp);
            }
        }
    }
}
