//! TLS: rustls server configuration (TLS 1.3 only unless TLS 1.2 is asked for) and a certificate
//! store that reloads its PEM files when they change, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_err = |path: &Path, reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e.to_string()))?;
    let signer =
        aws_lc_rs::sign::any_supported_type(&key_der).map_err(|e| file_err(key, e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Modification times of the certificate and key files.
type FileTimes = (SystemTime, SystemTime);

fn mtimes(cert: &Path, key: &Path) -> Option<FileTimes> {
    Some((
        std::fs::metadata(cert).ok()?.modified().ok()?,
        std::fs::metadata(key).ok()?.modified().ok()?,
    ))
}

/// The server's certificate, reloadable from its files.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<FileTimes>)>,
}

impl CertStore {
    /// Loads the certificate chain and private key (PEM).
    pub fn open(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        let ck = load(cert_path, key_path)?;
        Ok(Arc::new(CertStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new((ck, mtimes(cert_path, key_path))),
        }))
    }

    /// Reloads the files if they changed since the last load. A broken new pair is refused and
    /// the old certificate stays in service. Returns whether a new certificate is in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = mtimes(&self.cert_path, &self.key_path);
        let seen = self.current.read().map(|c| c.1).unwrap_or(None);
        if now.is_none() || now == seen {
            return Ok(false);
        }
        let ck = load(&self.cert_path, &self.key_path)?;
        if let Ok(mut cur) = self.current.write() {
            *cur = (ck, now);
        }
        Ok(true)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

/// The rustls server configuration: TLS 1.3 only by default; `allow_tls12` adds TLS 1.2 (rustls
/// offers only ECDHE with AEAD suites there). ALPN offers HTTP/2 and HTTP/1.1.
pub fn server_config(
    certs: Arc<CertStore>,
    allow_tls12: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> (PathBuf, PathBuf, String) {
        let (cert, key) = strongroom_crypto::tls::self_signed(&[]).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k, cert)
    }

    fn served(store: &CertStore) -> Vec<u8> {
        store.current.read().unwrap().0.cert[0].as_ref().to_vec()
    }

    #[test]
    fn reloads_changed_files_and_keeps_the_old_pair_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, _) = write_pair(dir.path());
        let store = CertStore::open(&c, &k).unwrap();
        let first = served(&store);
        assert!(
            !store.reload_if_changed().unwrap(),
            "unchanged files are not reloaded"
        );

        // Ensure a different mtime even on coarse-grained filesystems.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_pair(dir.path());
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&c)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(store.reload_if_changed().unwrap());
        let second = served(&store);
        assert_ne!(first, second, "the new certificate is served");

        std::fs::write(&c, "not a certificate").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(4);
        std::fs::File::options()
            .write(true)
            .open(&c)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(
            store.reload_if_changed().is_err(),
            "a broken file is refused"
        );
        assert_eq!(
            served(&store),
            second,
            "the previous certificate stays in use"
        );
    }

    #[test]
    fn missing_or_mismatched_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            CertStore::open(&dir.path().join("nope.pem"), &dir.path().join("k.pem")).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let (c, _, _) = write_pair(dir.path());
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        assert!(CertStore::open(&c, &dir.path().join("empty.pem")).is_err());
    }
}
