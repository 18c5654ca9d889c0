//! `upload` and `download`: files streamed from and to disk (memory stays flat whatever their
//! size), a progress bar each on a terminal, the SHA-256 checked against the server's at the end.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use strongroom_crypto::digest::Sha256;
use tokio::io::AsyncReadExt as _;

use super::{
    Client, ClientError, Failure, Result, ServerArgs, id_segment, network, print_json, problem,
};

/// Bytes read from a file per chunk sent.
const CHUNK: usize = 256 * 1024;
/// How much of a download is gathered before each write to the file.
const WRITE_BUFFER: usize = 1 << 20;

fn bar(args: &ServerArgs, len: u64, msg: String) -> ProgressBar {
    if args.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg);
    bar
}

/// Every file the arguments name: files as given, folders walked (sorted, symlinks not
/// followed), so one call uploads a whole tree.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::symlink_metadata(p)
            .map_err(|e| ClientError::other(format!("cannot read {}: {e}", p.display())))?;
        if meta.is_dir() {
            let mut stack = vec![p.clone()];
            let mut found = Vec::new();
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| {
                    ClientError::other(format!("cannot read {}: {e}", dir.display()))
                })?;
                for entry in entries.flatten() {
                    let path = entry.path();
                    match entry.file_type() {
                        Ok(t) if t.is_dir() => stack.push(path),
                        Ok(t) if t.is_file() => found.push(path),
                        _ => {}
                    }
                }
            }
            found.sort();
            out.extend(found);
        } else if meta.is_file() {
            out.push(p.clone());
        } else {
            return Err(ClientError::other(format!(
                "{} is not a file or a folder",
                p.display()
            )));
        }
    }
    if out.is_empty() {
        return Err(ClientError::other("no file to upload in the folders given"));
    }
    Ok(out)
}

/// The content type an extension usually means; the server keeps what it is sent.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// `strongroom upload PATH... --space SPACE`.
pub(crate) async fn upload(args: &ServerArgs, space: &str, paths: &[PathBuf]) -> Result<()> {
    let space = id_segment("space", space)?;
    let files = expand(paths)?;
    let c = Client::new(args)?;
    let mut items = Vec::with_capacity(files.len());
    let (mut uploaded, mut bytes) = (0u64, 0u64);
    let mut last_failure = None;
    for path in &files {
        match upload_one(&c, args, &space, path).await {
            Ok(asset) => {
                uploaded += 1;
                bytes += asset["size"].as_u64().unwrap_or(0);
                if !args.json {
                    println!("{}  {}", asset["id"].as_str().unwrap_or(""), path.display());
                }
                items.push(
                    json!({"path": path, "id": asset["id"], "filename": asset["filename"],
                    "size": asset["size"], "sha256": asset["sha256"]}),
                );
            }
            Err(e) => {
                if !args.json && files.len() > 1 {
                    eprintln!("failed {}: {}", path.display(), e.sentence);
                }
                items.push(json!({"path": path, "error": e.sentence}));
                // A key that is refused, or a server out of reach, fails every other file too.
                let stop = matches!(e.kind, Failure::Auth | Failure::Network);
                last_failure = Some(e);
                if stop {
                    break;
                }
            }
        }
    }
    let failed = files.len() as u64 - uploaded;
    if args.json {
        print_json(
            &json!({"items": items, "uploaded": uploaded, "failed": failed, "bytes": bytes}),
        );
    } else if files.len() > 1 {
        eprintln!(
            "uploaded {uploaded} of {} files ({bytes} bytes){}",
            files.len(),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
    match last_failure {
        None => Ok(()),
        Some(e) if files.len() == 1 => Err(e),
        Some(e) if uploaded == 0 => Err(e),
        Some(_) => Err(ClientError::new(
            Failure::Partial,
            format!("{failed} of {} files were not uploaded", files.len()),
        )),
    }
}

async fn upload_one(c: &Client, args: &ServerArgs, space: &str, path: &Path) -> Result<Value> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ClientError::other(format!("{} has no usable file name", path.display())))?
        .to_owned();
    let file = std::fs::File::open(path)
        .map_err(|e| ClientError::other(format!("cannot open {}: {e}", path.display())))?;
    let len = file
        .metadata()
        .map_err(|e| ClientError::other(format!("cannot read {}: {e}", path.display())))?
        .len();
    let progress = bar(args, len, name.clone());
    let p = progress.clone();
    let (chunks, hashed) = read_chunks(file);
    let body = chunks.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            p.inc(bytes.len() as u64);
        }
        chunk
    });
    let req = c
        .req(Method::POST, &format!("/api/v1/spaces/{space}/assets"))
        .query(&[("filename", name.as_str())])
        .header("content-type", content_type(path))
        .header("content-length", len)
        .body(reqwest::Body::wrap_stream(body));
    let res = c.send(req).await;
    progress.finish_and_clear();
    let asset: Value = res?
        .json()
        .await
        .map_err(|e| ClientError::other(format!("the server's answer is not JSON: {e}")))?;
    let sent = tokio::task::spawn_blocking(move || hashed.join())
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|digest| hex(&digest))
        .ok_or_else(|| ClientError::other("the reading thread failed"))?;
    if Some(sent.as_str()) != asset["sha256"].as_str() {
        return Err(ClientError::new(
            Failure::Server,
            format!(
                "the server stored {} with another SHA-256 than was sent: delete asset {} and upload again",
                path.display(),
                asset["id"].as_str().unwrap_or("?")
            ),
        ));
    }
    Ok(asset)
}

/// The file's bytes in chunks of [`CHUNK`], read and hashed in order by a thread of its own (one
/// `read` per chunk straight into the buffer that is sent, at most eight chunks waiting, so
/// reading never runs ahead of the connection), and that thread's SHA-256 of what it read.
fn read_chunks(
    mut file: std::fs::File,
) -> (
    impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    std::thread::JoinHandle<[u8; 32]>,
) {
    use std::io::Read as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let hashed = std::thread::spawn(move || {
        let mut sha = Sha256::new();
        let mut buf = bytes::BytesMut::new();
        loop {
            if buf.capacity() < CHUNK {
                buf = bytes::BytesMut::with_capacity(4 * CHUNK);
            }
            buf.resize(CHUNK, 0);
            let item = match file.read(&mut buf) {
                Ok(0) => return sha.finish(),
                Ok(n) => {
                    buf.truncate(n);
                    sha.update(&buf);
                    Ok(buf.split().freeze())
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            // The receiver is gone when the upload stopped: nothing more to read.
            if tx.blocking_send(item).is_err() || failed {
                return sha.finish();
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (chunks, hashed)
}

/// A download's file, written on a thread of its own: each chunk is hashed and written there
/// (a mebibyte per write), and every [`FLUSH_EVERY`] bytes a second thread starts flushing what
/// was written to the disk, so the disk works while the network does and the final fsync waits
/// for the last few megabytes instead of the whole file.
struct FileSink {
    chunks: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    done: std::thread::JoinHandle<std::io::Result<[u8; 32]>>,
}

/// Bytes written between two background flushes of a download.
const FLUSH_EVERY: u64 = 32 << 20;

impl FileSink {
    fn start(file: std::fs::File, mut sha: Sha256) -> std::io::Result<FileSink> {
        use std::io::Write as _;
        let flusher_file = file.try_clone()?;
        // A few chunks only: each may hold on to a whole receive buffer of the connection
        // (up to about 400 KiB), so a longer queue is what would grow the memory.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let done = std::thread::spawn(move || {
            // Flushes run behind the writes; a failed one is reported by the final fsync too,
            // but is kept to be returned first.
            let (flush_tx, flush_rx) = std::sync::mpsc::channel::<()>();
            let flusher = std::thread::spawn(move || {
                let mut first_error = None;
                for () in flush_rx {
                    if let Err(e) = flusher_file.sync_data() {
                        first_error.get_or_insert(e);
                    }
                }
                first_error
            });
            let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
            let mut since_flush = 0u64;
            let mut written = Ok(());
            while let Some(chunk) = rx.blocking_recv() {
                sha.update(&chunk);
                if let Err(e) = out.write_all(&chunk) {
                    written = Err(e);
                    break;
                }
                since_flush += chunk.len() as u64;
                if since_flush >= FLUSH_EVERY {
                    since_flush = 0;
                    let _ = flush_tx.send(());
                }
            }
            drop(flush_tx);
            let flushed = flusher.join().ok().flatten();
            written?;
            if let Some(e) = flushed {
                return Err(e);
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(sha.finish())
        });
        Ok(FileSink {
            chunks: Some(tx),
            done,
        })
    }

    /// Hands a chunk to the writing thread; `Err` once that thread stopped on an error.
    async fn feed(&self, chunk: bytes::Bytes) -> std::result::Result<(), ()> {
        match &self.chunks {
            Some(tx) => tx.send(chunk).await.map_err(|_| ()),
            None => Err(()),
        }
    }

    /// Writes what is left, fsyncs the file, and returns the SHA-256 of everything it holds.
    async fn finish(mut self) -> std::io::Result<String> {
        self.chunks = None;
        let done = self.done;
        let digest = tokio::task::spawn_blocking(move || done.join())
            .await
            .map_err(std::io::Error::other)?
            .map_err(|_| std::io::Error::other("the writing thread failed"))??;
        Ok(hex(&digest))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a download goes: `-o`, else the asset's file name in the current folder (its last
/// component only, so a name can never point elsewhere).
fn output_path(output: Option<PathBuf>, filename: &str) -> Result<PathBuf> {
    if let Some(p) = output {
        return Ok(p);
    }
    let name = Path::new(filename)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
        .unwrap_or("download");
    Ok(PathBuf::from(name))
}

/// `strongroom download ASSET [-o FILE]`: into `FILE.part`, resumed from its length if one is
/// there, checked against the asset's SHA-256, then renamed to `FILE`.
pub(crate) async fn download(
    args: &ServerArgs,
    asset: &str,
    output: Option<PathBuf>,
) -> Result<()> {
    let asset = id_segment("asset", asset)?;
    let c = Client::new(args)?;
    let meta = c
        .json(c.req(Method::GET, &format!("/api/v1/assets/{asset}")))
        .await?;
    let size = meta["size"].as_u64().unwrap_or(0);
    let want = meta["sha256"].as_str().unwrap_or("").to_owned();
    let out = output_path(output, meta["filename"].as_str().unwrap_or(""))?;
    let mut part_name = out.clone().into_os_string();
    part_name.push(".part");
    let part = PathBuf::from(part_name);
    let local = |e: std::io::Error, p: &Path| {
        ClientError::other(format!("cannot write {}: {e}", p.display()))
    };

    let mut have = match tokio::fs::metadata(&part).await {
        Ok(m) if m.len() <= size => m.len(),
        _ => 0,
    };
    let mut req = c.req(Method::GET, &format!("/api/v1/assets/{asset}/content"));
    if have > 0 && have < size {
        req = req.header("range", format!("bytes={have}-"));
    }
    let res = if have == size && size > 0 {
        None
    } else {
        let res = req.send().await.map_err(network)?;
        if !res.status().is_success() {
            return Err(problem(res).await);
        }
        Some(res)
    };
    let resumed_from = match &res {
        Some(r) if r.status() == StatusCode::PARTIAL_CONTENT => have,
        Some(_) => 0,
        None => have,
    };
    have = resumed_from;
    // The bytes kept from an earlier attempt are hashed first; the rest as it arrives, so the
    // file is never read back whole.
    let mut kept = Sha256::new();
    if have > 0 {
        hash_prefix(&part, have, &mut kept).await?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(have == 0)
        .append(have > 0)
        .open(&part)
        .map_err(|e| local(e, &part))?;
    let sink = FileSink::start(file, kept).map_err(|e| local(e, &part))?;
    if let Some(res) = res {
        let progress = bar(
            args,
            size,
            meta["filename"].as_str().unwrap_or(&asset).to_owned(),
        );
        progress.set_position(have);
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    progress.finish_and_clear();
                    // What arrived is kept (and made durable) for the next attempt to resume.
                    sink.finish().await.map_err(|e| local(e, &part))?;
                    return Err(ClientError::new(
                        Failure::Network,
                        format!(
                            "the download was cut off at {have} of {size} bytes ({e}); run the same command again to resume"
                        ),
                    ));
                }
            };
            have += chunk.len() as u64;
            if sink.feed(chunk).await.is_err() {
                // The writing thread stopped on an error: `finish` says which.
                break;
            }
            progress.set_position(have);
        }
        progress.finish_and_clear();
    }
    let got = sink.finish().await.map_err(|e| local(e, &part))?;
    if got != want {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(ClientError::new(
            Failure::Server,
            format!(
                "the downloaded bytes do not match the asset's SHA-256 ({have} of {size} bytes): removed them; run the command again"
            ),
        ));
    }
    tokio::fs::rename(&part, &out)
        .await
        .map_err(|e| local(e, &out))?;
    if args.json {
        print_json(
            &json!({"id": asset, "path": out, "size": size, "sha256": got, "resumed_from": resumed_from}),
        );
    } else {
        eprintln!(
            "saved {} ({size} bytes{})",
            out.display(),
            if resumed_from > 0 {
                format!(", resumed at byte {resumed_from}")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Feeds the first `len` bytes of `path` to `sha` (what an interrupted download kept).
async fn hash_prefix(path: &Path, len: u64, sha: &mut Sha256) -> Result<()> {
    let read_err =
        |e: std::io::Error| ClientError::other(format!("cannot read {}: {e}", path.display()));
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(read_err)?
        .take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await.map_err(read_err)?;
        if n == 0 {
            return Ok(());
        }
        sha.update(&buf[..n]);
    }
}
