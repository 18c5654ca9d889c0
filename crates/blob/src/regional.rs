//! Data residency: the backends grouped by region, and the view of them one region's writes go
//! through.
//!
//! Every configured backend belongs to one region; each region is a [`Replicated`] store of its
//! own, holding `copies` of each blob written there. [`Regions::in_region`] gives the store an
//! organization's content goes through:
//! - writes (blobs, renditions, audit checkpoints) go to the region's backends only, so content
//!   never lands outside its region;
//! - reads try the region's copies first, then every other region's: while an organization moves
//!   from one region to another, a blob whose row still names the old region (or already the new
//!   one) is found wherever it is at that moment, and a download never notices the move;
//! - deletes reach every region, so a crypto-shredded blob cannot linger where it was before a
//!   move.
//!
//! Region names are what `[[storage.backends]] region` says (`default` when absent): short
//! lowercase words, checked by [`validate_region`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::join_all;

use crate::{Batch, BlobCursor, BlobError, BlobStore, BlobWriter, BoxFuture, Replicated};

/// The region of a backend, or of an organization, when none is given.
pub const DEFAULT_REGION: &str = "default";

/// Longest accepted region name.
pub const MAX_REGION_LEN: usize = 63;

/// Checks a region name is 1 to 63 of `[a-z0-9-]` (`eu`, `us-east`, `default`); the error says
/// so.
pub fn validate_region(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_REGION_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a region name is 1 to {MAX_REGION_LEN} lowercase letters, digits and '-' (such as \
             'eu' or 'us-east')"
        ))
    }
}

/// The configured regions, each with its replicated backends.
pub struct Regions {
    stores: BTreeMap<String, Arc<Replicated>>,
    /// One view per region, made once: a request only clones an `Arc`.
    views: BTreeMap<String, Arc<RegionView>>,
}

impl Regions {
    /// The regions given, each over its own backends. Refuses an empty list and a region named
    /// twice.
    pub fn new(regions: Vec<(String, Replicated)>) -> Result<Regions, String> {
        if regions.is_empty() {
            return Err("at least one storage region is needed".into());
        }
        let mut stores = BTreeMap::new();
        for (name, store) in regions {
            validate_region(&name)?;
            if stores.insert(name.clone(), Arc::new(store)).is_some() {
                return Err(format!("region '{name}' is given twice"));
            }
        }
        Ok(Regions::from_stores(stores))
    }

    /// One region, [`DEFAULT_REGION`], over one backend (tests and tools).
    pub fn single(store: Arc<dyn BlobStore>) -> Regions {
        let member = crate::Member {
            name: DEFAULT_REGION.into(),
            region: DEFAULT_REGION.into(),
            store,
        };
        let stores =
            BTreeMap::from([(DEFAULT_REGION.to_owned(), Arc::new(Replicated::one(member)))]);
        Regions::from_stores(stores)
    }

    fn from_stores(stores: BTreeMap<String, Arc<Replicated>>) -> Regions {
        let views = stores
            .iter()
            .map(|(name, home)| {
                let others = stores
                    .iter()
                    .filter(|(n, _)| *n != name)
                    .map(|(_, s)| Arc::clone(s))
                    .collect();
                let view = RegionView {
                    home: Arc::clone(home),
                    others,
                };
                (name.clone(), Arc::new(view))
            })
            .collect();
        Regions { stores, views }
    }

    /// The region names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    /// Whether `region` is configured.
    pub fn contains(&self, region: &str) -> bool {
        self.stores.contains_key(region)
    }

    /// The store an organization of `region` reads and writes through (see the module docs);
    /// [`BlobError::Unavailable`] when no backend is in that region.
    pub fn in_region(&self, region: &str) -> Result<Arc<dyn BlobStore>, BlobError> {
        match self.views.get(region) {
            Some(v) => Ok(Arc::clone(v) as Arc<dyn BlobStore>),
            None => Err(self.unknown(region)),
        }
    }

    /// The backends of `region` alone, each copy by index (the scrub checks and repairs the
    /// copies a blob's region should hold, and never writes to another region).
    pub fn home(&self, region: &str) -> Result<Arc<Replicated>, BlobError> {
        self.stores
            .get(region)
            .cloned()
            .ok_or_else(|| self.unknown(region))
    }

    /// Every region with its backends, sorted by name.
    pub fn each(&self) -> impl Iterator<Item = (&str, &Arc<Replicated>)> {
        self.stores.iter().map(|(n, s)| (n.as_str(), s))
    }

    fn unknown(&self, region: &str) -> BlobError {
        BlobError::Unavailable(format!(
            "no storage backend is in region '{region}' (configured: {})",
            self.stores.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    }

    /// Deletes blob `id` from every region; every copy must go (see [`BlobStore::delete`]).
    pub async fn delete_everywhere(&self, id: &str) -> Result<(), BlobError> {
        let results = join_all(self.stores.values().map(|s| s.delete(id))).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    /// Ids of committed blobs older than `older_than`, in any region (the orphan sweep).
    pub async fn list_older_than(&self, older_than: SystemTime) -> Result<Vec<String>, BlobError> {
        let mut ids = Vec::new();
        for store in self.stores.values() {
            ids.extend(store.list_older_than(older_than).await?);
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// One region's view: writes go home, reads fall back to the other regions.
struct RegionView {
    home: Arc<Replicated>,
    others: Vec<Arc<Replicated>>,
}

impl RegionView {
    /// Every region's store, home first.
    fn all(&self) -> impl Iterator<Item = &Arc<Replicated>> {
        std::iter::once(&self.home).chain(self.others.iter())
    }

    /// The store and its own copy index of flattened copy `copy` (home copies first).
    fn locate(&self, mut copy: usize) -> Option<(&Arc<Replicated>, usize)> {
        for store in self.all() {
            let n = store.copies();
            if copy < n {
                return Some((store, copy));
            }
            copy -= n;
        }
        None
    }
}

/// Tries each store in turn until one has the blob; a missing blob in one region is not final.
async fn found_in<'a, T, I, F>(stores: I, mut op: F) -> Result<T, BlobError>
where
    I: Iterator<Item = &'a Arc<Replicated>>,
    F: FnMut(&'a Arc<Replicated>) -> BoxFuture<'a, Result<T, BlobError>>,
{
    let mut first_err = None;
    for store in stores {
        match op(store).await {
            Ok(v) => return Ok(v),
            Err(BlobError::NotFound) => {}
            Err(BlobError::InvalidId) => return Err(BlobError::InvalidId),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(BlobError::NotFound))
}

impl BlobStore for RegionView {
    fn create<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.home.create(id)
    }

    fn create_in<'a>(
        &'a self,
        id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.home.create_in(id, batch)
    }

    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), BlobError>> {
        self.home.publish(batch)
    }

    fn create_sized<'a>(
        &'a self,
        id: &'a str,
        len: u64,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.home.create_sized(id, len)
    }

    fn read_at<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(found_in(self.all(), move |s| s.read_at(id, offset, len)))
    }

    /// The home region's copies, then every other region's: the encryption layer falls back
    /// through them in this order.
    fn copies(&self) -> usize {
        self.all().map(|s| s.copies()).sum()
    }

    fn read_copy_at<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        match self.locate(copy) {
            Some((store, c)) => store.read_copy_at(id, c, offset, len),
            None => Box::pin(async { Err(BlobError::NotFound) }),
        }
    }

    fn cursor<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Option<Box<dyn BlobCursor>>, BlobError>> {
        match self.locate(copy) {
            Some((store, c)) => store.cursor(id, c, range),
            None => Box::pin(async { Err(BlobError::NotFound) }),
        }
    }

    fn required_copies(&self) -> usize {
        self.home.required_copies()
    }

    fn copy_name(&self, copy: usize) -> String {
        self.locate(copy)
            .map_or_else(|| format!("copy {copy}"), |(s, c)| s.copy_name(c))
    }

    fn copy_region(&self, copy: usize) -> String {
        self.locate(copy)
            .map_or_else(String::new, |(s, c)| s.copy_region(c))
    }

    fn check_copy<'a>(&'a self, copy: usize) -> BoxFuture<'a, Result<(), BlobError>> {
        match self.locate(copy) {
            Some((store, c)) => store.check_copy(c),
            None => Box::pin(async { Err(BlobError::NotFound) }),
        }
    }

    /// Repairs write only to the home region: a copy index beyond it is refused.
    fn create_copy<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        if copy < self.home.copies() {
            self.home.create_copy(id, copy)
        } else {
            Box::pin(async { Err(BlobError::NotFound) })
        }
    }

    fn len<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(found_in(self.all(), move |s| s.len(id)))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let results = join_all(self.all().map(|s| s.delete(id))).await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            Ok(())
        })
    }

    fn list_older_than<'a>(
        &'a self,
        older_than: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        self.home.list_older_than(older_than)
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), BlobError>> {
        self.home.check()
    }

    fn put_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        self.home.put_checkpoint(org, seq, data)
    }

    /// Checkpoints written in any region: those from before a move stay where they were
    /// written (they hold a chain position, a hash and a MAC; no content).
    fn checkpoint_seqs<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<u64>, BlobError>> {
        Box::pin(async move {
            let mut seqs = self.home.checkpoint_seqs(org).await?;
            for other in &self.others {
                match other.checkpoint_seqs(org).await {
                    Ok(s) => seqs.extend(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not list the audit checkpoints of another region")
                    }
                }
            }
            seqs.sort_unstable();
            seqs.dedup();
            Ok(seqs)
        })
    }

    /// Those of every region.
    fn checkpoint_orgs<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            let mut orgs = self.home.checkpoint_orgs().await?;
            for other in &self.others {
                match other.checkpoint_orgs().await {
                    Ok(o) => orgs.extend(o),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not list the audit checkpoints of another region")
                    }
                }
            }
            orgs.sort_unstable();
            orgs.dedup();
            Ok(orgs)
        })
    }

    fn get_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(found_in(self.all(), move |s| s.get_checkpoint(org, seq)))
    }
}

#[cfg(test)]
mod tests;
