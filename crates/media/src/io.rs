//! The caller's side of a job: where the input comes from and where the outputs go.

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;

/// A boxed, sendable future: keeps [`MediaSource`] and [`MediaSink`] object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The input of a job: random-access reads of plaintext of a known size. In production this is
/// a ranged, decrypting read of a stored blob; the bytes it returns go to ffmpeg over loopback
/// only, never to disk.
pub trait MediaSource: Send + Sync + 'static {
    /// Size of the plaintext in bytes.
    fn size(&self) -> u64;

    /// Reads up to `len` bytes at `offset`. May return fewer only at the end of the source; an
    /// empty result before [`MediaSource::size`] is treated as an error.
    fn read_at(&self, offset: u64, len: usize) -> BoxFuture<'_, io::Result<Bytes>>;
}

/// One finished output file of a job.
#[derive(Clone, Debug)]
pub struct OutputFile {
    /// Path relative to the package root, `/`-separated, e.g. `720p/seg00003.ts`.
    pub name: String,
    /// Its media type, e.g. `video/mp2t`, `application/vnd.apple.mpegurl`.
    pub content_type: &'static str,
    /// The bytes (for HLS segments: already AES-128 encrypted).
    pub bytes: Bytes,
}

/// Receives a job's outputs, one file at a time, as they are finished: the caller encrypts and
/// stores each. The job waits for each `put` (backpressure), so memory stays bounded by one file.
/// If the job then fails, what was put is not a valid package and should be discarded.
pub trait MediaSink: Send {
    /// Stores one output file.
    fn put(&mut self, file: OutputFile) -> BoxFuture<'_, io::Result<()>>;
}

/// A source held in memory (small files, tests, benchmarks).
#[derive(Clone, Debug)]
pub struct MemorySource(Bytes);

impl MemorySource {
    /// Wraps these bytes.
    pub fn new(bytes: impl Into<Bytes>) -> MemorySource {
        MemorySource(bytes.into())
    }
}

impl MediaSource for MemorySource {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> BoxFuture<'_, io::Result<Bytes>> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let end = start.saturating_add(len).min(self.0.len());
        let chunk = self.0.slice(start..end);
        Box::pin(async move { Ok(chunk) })
    }
}

/// A sink that keeps every output in memory, in the order received (tests, benchmarks).
#[derive(Debug, Default)]
pub struct MemorySink {
    /// The outputs received so far.
    pub files: Vec<OutputFile>,
}

impl MemorySink {
    /// The last output received under `name`.
    pub fn get(&self, name: &str) -> Option<&OutputFile> {
        self.files.iter().rev().find(|f| f.name == name)
    }
}

impl MediaSink for MemorySink {
    fn put(&mut self, file: OutputFile) -> BoxFuture<'_, io::Result<()>> {
        self.files.push(file);
        Box::pin(async { Ok(()) })
    }
}
