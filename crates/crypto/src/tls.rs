//! The self-signed certificate a fresh server uses until an operator installs a real one.

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_ECDSA_P256_SHA256,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::CryptoError;

/// Names every first-start certificate covers, so local access works out of the box.
const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Self-signed certificate for first start: SANs `localhost`, `127.0.0.1`, `::1` plus
/// `extra_names` (DNS names or IP literals); ECDSA P-256; valid for one year (from one hour ago,
/// to tolerate clock skew). Returns `(cert_pem, key_pem)`; the key PEM is a secret the caller
/// must store with mode 0600.
pub fn self_signed(extra_names: &[String]) -> Result<(String, String), CryptoError> {
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|s| (*s).to_owned()).collect();
    for n in extra_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let cert_err = |e: rcgen::Error| CryptoError::Cert(e.to_string());
    let mut params = CertificateParams::new(names).map_err(cert_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Strongroom self-signed");
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    // A random serial: browsers reject two certificates with the same issuer and serial, which a
    // regenerated certificate would otherwise produce.
    let mut serial = crate::token::random_bytes::<16>();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_pair_with_extra_names() {
        let (cert, key) = self_signed(&["media.example.org".into(), "10.0.0.5".into()]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let (cert2, _) = self_signed(&["localhost".into()]).unwrap();
        assert_ne!(cert, cert2);
    }

    #[test]
    fn rejects_invalid_names() {
        assert!(matches!(
            self_signed(&["b\u{fc}cher.example".into()]),
            Err(CryptoError::Cert(_))
        ));
    }
}
