//! The command-line client: `upload`, `download`, `ls`, `share`, `spaces create`, `rm`, against a
//! server over the public API only, with an API key from `STRONGROOM_API_KEY`.
//!
//! Every failure ends in one sentence on stderr (the server's problem `detail` when it sent one)
//! and an exit status that says what kind of failure it was ([`Failure`]).

mod listing;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use zeroize::Zeroizing;

/// Where the server is and how to trust it; the key comes from the environment only.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// The server's base URL, e.g. https://127.0.0.1:8443.
    #[arg(long, env = "STRONGROOM_SERVER", value_name = "URL")]
    pub server: String,
    /// A PEM file of the certificate (or CA) to trust for the server, besides the system's.
    #[arg(long, env = "STRONGROOM_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Print JSON on stdout (for scripts); no progress bars.
    #[arg(long)]
    pub json: bool,
}

/// The client's commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Upload files, or whole folders (every file under them), into a space.
    Upload {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The space's id.
        #[arg(long)]
        space: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Download an asset; an interrupted download resumes where it stopped (HTTP Range).
    Download {
        /// The asset's id.
        asset: String,
        /// Where to write it [default: its filename, in this folder].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the spaces of the key's organization, or a space's assets (or its trash).
    Ls {
        /// A space's id: list its assets.
        space: Option<String>,
        /// List the space's trash instead: deleted assets, with when.
        #[arg(long, requires = "space")]
        trash: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make a download link for an asset and print its URL.
    Share {
        /// The asset's id.
        asset: String,
        /// How long the link works: seconds, or with a unit (30m, 1h, 7d) [default: 1h].
        #[arg(long, default_value = "1h")]
        expires: String,
        /// The link works for one download only.
        #[arg(long)]
        single_use: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete an asset to its space's trash (restorable until the grace period ends).
    Rm {
        /// The asset's id.
        asset: String,
        /// Crypto-shred it now instead, from the space or the trash (needs asset:purge): it
        /// cannot be restored, from the trash or from any backup.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Bring an asset back from its space's trash.
    Restore {
        /// The asset's id.
        asset: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `strongroom spaces ...`.
#[derive(Debug, Subcommand)]
pub enum SpacesCommand {
    /// Create a space in an organization.
    Create {
        /// Its name.
        name: String,
        /// The organization's id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// What kind of failure ended a command: its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 1: anything else (a local file, a bad argument, an unexpected answer).
    Other = 1,
    /// 3: no key, a wrong or revoked key, or the key may not do this (401, 403).
    Auth = 3,
    /// 4: the space or asset does not exist (or is another organization's) (404).
    NotFound = 4,
    /// 5: the server refused the request as it was (400, 409, 413, 415, 416, 422, 428, 429).
    Refused = 5,
    /// 6: the server failed or is unavailable (5xx).
    Server = 6,
    /// 7: the server could not be reached (connection, TLS).
    Network = 7,
    /// 8: some of several uploads failed (the summary says which).
    Partial = 8,
}

/// A failure: one sentence and its kind.
#[derive(Debug)]
pub struct ClientError {
    kind: Failure,
    sentence: String,
}

impl ClientError {
    fn new(kind: Failure, sentence: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            sentence: sentence.into(),
        }
    }

    fn other(sentence: impl Into<String>) -> ClientError {
        ClientError::new(Failure::Other, sentence)
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// Runs a client command; prints its one-sentence error and returns the exit status.
pub async fn run(cmd: ClientCommand) -> ExitCode {
    finish(match cmd {
        ClientCommand::Upload {
            paths,
            space,
            server,
        } => transfer::upload(&server, &space, &paths).await,
        ClientCommand::Download {
            asset,
            output,
            server,
        } => transfer::download(&server, &asset, output).await,
        ClientCommand::Ls {
            space,
            trash,
            server,
        } => listing::ls(&server, space.as_deref(), trash).await,
        ClientCommand::Share {
            asset,
            expires,
            single_use,
            server,
        } => listing::share(&server, &asset, &expires, single_use).await,
        ClientCommand::Rm {
            asset,
            purge,
            server,
        } => listing::rm(&server, &asset, purge).await,
        ClientCommand::Restore { asset, server } => listing::restore(&server, &asset).await,
    })
}

/// Runs `strongroom spaces ...`.
pub async fn spaces(cmd: SpacesCommand) -> ExitCode {
    finish(match cmd {
        SpacesCommand::Create { name, org, server } => {
            listing::create_space(&server, &org, &name).await
        }
    })
}

fn finish(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.sentence);
            ExitCode::from(e.kind as u8)
        }
    }
}

/// A connection to one server with one key.
pub(crate) struct Client {
    base: String,
    key: Zeroizing<String>,
    http: reqwest::Client,
}

impl Client {
    /// The server from `args`, the key from `STRONGROOM_API_KEY`.
    pub(crate) fn new(args: &ServerArgs) -> Result<Client> {
        let key = std::env::var("STRONGROOM_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                ClientError::new(
                    Failure::Auth,
                    "set STRONGROOM_API_KEY to an API key (it is never taken as a flag, so it stays out of shell history and process lists)",
                )
            })?;
        let base = args.server.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(ClientError::other(
                "the server URL must start with https:// (Strongroom serves HTTPS only)",
            ));
        }
        let mut builder = reqwest::Client::builder()
            // HTTP/1.1: one large transfer at a time gains nothing from HTTP/2's streams, and
            // its framing and flow control cost a fifth to a third of the throughput here
            // (bench/RESULTS.md, client_transfer).
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(300))
            .user_agent(concat!("strongroom-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &args.cacert {
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::other(format!(
                    "cannot read the CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::other(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::other(format!("cannot set up the HTTPS client: {e}")))?;
        Ok(Client {
            base,
            key: Zeroizing::new(key.trim().to_owned()),
            http,
        })
    }

    /// A request to `path` (under the base URL) with the key.
    pub(crate) fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.key.as_str())
    }

    /// Sends a request; a non-success answer becomes its problem's sentence.
    pub(crate) async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let res = req.send().await.map_err(network)?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(problem(res).await)
    }

    /// Sends a request and parses its JSON answer.
    pub(crate) async fn json(&self, req: RequestBuilder) -> Result<Value> {
        let res = self.send(req).await?;
        res.json()
            .await
            .map_err(|e| ClientError::other(format!("the server's answer is not JSON: {e}")))
    }

    /// Every item of a paged list, following `next_cursor`.
    pub(crate) async fn all_pages(&self, path: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = self.req(Method::GET, path).query(&[("limit", "100")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let page = self.json(req).await?;
            if let Some(list) = page["items"].as_array() {
                items.extend(list.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// A transport failure as one sentence.
pub(crate) fn network(e: reqwest::Error) -> ClientError {
    // reqwest's chain says what failed (DNS, refused, certificate); its top line is generic.
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        why = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        return ClientError::new(
            Failure::Network,
            format!("the server did not answer in time: {why}"),
        );
    }
    ClientError::new(Failure::Network, format!("cannot reach the server: {why}"))
}

/// The sentence and kind of a failed answer: its problem's `detail`, else its status.
pub(crate) async fn problem(res: Response) -> ClientError {
    let status = res.status();
    let detail = res
        .json::<Value>()
        .await
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            format!(
                "the server answered {status}{}",
                status
                    .canonical_reason()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        });
    ClientError::new(kind_of(status), detail)
}

fn kind_of(status: StatusCode) -> Failure {
    match status.as_u16() {
        401 | 403 => Failure::Auth,
        404 => Failure::NotFound,
        500..=599 => Failure::Server,
        400..=499 => Failure::Refused,
        _ => Failure::Other,
    }
}

/// Prints `v` as one line of JSON.
pub(crate) fn print_json(v: &Value) {
    println!("{v}");
}

/// A path segment from an id the user typed: ids are `[A-Za-z0-9_-]`; anything else is refused
/// here rather than sent (it could change the path).
pub(crate) fn id_segment(what: &str, raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 100
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ClientError::new(
            Failure::NotFound,
            format!(
                "'{raw}' is not {} {what} id",
                if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                }
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        for (s, f) in [
            (401, Failure::Auth),
            (403, Failure::Auth),
            (404, Failure::NotFound),
            (413, Failure::Refused),
            (429, Failure::Refused),
            (503, Failure::Server),
        ] {
            assert_eq!(kind_of(StatusCode::from_u16(s).unwrap()), f, "{s}");
        }
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert_eq!(id_segment("asset", "ast_01J-x").unwrap(), "ast_01J-x");
        for bad in ["", "../me", "a/b", "a?b", "a b"] {
            assert!(id_segment("asset", bad).is_err(), "{bad:?}");
        }
    }
}
