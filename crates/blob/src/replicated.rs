//! Copies: one store over several backends, each holding a whole copy of every blob.
//!
//! Every backend receives every blob, written in parallel; an upload is acknowledged (the
//! writer commits) only once at least `copies` backends hold it durably. A backend that fails
//! midway is dropped from that upload; if fewer than `copies` remain, the upload fails with
//! [`BlobError::Unavailable`] and the copies already committed are removed. Reads take the first
//! backend that answers; the encryption layer asks for the other copies by index
//! ([`BlobStore::read_copy_at`]) when a chunk of one is missing or fails its check, so a damaged
//! copy never reaches a client. Copies a backend missed (it was down, or was added later) are
//! written by the scrub, which also replaces damaged ones.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::{Batch, BlobCursor, BlobError, BlobStore, BlobWriter, BoxFuture};

/// One backend of a replicated store.
#[derive(Clone)]
pub struct Member {
    /// The backend's name, for errors and status.
    pub name: String,
    /// The data-residency region it belongs to.
    pub region: String,
    /// The backend.
    pub store: Arc<dyn BlobStore>,
}

/// Several backends, each holding a copy of every blob.
pub struct Replicated {
    members: Vec<Member>,
    copies: usize,
}

impl Replicated {
    /// Opens a writer on every member (of a blob of `len` bytes when known).
    fn create_with<'a>(
        &'a self,
        id: &'a str,
        len: Option<u64>,
        batch: Option<&'a Batch>,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(async move {
            crate::validate_id(id)?;
            let opened = join_all(self.members.iter().map(|m| async move {
                let w = match (len, batch) {
                    (Some(len), _) => m.store.create_sized(id, len).await,
                    (None, Some(batch)) => m.store.create_in(id, batch).await,
                    (None, None) => m.store.create(id).await,
                };
                (m.clone(), w)
            }))
            .await;

            let mut writers = Vec::with_capacity(opened.len());
            let mut failures = Vec::new();
            for (m, r) in opened {
                match r {
                    Ok(w) => writers.push((m, w)),
                    Err(e) => failures.push(format!("{}: {e}", m.name)),
                }
            }
            if writers.len() < self.copies {
                return Err(self.too_few("an upload", writers.len(), &failures));
            }
            for f in &failures {
                tracing::warn!(blob = %id, failure = %f, "a storage backend refused a copy; the scrub will write it");
            }
            Ok(Box::new(ReplicatedWriter {
                id: id.to_owned(),
                writers,
                failures,
                copies: self.copies,
                total: self.members.len(),
            }) as Box<dyn BlobWriter>)
        })
    }

    /// A store over `members` (in read preference order) that acknowledges a blob once `copies`
    /// of them hold it. Refuses `copies` of 0 or above the number of members.
    pub fn new(members: Vec<Member>, copies: usize) -> Result<Replicated, String> {
        if copies == 0 {
            return Err("copies must be at least 1".into());
        }
        if copies > members.len() {
            return Err(format!(
                "copies = {copies} needs at least {copies} storage backends, but {} {} configured",
                members.len(),
                if members.len() == 1 { "is" } else { "are" }
            ));
        }
        Ok(Replicated { members, copies })
    }

    /// One backend holding the only copy.
    pub(crate) fn one(member: Member) -> Replicated {
        Replicated {
            members: vec![member],
            copies: 1,
        }
    }

    /// The backends, in read preference order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// `Ok` when at least `copies` of the members' results (in member order) are `Ok`.
    fn enough(&self, what: &str, results: Vec<Result<(), BlobError>>) -> Result<(), BlobError> {
        let failures: Vec<String> = self
            .members
            .iter()
            .zip(results)
            .filter_map(|(m, r)| r.err().map(|e| format!("{}: {e}", m.name)))
            .collect();
        let ok = self.members.len() - failures.len();
        if ok < self.copies {
            return Err(self.too_few(what, ok, &failures));
        }
        Ok(())
    }

    fn too_few(&self, what: &str, ok: usize, failures: &[String]) -> BlobError {
        BlobError::Unavailable(format!(
            "{what} needs {} of {} storage backends, but only {ok} answered: {}",
            self.copies,
            self.members.len(),
            failures.join("; ")
        ))
    }
}

/// How much of a copy is moved per read when one copy is rewritten from another.
const REWRITE_PIECE: usize = 1 << 20;

/// Rewrites copy `to` of blob `id` from copy `from`, byte for byte (`stored_len` bytes of
/// ciphertext: nothing is decrypted here). The caller verified copy `from` first; the new copy
/// becomes visible only once complete and durable.
pub async fn rewrite_copy(
    store: &dyn BlobStore,
    id: &str,
    from: usize,
    to: usize,
    stored_len: u64,
) -> Result<(), BlobError> {
    let mut w = store.create_copy(id, to).await?;
    let mut at = 0u64;
    while at < stored_len {
        let want = usize::try_from(stored_len - at).map_or(REWRITE_PIECE, |n| n.min(REWRITE_PIECE));
        let piece = store.read_copy_at(id, from, at, want).await?;
        if piece.is_empty() {
            return Err(strongroom_crypto::CryptoError::Truncated.into());
        }
        at += piece.len() as u64;
        w.write(piece).await?;
    }
    w.commit().await
}

/// Reads from each member in turn until one answers; a missing blob on one is not final.
async fn first_answer<'a, T, F>(members: &'a [Member], mut op: F) -> Result<T, BlobError>
where
    F: FnMut(&'a Member) -> BoxFuture<'a, Result<T, BlobError>>,
{
    let mut worst: Option<BlobError> = None;
    for m in members {
        match op(m).await {
            Ok(v) => return Ok(v),
            Err(BlobError::InvalidId) => return Err(BlobError::InvalidId),
            Err(e) => {
                // A missing copy says least; any other failure says more.
                if worst
                    .as_ref()
                    .is_none_or(|w| matches!(w, BlobError::NotFound))
                {
                    worst = Some(e);
                }
            }
        }
    }
    Err(worst.unwrap_or(BlobError::NotFound))
}

impl BlobStore for Replicated {
    fn create<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.create_with(id, None, None)
    }

    fn create_sized<'a>(
        &'a self,
        id: &'a str,
        len: u64,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.create_with(id, Some(len), None)
    }

    fn create_in<'a>(
        &'a self,
        id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.create_with(id, None, Some(batch))
    }

    /// Publishes on every backend; as for a single blob, the batch holds once `copies` of them
    /// published it (the scrub writes the copies a failed backend lacks).
    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let results = join_all(self.members.iter().map(|m| m.store.publish(batch))).await;
            let mut failures = Vec::new();
            for (m, r) in self.members.iter().zip(results) {
                if let Err(e) = r {
                    failures.push(format!("{}: {e}", m.name));
                }
            }
            let ok = self.members.len() - failures.len();
            if ok < self.copies {
                return Err(self.too_few("a batch of copies", ok, &failures));
            }
            for f in &failures {
                tracing::warn!(failure = %f, "a storage backend could not publish a batch; the scrub will write its copies");
            }
            Ok(())
        })
    }

    fn read_at<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(first_answer(&self.members, move |m| {
            m.store.read_at(id, offset, len)
        }))
    }

    fn copies(&self) -> usize {
        self.members.len()
    }

    fn read_copy_at<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        match self.members.get(copy) {
            Some(m) => m.store.read_at(id, offset, len),
            None => Box::pin(async { Err(BlobError::NotFound) }),
        }
    }

    fn cursor<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Option<Box<dyn BlobCursor>>, BlobError>> {
        match self.members.get(copy) {
            Some(m) => m.store.cursor(id, 0, range),
            None => Box::pin(async { Err(BlobError::NotFound) }),
        }
    }

    fn required_copies(&self) -> usize {
        self.copies
    }

    fn copy_name(&self, copy: usize) -> String {
        self.members
            .get(copy)
            .map_or_else(|| format!("copy {copy}"), |m| m.name.clone())
    }

    fn copy_region(&self, copy: usize) -> String {
        self.members
            .get(copy)
            .map_or_else(String::new, |m| m.region.clone())
    }

    fn check_copy<'a>(&'a self, copy: usize) -> BoxFuture<'a, Result<(), BlobError>> {
        match self.members.get(copy) {
            Some(m) => m.store.check(),
            None => Box::pin(async { Err(BlobError::NotFound) }),
        }
    }

    fn create_copy<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        match self.members.get(copy) {
            Some(m) => m.store.create(id),
            None => Box::pin(async { Err(BlobError::NotFound) }),
        }
    }

    fn len<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(first_answer(&self.members, move |m| m.store.len(id)))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            // Every copy goes, or the delete fails (and is retried by whoever asked, or the
            // sweep): a crypto-shredded blob must not linger on a backend that was down.
            let results = join_all(self.members.iter().map(|m| m.store.delete(id))).await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            Ok(())
        })
    }

    fn list_older_than<'a>(
        &'a self,
        older_than: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            let lists = join_all(
                self.members
                    .iter()
                    .map(|m| m.store.list_older_than(older_than)),
            )
            .await;
            let mut ids = Vec::new();
            let mut answered = 0;
            for (m, list) in self.members.iter().zip(lists) {
                match list {
                    Ok(l) => {
                        answered += 1;
                        ids.extend(l);
                    }
                    Err(e) => {
                        tracing::warn!(backend = %m.name, error = %e, "could not list a storage backend for the sweep");
                    }
                }
            }
            if answered == 0 && !self.members.is_empty() {
                return Err(BlobError::Unavailable(
                    "no storage backend could be listed".into(),
                ));
            }
            ids.sort();
            ids.dedup();
            Ok(ids)
        })
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let results = join_all(self.members.iter().map(|m| m.store.check())).await;
            self.enough("an upload", results)
        })
    }

    fn put_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let results = join_all(
                self.members
                    .iter()
                    .map(|m| m.store.put_checkpoint(org, seq, data.clone())),
            )
            .await;
            self.enough("an audit checkpoint", results)
        })
    }

    fn checkpoint_seqs<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<u64>, BlobError>> {
        Box::pin(async move {
            union(join_all(self.members.iter().map(|m| m.store.checkpoint_seqs(org))).await)
        })
    }

    fn checkpoint_orgs<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            union(join_all(self.members.iter().map(|m| m.store.checkpoint_orgs())).await)
        })
    }

    fn get_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(first_answer(&self.members, move |m| {
            m.store.get_checkpoint(org, seq)
        }))
    }
}

/// An upload being written to every backend at once.
struct ReplicatedWriter {
    id: String,
    writers: Vec<(Member, Box<dyn BlobWriter>)>,
    failures: Vec<String>,
    copies: usize,
    total: usize,
}

impl ReplicatedWriter {
    fn too_few(&self) -> BlobError {
        BlobError::Unavailable(format!(
            "an upload needs {} of {} storage backends, but only {} could write it: {}",
            self.copies,
            self.total,
            self.writers.len(),
            self.failures.join("; ")
        ))
    }
}

impl BlobWriter for ReplicatedWriter {
    fn write<'a>(&'a mut self, data: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let results =
                join_all(self.writers.iter_mut().map(|(_, w)| w.write(data.clone()))).await;
            let failed: Vec<(usize, BlobError)> = results
                .into_iter()
                .enumerate()
                .filter_map(|(i, r)| r.err().map(|e| (i, e)))
                .collect();
            // Dropped writers discard their partial copy.
            for (i, e) in failed.into_iter().rev() {
                let (m, _) = self.writers.remove(i);
                tracing::warn!(blob = %self.id, backend = %m.name, error = %e, "a storage backend failed during an upload; the scrub will write its copy");
                self.failures.push(format!("{}: {e}", m.name));
            }
            if self.writers.len() < self.copies {
                return Err(self.too_few());
            }
            Ok(())
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        Box::pin(async move {
            let ReplicatedWriter {
                id,
                writers,
                mut failures,
                copies,
                total,
            } = *self;
            let (members, writers): (Vec<Member>, Vec<Box<dyn BlobWriter>>) =
                writers.into_iter().unzip();
            let results = join_all(writers.into_iter().map(|w| w.commit())).await;
            let mut committed = Vec::new();
            for (m, r) in members.into_iter().zip(results) {
                match r {
                    Ok(()) => committed.push(m),
                    Err(e) => failures.push(format!("{}: {e}", m.name)),
                }
            }
            if committed.len() < copies {
                // Not acknowledged: no copy of it may outlive the failure.
                for m in &committed {
                    if let Err(e) = m.store.delete(&id).await {
                        tracing::warn!(blob = %id, backend = %m.name, error = %e, "could not remove a copy of a failed upload; the sweep will");
                    }
                }
                return Err(BlobError::Unavailable(format!(
                    "an upload needs {copies} of {total} storage backends, but only {} stored it durably: {}",
                    committed.len(),
                    failures.join("; ")
                )));
            }
            Ok(())
        })
    }
}

/// The union of the lists of the members that answered, sorted, without repeats: an error only
/// when none answered.
fn union<T: Ord>(lists: Vec<Result<Vec<T>, BlobError>>) -> Result<Vec<T>, BlobError> {
    let mut all = Vec::new();
    let mut answered = false;
    let mut last_err = None;
    for list in lists {
        match list {
            Ok(l) => {
                answered = true;
                all.extend(l);
            }
            Err(e) => last_err = Some(e),
        }
    }
    if !answered && let Some(e) = last_err {
        return Err(e);
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

#[cfg(test)]
mod tests;
