//! Naming and opening a storage backend: `fs:///absolute/path` or
//! `s3://bucket[/prefix]?endpoint=URL&region=NAME`, with the credentials an S3 backend needs.
//!
//! URLs are parsed here, once, into [`Location`]; nothing else in the crate looks at a URL
//! string. Errors never repeat the URL or a credential: a URL someone wrote by mistake as
//! `s3://KEY:SECRET@bucket` must not end up in a log.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::s3::{S3BlobStore, S3Options};
use crate::{BlobError, BlobStore, FsBlobStore};

/// One configured backend, as `[[storage.backends]]` gives it.
#[derive(Clone)]
pub struct BackendSpec {
    /// The name used in logs and errors (`disk`, `s3-eu`).
    pub name: String,
    /// `fs:///absolute/path` or `s3://bucket[/prefix]?endpoint=URL&region=NAME`.
    pub url: String,
    /// S3 only: the access key id; with [`BackendSpec::secret_access_key_file`], instead of
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the environment.
    pub access_key_id: Option<String>,
    /// S3 only: a file holding the secret access key (mode 0600 or stricter).
    pub secret_access_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The access key id is half of a credential: never printed.
        f.debug_struct("BackendSpec")
            .field("name", &self.name)
            .field("url", &self.url)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<redacted>"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .finish()
    }
}

impl BackendSpec {
    /// Checks the URL (and that credentials are given in a usable combination) without opening
    /// anything, so a configuration mistake is reported before any I/O.
    pub fn validate(&self) -> Result<(), BlobError> {
        let location = self.location()?;
        if let (Location::Fs(_), true) = (
            &location,
            self.access_key_id.is_some() || self.secret_access_key_file.is_some(),
        ) {
            return Err(
                self.config("access_key_id and secret_access_key_file are for s3:// backends")
            );
        }
        if self.access_key_id.is_some() != self.secret_access_key_file.is_some() {
            return Err(self.config(
                "set both access_key_id and secret_access_key_file, or neither (then AWS_ACCESS_KEY_ID \
                 and AWS_SECRET_ACCESS_KEY are read from the environment)",
            ));
        }
        Ok(())
    }

    pub(crate) fn location(&self) -> Result<Location, BlobError> {
        Location::parse(&self.url).map_err(|reason| self.config(&reason))
    }

    pub(crate) fn config(&self, reason: &str) -> BlobError {
        BlobError::Config {
            backend: self.name.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// Opens the backend `spec` names: creates an fs backend's folders, or builds an S3 client
/// (no request is made; [`BlobStore::check`] tells whether the bucket is reachable). S3
/// credentials come from the spec, or else from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
/// (and `AWS_SESSION_TOKEN` if set).
pub fn open_backend(spec: &BackendSpec) -> Result<Arc<dyn BlobStore>, BlobError> {
    open_with(spec, &|name| std::env::var(name).ok(), S3Options::default())
}

/// [`open_backend`] with the environment and the S3 tuning passed in (tests).
pub(crate) fn open_with(
    spec: &BackendSpec,
    env: &dyn Fn(&str) -> Option<String>,
    options: S3Options,
) -> Result<Arc<dyn BlobStore>, BlobError> {
    spec.validate()?;
    match spec.location()? {
        Location::Fs(root) => Ok(Arc::new(FsBlobStore::open(root)?)),
        Location::S3(location) => {
            let credentials = Credentials::resolve(spec, env)?;
            Ok(Arc::new(S3BlobStore::open(
                &spec.name,
                location,
                credentials,
                options,
            )?))
        }
    }
}

/// Where a backend keeps its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A local folder (absolute).
    Fs(PathBuf),
    /// A bucket (and key prefix) on an S3-compatible service.
    S3(S3Location),
}

/// The parts of an `s3://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Location {
    pub bucket: String,
    /// Key prefix without leading or trailing slash; empty for the bucket's root.
    pub prefix: String,
    /// `http(s)://host[:port]`; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The signing region (SigV4), `us-east-1` unless given.
    pub region: String,
    /// Plain HTTP, allowed only to a loopback endpoint.
    pub allow_http: bool,
}

const URL_FORMS: &str =
    "use fs:///absolute/path or s3://bucket[/prefix]?endpoint=https://host:port&region=NAME";

impl Location {
    /// Parses a backend URL; the error says what is wrong without repeating the URL.
    pub(crate) fn parse(url: &str) -> Result<Location, String> {
        if let Some(path) = url.strip_prefix("fs://") {
            return parse_fs(path).map(Location::Fs);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return parse_s3(rest).map(Location::S3);
        }
        let scheme = url.split_once("://").map(|(s, _)| s).filter(|s| {
            !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        Err(match scheme {
            Some(s) => format!("unsupported storage URL scheme '{s}': {URL_FORMS}"),
            None => format!("the storage URL is not valid: {URL_FORMS}"),
        })
    }
}

fn parse_fs(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!(
            "an fs:// URL needs an absolute path (three slashes): {URL_FORMS}"
        ));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err("an fs:// path must not contain '.' or '..'".into());
    }
    if p.parent().is_none() {
        return Err("an fs:// backend cannot be the root folder".into());
    }
    Ok(p.to_path_buf())
}

fn parse_s3(rest: &str) -> Result<S3Location, String> {
    let (place, query) = rest.split_once('?').unwrap_or((rest, ""));
    if place.contains('@') {
        return Err(
            "credentials do not belong in the storage URL: use access_key_id and \
             secret_access_key_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                .into(),
        );
    }
    if rest.contains('#') {
        return Err("an s3:// URL takes no fragment".into());
    }
    let (bucket, prefix) = place.split_once('/').unwrap_or((place, ""));
    validate_bucket(bucket)?;
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() {
        for segment in prefix.split('/') {
            let ok = !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.len() <= 255
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(
                    "the key prefix of an s3:// URL must be segments of letters, digits, '.', '_' \
                     and '-' separated by '/'"
                        .into(),
                );
            }
        }
    }
    let mut endpoint = None;
    let mut region = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        let slot = match key {
            "endpoint" => &mut endpoint,
            "region" => &mut region,
            _ => {
                return Err(format!(
                    "unknown parameter '{}' in an s3:// URL: only endpoint and region are accepted",
                    key.chars().take(32).collect::<String>()
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!(
                "the parameter '{key}' appears twice in the s3:// URL"
            ));
        }
    }
    let region = region.unwrap_or_else(|| "us-east-1".to_owned());
    let region_ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err("the region of an s3:// URL must be lowercase letters, digits and '-'".into());
    }
    let (endpoint, allow_http) = match endpoint {
        None => (None, false),
        Some(e) => {
            let (e, http) = parse_endpoint(&e)?;
            (Some(e), http)
        }
    };
    Ok(S3Location {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        endpoint,
        region,
        allow_http,
    })
}

/// S3 bucket naming rules (3 to 63 lowercase letters, digits, '.' and '-', starting and
/// ending with a letter or digit).
fn validate_bucket(bucket: &str) -> Result<(), String> {
    let b = bucket.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else {
        Err(
            "the bucket of an s3:// URL must be 3 to 63 lowercase letters, digits, '.' and '-', \
             starting and ending with a letter or digit"
                .into(),
        )
    }
}

/// `http(s)://host[:port][/]` -> (the endpoint without a trailing slash, plain HTTP?).
///
/// Plain HTTP is accepted only to a loopback address: SigV4 signs requests but protects
/// neither their bodies' confidentiality nor the responses, so across a network anyone on the
/// path could read object names and sizes, or answer in the server's place (the blobs are
/// ciphertext and authenticated, but a forged listing or a dropped write would go unnoticed).
fn parse_endpoint(endpoint: &str) -> Result<(String, bool), String> {
    let (http, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
        (false, r)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (true, r)
    } else {
        return Err("the endpoint of an s3:// URL must start with https:// (or http:// to a loopback address)".into());
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err("the endpoint of an s3:// URL must be scheme://host[:port], with no path or credentials".into());
    }
    let host =
        host_of(authority).ok_or("the endpoint of an s3:// URL has an invalid host or port")?;
    if http && !is_loopback(host) {
        return Err(
            "plain http:// endpoints are accepted only on loopback (127.0.0.1, ::1, localhost): \
             across a network use https://, since request signing does not hide or protect what \
             the server answers"
                .into(),
        );
    }
    let scheme = if http { "http" } else { "https" };
    Ok((format!("{scheme}://{authority}"), http))
}

/// The host part of `host[:port]` or `[v6][:port]`, if the port (when present) is a number.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        h.parse::<Ipv6Addr>().ok()?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return None;
    }
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
    ok.then_some(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback())
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("an s3:// URL has an invalid percent-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "an s3:// URL parameter is not UTF-8".to_owned())
}

/// S3 credentials. No `Debug`: the secret must not be printable by accident.
pub(crate) struct Credentials {
    pub access_key_id: Zeroizing<String>,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
}

impl Credentials {
    /// From the spec (`access_key_id` + `secret_access_key_file`), else from the environment.
    pub(crate) fn resolve(
        spec: &BackendSpec,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credentials, BlobError> {
        match (&spec.access_key_id, &spec.secret_access_key_file) {
            (Some(id), Some(file)) => Ok(Credentials {
                access_key_id: Zeroizing::new(id.clone()),
                secret_access_key: read_secret_file(spec, file)?,
                session_token: None,
            }),
            (None, None) => {
                let id = env("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty());
                let secret = env("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty());
                match (id, secret) {
                    (Some(id), Some(secret)) => Ok(Credentials {
                        access_key_id: Zeroizing::new(id),
                        secret_access_key: Zeroizing::new(secret),
                        session_token: env("AWS_SESSION_TOKEN")
                            .filter(|v| !v.is_empty())
                            .map(Zeroizing::new),
                    }),
                    _ => Err(spec.config(
                        "no S3 credentials: set access_key_id and secret_access_key_file in its \
                         [[storage.backends]] entry, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    )),
                }
            }
            _ => Err(spec.config("set both access_key_id and secret_access_key_file, or neither")),
        }
    }
}

/// Reads a secret key file, refusing one that group or others may read (like the root key).
fn read_secret_file(spec: &BackendSpec, path: &Path) -> Result<Zeroizing<String>, BlobError> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| spec.config(&format!("cannot read secret_access_key_file {shown}: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(spec.config(&format!(
            "secret_access_key_file {shown} is readable by group or others: chmod 600 it"
        )));
    }
    let raw =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            spec.config(&format!("cannot read secret_access_key_file {shown}: {e}"))
        })?);
    let secret = raw.trim();
    if secret.is_empty() || secret.contains(char::is_whitespace) {
        return Err(spec.config(&format!(
            "secret_access_key_file {shown} must hold the secret access key alone, on one line"
        )));
    }
    Ok(Zeroizing::new(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(url: &str) -> S3Location {
        match Location::parse(url) {
            Ok(Location::S3(l)) => l,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn s3_urls() {
        let l = s3("s3://strongroom-test/a/b-1/?endpoint=http://127.0.0.1:54330&region=garage");
        assert_eq!(l.bucket, "strongroom-test");
        assert_eq!(l.prefix, "a/b-1");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:54330"));
        assert_eq!(l.region, "garage");
        assert!(l.allow_http);
        // Percent-encoded endpoints, IPv6 loopback, localhost, https anywhere.
        let l = s3("s3://bkt?endpoint=http%3A%2F%2F%5B%3A%3A1%5D%3A9000%2F");
        assert_eq!(l.endpoint.as_deref(), Some("http://[::1]:9000"));
        assert_eq!((l.prefix.as_str(), l.region.as_str()), ("", "us-east-1"));
        assert!(s3("s3://bkt?endpoint=http://localhost:1").allow_http);
        let l = s3("s3://my.bucket/p?endpoint=https://s3.example.com&region=eu-west-3");
        assert!(!l.allow_http);
        assert_eq!(l.endpoint.as_deref(), Some("https://s3.example.com"));
        assert_eq!(s3("s3://bkt").endpoint, None);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for (url, says) in [
            (
                "s3://AKIDEXAMPLE:wJalrXUtnFEMI@bkt/x",
                "credentials do not belong",
            ),
            ("s3://ab", "bucket"),
            ("s3://Upper", "bucket"),
            ("s3://-bkt", "bucket"),
            ("s3://bkt/../x", "prefix"),
            ("s3://bkt/a//b", "prefix"),
            ("s3://bkt/a b", "prefix"),
            ("s3://bkt?endpoint=http://10.0.0.5:9000", "loopback"),
            ("s3://bkt?endpoint=http://s3.example.com", "loopback"),
            (
                "s3://bkt?endpoint=ftp://127.0.0.1",
                "must start with https://",
            ),
            ("s3://bkt?endpoint=https://h/path", "no path"),
            ("s3://bkt?endpoint=https://u:p@h", "no path or credentials"),
            ("s3://bkt?endpoint=https://h:99999", "port"),
            ("s3://bkt?region=EU", "region"),
            (
                "s3://bkt?secret=wJalrXUtnFEMI",
                "unknown parameter 'secret'",
            ),
            ("s3://bkt?region=a&region=b", "twice"),
            ("s3://bkt?endpoint=%zz", "percent"),
            ("fs://relative/path", "absolute path"),
            ("fs:///", "root folder"),
            ("fs:///srv/../etc", "'..'"),
            ("gs://bucket", "unsupported storage URL scheme 'gs'"),
            ("/srv/blobs", "not valid"),
            ("", "not valid"),
        ] {
            let err = Location::parse(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
            assert!(
                !err.contains("wJalrXUtnFEMI") && !err.contains("AKIDEXAMPLE"),
                "{err}"
            );
        }
        assert_eq!(
            Location::parse("fs:///var/lib/strongroom/blobs").unwrap(),
            Location::Fs("/var/lib/strongroom/blobs".into())
        );
    }

    fn spec(url: &str) -> BackendSpec {
        BackendSpec {
            name: "s3-eu".into(),
            url: url.into(),
            access_key_id: None,
            secret_access_key_file: None,
        }
    }

    #[test]
    fn credentials_from_a_private_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cr3t-value\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut s = spec("s3://bkt");
        s.access_key_id = Some("AKID1".into());
        s.secret_access_key_file = Some(file.clone());
        let no_env = |_: &str| None;
        let c = Credentials::resolve(&s, &no_env).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AKID1", "s3cr3t-value")
        );

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Credentials::resolve(&s, &no_env).err().unwrap().to_string();
        assert!(
            err.contains("readable by group or others") && err.contains("'s3-eu'"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");

        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKID2".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("from-env".to_owned()),
            _ => None,
        };
        let c = Credentials::resolve(&spec("s3://bkt"), &env).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("AKID2", "from-env")
        );
        assert!(c.session_token.is_none());
        let err = Credentials::resolve(&spec("s3://bkt"), &no_env)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no S3 credentials"), "{err}");

        let mut half = spec("s3://bkt");
        half.access_key_id = Some("AKID".into());
        assert!(
            half.validate()
                .unwrap_err()
                .to_string()
                .contains("set both")
        );
        let mut fs = spec("fs:///srv/blobs");
        fs.access_key_id = Some("AKID".into());
        fs.secret_access_key_file = Some(file);
        assert!(fs.validate().unwrap_err().to_string().contains("for s3://"));
        // Debug never shows the key id.
        assert!(!format!("{s:?}").contains("AKID1"));
    }

    #[test]
    fn open_backend_refuses_other_schemes_and_opens_fs() {
        let err = open_backend(&spec("gs://bucket/x"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            format!(
                "storage backend 's3-eu' is misconfigured: unsupported storage URL scheme 'gs': {URL_FORMS}"
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = open_backend(&spec(&format!("fs://{}", root.display()))).unwrap();
        drop(store);
        assert!(root.join("objects").is_dir());
    }
}
