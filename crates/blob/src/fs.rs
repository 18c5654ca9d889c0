//! The filesystem backend.
//!
//! Layout under the root (see `docs/blob-format.md`):
//! - `tmp/<id>.<random>.tmp`: blobs being written; same filesystem as `objects/`, so the final
//!   rename is atomic;
//! - `objects/<fanout>/<id>`: committed blobs, `<fanout>` being the first byte of SHA-256(id) in
//!   hex, which spreads ids evenly over 256 directories whatever their prefix (`ast_...`);
//! - `checkpoints/<org>/<seq>.json`: signed audit checkpoints (`docs/audit.md`), `<seq>` in 20
//!   zero-padded decimal digits. Written like blobs (temp file, fsync, rename, fsync directory);
//!   never listed by the orphan sweep, which only walks `objects/` and `tmp/`.
//!
//! Files are created with mode 0600 and directories 0700. All filesystem calls run on tokio's
//! blocking pool so a slow disk never stalls the async workers.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;

use crate::batch::{Batch, Pending};
use crate::{BlobCursor, BlobError, BlobStore, BlobWriter, BoxFuture, validate_id};

/// Blobs as files in a local directory (or a mounted volume).
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    tmp: PathBuf,
    objects: PathBuf,
    checkpoints: PathBuf,
}

/// The directory under the store's root that holds audit checkpoints (one folder per
/// organization). Frozen: checkpoints already written are found there.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`: creates `root/tmp` and
    /// `root/objects/<00..ff>/` up front, so committing a blob never has to create (and fsync) a
    /// directory on the hot path.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsBlobStore, BlobError> {
        let root = root.into();
        let tmp = root.join("tmp");
        let objects = root.join("objects");
        let checkpoints = root.join(CHECKPOINTS_DIR);
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        builder.create(&tmp)?;
        builder.create(&objects)?;
        builder.create(&checkpoints)?;
        for b in 0..=255u8 {
            builder.create(objects.join(format!("{b:02x}")))?;
        }
        // Make the directory entries themselves durable before any blob relies on them.
        File::open(&objects)?.sync_all()?;
        File::open(&root)?.sync_all()?;
        Ok(FsBlobStore {
            root,
            tmp,
            objects,
            checkpoints,
        })
    }

    /// The root directory of this store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn fanout_dir(&self, id: &str) -> PathBuf {
        fanout_dir(&self.objects, id)
    }

    /// `checkpoints/<org>/<seq>.json` of a validated organization id.
    fn checkpoint_path(&self, org: &str, seq: u64) -> PathBuf {
        self.checkpoints.join(org).join(checkpoint_name(seq))
    }

    /// A writer of blob `id` into `tmp/`; in `batch`, into its fan-out folder instead, where its
    /// commit leaves the file for [`BlobStore::publish`] to flush and rename.
    async fn writer(
        &self,
        id: &str,
        batch: Option<Batch>,
    ) -> Result<Box<dyn BlobWriter>, BlobError> {
        validate_id(id)?;
        // The random part keeps two concurrent uploads of one id from sharing a temp file.
        let name = format!("{id}.{}.tmp", strongroom_crypto::token::random_token(9));
        let final_path = self.object_path(id);
        let dir = self.fanout_dir(id);
        // A batch's files wait beside their final names, spread over the 256 folders: a
        // thousand new files in one folder crowd one group of inodes, and creating each costs
        // more (ext4 searches past the inodes deleted there recently). No name with a dot is an
        // id, so listings skip them; the sweep removes old ones like those in `tmp/`.
        let tmp_path = match batch {
            Some(_) => dir.join(name),
            None => self.tmp.join(name),
        };
        let file = create_new(tmp_path.clone()).await?;
        Ok(Box::new(FsBlobWriter {
            file: Arc::new(file),
            tmp_path,
            final_path,
            dir,
            batch: batch.map(|b| (b, self.root.clone())),
            writing: None,
            flushing: None,
            unflushed: 0,
            written: 0,
            in_flight: false,
            committed: false,
        }))
    }

    /// Path of the committed blob `id` (which must already be validated).
    pub(crate) fn object_path(&self, id: &str) -> PathBuf {
        self.fanout_dir(id).join(id)
    }
}

/// `objects/<first byte of SHA-256(id) in hex>`: spreads ids that share a prefix over 256 folders.
fn fanout_dir(objects: &Path, id: &str) -> PathBuf {
    let h = strongroom_crypto::digest::sha256(id.as_bytes());
    objects.join(format!("{:02x}", h[0]))
}

fn object_path_in(objects: &Path, id: &str) -> PathBuf {
    fanout_dir(objects, id).join(id)
}

/// Every committed object under `objects` with its modification time: only files where
/// `delete` will look for them, so a stray file elsewhere is never reported (nor swept). With
/// `temps`, also collects the temp files of batches waiting there (`<id>.<random>.tmp`).
fn walk_objects(
    objects: &Path,
    mut temps: Option<&mut Vec<(PathBuf, SystemTime)>>,
) -> io::Result<Vec<(String, SystemTime)>> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(objects)? {
        let dir = dir?;
        if !dir.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(dir.path())? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let temp = name.ends_with(".tmp");
            if !temp
                && (validate_id(&name).is_err() || entry.path() != object_path_in(objects, &name))
            {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Deleted while we were listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !meta.is_file() {
                continue;
            }
            match (temp, temps.as_deref_mut()) {
                (false, _) => out.push((name, meta.modified()?)),
                (true, Some(temps)) => temps.push((entry.path(), meta.modified()?)),
                (true, None) => {}
            }
        }
    }
    Ok(out)
}

/// Removes `path` unless it is already gone.
fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `<seq>.json` with 20 digits, so names sort like the numbers (and every u64 fits).
pub(crate) fn checkpoint_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// The sequence number of a checkpoint file name, if it is one exactly as [`checkpoint_name`]
/// writes it: other files in the folder are not checkpoints.
pub(crate) fn parse_checkpoint_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    let seq = digits.parse::<u64>().ok()?;
    (checkpoint_name(seq) == name).then_some(seq)
}

/// Creates the new file `path` (mode 0600) on the blocking pool. A caller cancelled meanwhile
/// (an upload whose client went away, a restore stopping on another object's error) leaves no
/// file behind: the open may still run after the caller is gone, so whichever of the two comes
/// last removes it.
async fn create_new(path: PathBuf) -> Result<File, BlobError> {
    /// What the opening and the waiting side know of each other.
    #[derive(Default)]
    struct Claim {
        created: bool,
        abandoned: bool,
    }
    /// Dropped armed when the caller goes away before it has the file.
    struct Abandon {
        claim: Arc<Mutex<Claim>>,
        path: PathBuf,
        armed: bool,
    }
    impl Drop for Abandon {
        fn drop(&mut self) {
            if !self.armed {
                return;
            }
            let mut claim = self.claim.lock().unwrap_or_else(PoisonError::into_inner);
            claim.abandoned = true;
            if claim.created {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    let claim = Arc::new(Mutex::new(Claim::default()));
    let mut waiting = Abandon {
        claim: Arc::clone(&claim),
        path: path.clone(),
        armed: true,
    };
    let file = blocking(move || {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let mut claim = claim.lock().unwrap_or_else(PoisonError::into_inner);
        if claim.abandoned {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(io::Error::other("nobody waits for this file any more"));
        }
        claim.created = true;
        Ok(file)
    })
    .await?;
    waiting.armed = false;
    Ok(file)
}

/// Runs blocking filesystem work off the async workers.
async fn blocking<T, F>(f: F) -> Result<T, BlobError>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(not_found),
        Err(e) => Err(BlobError::Io(io::Error::other(e))),
    }
}

/// Maps "no such file" to [`BlobError::NotFound`] so callers can tell a missing blob from a
/// failing disk.
fn not_found(e: io::Error) -> BlobError {
    if e.kind() == io::ErrorKind::NotFound {
        BlobError::NotFound
    } else {
        BlobError::Io(e)
    }
}

/// Flushes every file system write under `root`'s file system (`syncfs(2)`): one flush for a
/// whole batch instead of an fsync per file and directory.
fn syncfs(root: &Path) -> io::Result<()> {
    let dir = File::open(root)?;
    rustix::fs::syncfs(&dir).map_err(io::Error::from)
}

/// One open file read in order: unlike a fresh open per read, the kernel sees a sequential
/// reader and reads ahead while the caller decrypts.
struct FsCursor {
    /// Lent to the blocking pool during a read; `None` after a read failed or was cancelled.
    file: Option<File>,
    /// Bytes of the range not read yet.
    left: u64,
}

impl BlobCursor for FsCursor {
    fn read<'a>(&'a mut self, len: usize) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            let want = usize::try_from(self.left).map_or(len, |left| left.min(len));
            if want == 0 {
                return Ok(Bytes::new());
            }
            let mut file = self.file.take().ok_or_else(|| {
                BlobError::Io(io::Error::other("blob cursor used after a failed read"))
            })?;
            let (file, buf) = blocking(move || {
                // Unfilled capacity, as in `read_at`: no zero-fill of each batch.
                let mut buf = crate::pool::take(want);
                (&mut file).take(want as u64).read_to_end(&mut buf)?;
                Ok((file, buf))
            })
            .await?;
            self.file = Some(file);
            self.left -= buf.len() as u64;
            Ok(Bytes::from(buf))
        })
    }
}

impl BlobStore for FsBlobStore {
    fn create<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(self.writer(id, None))
    }

    fn create_in<'a>(
        &'a self,
        id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(self.writer(id, Some(batch.clone())))
    }

    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let pending = batch.take(&self.root);
            if pending.is_empty() {
                return Ok(());
            }
            if let Err(e) = batch.settle().await {
                // The bytes of some object may not be on the disk: none of them is published.
                for p in &pending {
                    let _ = std::fs::remove_file(&p.tmp);
                }
                return Err(BlobError::Io(e));
            }
            let root = self.root.clone();
            blocking(move || {
                let published = (|| {
                    // The bytes first, all at once; then the names, which point at them.
                    syncfs(&root)?;
                    for p in &pending {
                        std::fs::rename(&p.tmp, &p.fin)?;
                    }
                    syncfs(&root)
                })();
                if published.is_err() {
                    // Whatever was not renamed goes; a renamed object is complete, since its
                    // bytes were flushed before any rename.
                    for p in &pending {
                        let _ = std::fs::remove_file(&p.tmp);
                    }
                }
                published
            })
            .await
        })
    }

    fn read_at<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            let path = self.object_path(id);
            blocking(move || {
                let mut file = File::open(path)?;
                file.seek(io::SeekFrom::Start(offset))?;
                // Read into reserved, unfilled capacity: zero-filling a fresh megabyte per batch
                // first was a measurable share of download CPU.
                let mut buf = crate::pool::take(len);
                (&mut file).take(len as u64).read_to_end(&mut buf)?;
                Ok(Bytes::from(buf))
            })
            .await
        })
    }

    fn cursor<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Option<Box<dyn BlobCursor>>, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            if copy != 0 {
                return Err(BlobError::NotFound);
            }
            let path = self.object_path(id);
            let start = range.start;
            let file = blocking(move || {
                let mut file = File::open(path)?;
                file.seek(io::SeekFrom::Start(start))?;
                Ok(file)
            })
            .await?;
            let cursor: Box<dyn BlobCursor> = Box::new(FsCursor {
                file: Some(file),
                left: range.end.saturating_sub(range.start),
            });
            Ok(Some(cursor))
        })
    }

    fn len<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            let path = self.object_path(id);
            blocking(move || std::fs::metadata(path).map(|m| m.len())).await
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            let path = self.object_path(id);
            // No directory fsync: if a crash resurrects the file, the orphan sweep deletes it
            // again, and its data key is already gone from the database.
            match blocking(move || std::fs::remove_file(path)).await {
                Ok(()) | Err(BlobError::NotFound) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn list_older_than<'a>(
        &'a self,
        older_than: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            let objects = self.objects.clone();
            let tmp = self.tmp.clone();
            blocking(move || {
                let mut temps = Vec::new();
                let mut ids: Vec<String> = walk_objects(&objects, Some(&mut temps))?
                    .into_iter()
                    .filter(|(_, modified)| *modified < older_than)
                    .map(|(name, _)| name)
                    .collect();
                for entry in std::fs::read_dir(&tmp)? {
                    let entry = entry?;
                    let meta = match entry.metadata() {
                        Ok(m) => m,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    if meta.is_file() {
                        temps.push((entry.path(), meta.modified()?));
                    }
                }
                for (path, modified) in temps {
                    if modified < older_than {
                        remove_if_there(&path)?;
                    }
                }
                ids.sort_unstable();
                Ok(ids)
            })
            .await
        })
    }

    fn list_objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<(String, SystemTime)>, BlobError>> {
        Box::pin(async move {
            let objects = self.objects.clone();
            blocking(move || {
                let mut all = walk_objects(&objects, None)?;
                all.sort_unstable();
                Ok(all)
            })
            .await
        })
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let probe = self.tmp.join(format!(
                ".check-{}",
                strongroom_crypto::token::random_token(9)
            ));
            blocking(move || {
                let written = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&probe)
                    .and_then(|mut f| f.write_all(b"ok"));
                let removed = std::fs::remove_file(&probe);
                written.and(removed)
            })
            .await
            // A missing directory is a broken store, not a missing blob.
            .map_err(|e| match e {
                BlobError::NotFound => BlobError::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    "blob store directory is missing",
                )),
                e => e,
            })
        })
    }

    fn put_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            validate_id(org)?;
            if data.len() > crate::MAX_CHECKPOINT_LEN {
                return Err(BlobError::TooLarge);
            }
            let tmp = self.tmp.join(format!(
                "checkpoint-{org}-{seq}.{}.tmp",
                strongroom_crypto::token::random_token(9)
            ));
            let dir = self.checkpoints.join(org);
            let parent = self.checkpoints.clone();
            let fin = self.checkpoint_path(org, seq);
            blocking(move || {
                let written = (|| {
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    file.write_all(&data)?;
                    file.sync_all()?;
                    match DirBuilder::new().mode(0o700).create(&dir) {
                        // A new folder's entry must be durable before anything relies on it.
                        Ok(()) => File::open(&parent)?.sync_all()?,
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    std::fs::rename(&tmp, &fin)?;
                    File::open(&dir)?.sync_all()
                })();
                if written.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                written
            })
            .await
        })
    }

    fn checkpoint_seqs<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<u64>, BlobError>> {
        Box::pin(async move {
            validate_id(org)?;
            let dir = self.checkpoints.join(org);
            blocking(move || {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                let mut seqs = Vec::new();
                for entry in entries {
                    let entry = entry?;
                    if let Some(seq) = entry.file_name().to_str().and_then(parse_checkpoint_name) {
                        seqs.push(seq);
                    }
                }
                seqs.sort_unstable();
                Ok(seqs)
            })
            .await
        })
    }

    fn checkpoint_orgs<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            let dir = self.checkpoints.clone();
            blocking(move || {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                let mut orgs = Vec::new();
                for entry in entries {
                    let entry = entry?;
                    if let Some(name) = entry.file_name().to_str()
                        && entry.file_type()?.is_dir()
                        && validate_id(name).is_ok()
                    {
                        orgs.push(name.to_owned());
                    }
                }
                orgs.sort_unstable();
                Ok(orgs)
            })
            .await
        })
    }

    fn get_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            validate_id(org)?;
            let path = self.checkpoint_path(org, seq);
            blocking(move || {
                let mut buf = Vec::new();
                File::open(path)?
                    .take(crate::MAX_CHECKPOINT_LEN as u64 + 1)
                    .read_to_end(&mut buf)?;
                Ok(Bytes::from(buf))
            })
            .await
        })
    }
}

/// A blob being written to `tmp/`.
struct FsBlobWriter {
    // Shared with the blocking tasks that write and flush it.
    file: Arc<File>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    // With the store's root when written into a batch: the commit hands the file to it.
    batch: Option<(Batch, PathBuf)>,
    // The write running in the background while the caller prepares the next batch. At most one
    // runs at a time, and each starts only after the previous one finished: bytes land in order.
    writing: Option<tokio::task::JoinHandle<io::Result<()>>>,
    // A background `fdatasync` started every FLUSH_EVERY bytes: the disk drains the upload while it
    // is still arriving, so the commit's final sync only waits for the tail.
    flushing: Option<tokio::task::JoinHandle<io::Result<()>>>,
    unflushed: u64,
    // Bytes written in all (a batch counts them towards its next background flush).
    written: u64,
    // Set while waiting on `writing`. If that wait is cancelled the previous write may still run;
    // refusing further use keeps a new write from overtaking it.
    in_flight: bool,
    committed: bool,
}

/// Bytes written between background flushes.
const FLUSH_EVERY: u64 = 32 * 1024 * 1024;

async fn join(task: tokio::task::JoinHandle<io::Result<()>>) -> Result<(), BlobError> {
    match task.await {
        Ok(r) => r.map_err(BlobError::Io),
        Err(e) => Err(BlobError::Io(io::Error::other(e))),
    }
}

impl FsBlobWriter {
    fn usable(&self) -> Result<(), BlobError> {
        if self.in_flight {
            return Err(BlobError::Io(io::Error::other(
                "blob writer used after a cancelled write",
            )));
        }
        Ok(())
    }

    /// Waits for the background write, if one runs, and reports its result.
    async fn settle(&mut self) -> Result<(), BlobError> {
        if let Some(task) = self.writing.take() {
            self.in_flight = true;
            join(task).await?;
            self.in_flight = false;
        }
        Ok(())
    }
}

impl BlobWriter for FsBlobWriter {
    fn write<'a>(&'a mut self, data: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            self.usable()?;
            self.settle().await?;
            let file = Arc::clone(&self.file);
            self.unflushed += data.len() as u64;
            self.written += data.len() as u64;
            self.writing = Some(tokio::task::spawn_blocking(move || {
                (&*file).write_all(&data)
            }));
            let idle = self.flushing.as_ref().is_none_or(|t| t.is_finished());
            // A batch's file is flushed with the whole batch (a background syncfs, then at
            // publish), not on its own.
            if self.batch.is_none() && self.unflushed >= FLUSH_EVERY && idle {
                if let Some(done) = self.flushing.take() {
                    join(done).await?;
                }
                self.unflushed = 0;
                let file = Arc::clone(&self.file);
                self.flushing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
            }
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        Box::pin(async move {
            self.usable()?;
            self.settle().await?;
            if let Some(flush) = self.flushing.take() {
                join(flush).await?;
            }
            if let Some((batch, root)) = self.batch.take() {
                let flushed_root = root.clone();
                batch.add(
                    Pending {
                        root,
                        tmp: self.tmp_path.clone(),
                        fin: self.final_path.clone(),
                    },
                    self.written,
                    move || syncfs(&flushed_root),
                );
                self.committed = true;
                return Ok(());
            }
            let file = Arc::clone(&self.file);
            let tmp = self.tmp_path.clone();
            let fin = self.final_path.clone();
            let dir = self.dir.clone();
            self.in_flight = true;
            blocking(move || {
                file.sync_all()?;
                std::fs::rename(&tmp, &fin)?;
                File::open(&dir)?.sync_all()
            })
            .await?;
            self.in_flight = false;
            self.committed = true;
            Ok(())
        })
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            // Synchronous on purpose: an unlink is cheap, and doing it here (not on a spawned
            // task) guarantees an abandoned upload leaves nothing behind even during shutdown.
            // If a commit failed after its rename, the temp path is already gone and this is a
            // no-op; the orphan sweep removes the unreferenced final file.
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests;
