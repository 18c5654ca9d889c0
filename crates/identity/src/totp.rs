//! Time-based one-time passwords (RFC 6238) as a second factor: enrolment and code checks.
//!
//! The flow this module supports, with the caller doing all storage:
//! 1. [`TotpSecret::generate`] and [`enrolment`]: show the user the QR code (or the base32 secret
//!    for typing in) and keep the secret, encrypted, as *pending*.
//! 2. The user types the code their app shows; [`verify`] with `last_used_step = None`. Only on
//!    `Ok(step)` does the caller mark the factor active, storing `step` as the last used step. A
//!    secret that never produced a valid code is never trusted: the user may have scanned nothing.
//! 3. At each sign-in, [`verify`] with the stored last used step, and store the returned step.
//!
//! Replay (RFC 6238 §5.2): a code is accepted at most once. [`verify`] returns the time step the
//! code belongs to and refuses any code whose step is not newer than the last one used, so a code
//! seen over a shoulder or phished cannot be used again, not even within its own 30 seconds.
//!
//! The parameters are frozen ([`DIGITS`], [`STEP_SECONDS`], SHA-1, [`SECRET_BYTES`]): they are the
//! only ones every authenticator app honours (several silently ignore `algorithm=SHA256`), and a
//! stored secret means nothing without them. Changing one makes every enrolled authenticator
//! produce codes we refuse. The RFC 6238 test vectors below pin them.
//!
//! No I/O and no clock: the caller passes the time in as Unix seconds. Secret-bearing values
//! (the secret, the URI and the QR code, which both contain it) are zeroized on drop and have no
//! `Debug`.

use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq as _};
use zeroize::Zeroizing;

/// Digits in a code. Frozen: see the module docs.
pub const DIGITS: usize = 6;

/// Seconds in one time step. Frozen: see the module docs.
pub const STEP_SECONDS: u64 = 30;

/// Steps either side of the current one that are still accepted, for clock drift and typing time
/// (RFC 6238 §5.2 recommends at most one).
pub const SKEW_STEPS: u64 = 1;

/// Secret length: 160 bits, RFC 4226 §4's recommendation (and the HMAC-SHA-1 block's worth).
pub const SECRET_BYTES: usize = 20;

/// Length of [`TotpSecret::to_base32`]: 160 bits in base32 is exactly 32 characters, no padding.
pub const SECRET_BASE32_CHARS: usize = 32;

/// Input longer than this is refused before looking at it: a code is 6 digits and a few spaces.
const MAX_CODE_INPUT_BYTES: usize = 32;

/// Everything but RFC 3986 unreserved characters is percent-encoded in the label and the issuer
/// parameter (so a space becomes `%20`, never `+`, which some apps would show literally).
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why enrolment or a code check failed. Display is a sentence safe to show the user; none
/// carries a secret or the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// A stored secret is not 32 characters of upper-case RFC 4648 base32 (160 bits). The store
    /// is corrupt or the value is not one of ours: treat it as an internal error, not as the
    /// user's.
    #[error("the stored authenticator secret is malformed")]
    InvalidSecret,
    /// The issuer or account name is empty, or contains a colon (which separates the two in the
    /// otpauth label) or a control character. A caller bug, not the user's.
    #[error("the issuer and account name must be non-empty and contain no colon")]
    InvalidLabel,
    /// The code is malformed, or matches none of the accepted time steps. Count it as a failed
    /// attempt for rate limiting.
    #[error("the code is not valid")]
    Invalid,
    /// The code is valid but belongs to a time step already used: a replay, or the user typed the
    /// same code twice. Refuse it; callers may show it like [`TotpError::Invalid`] so as not to
    /// tell an attacker the code was right.
    #[error("this code has already been used; wait for the next one")]
    Replayed,
    /// The otpauth URI does not fit in a QR code (an issuer or account name far too long).
    #[error("could not draw the QR code: {0}")]
    Qr(String),
}

/// A TOTP shared secret (160 random bits). Zeroized on drop; no `Debug`, no `Clone`.
pub struct TotpSecret {
    /// Holds the secret; with totp-rs's `zeroize` feature it wipes it on drop.
    totp: totp_rs::Totp,
}

impl TotpSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        crate::random::fill(bytes.as_mut_slice());
        TotpSecret::from_secret(totp_rs::Secret::new_stack(*bytes))
    }

    /// Loads a secret stored with [`TotpSecret::to_base32`]: exactly 32 characters of upper-case
    /// RFC 4648 base32 without padding. Nothing else is accepted (not lower case, not padding,
    /// not other lengths), so a corrupt store value is refused rather than silently reinterpreted.
    ///
    /// # Errors
    ///
    /// [`TotpError::InvalidSecret`] for anything else.
    pub fn from_base32(s: &str) -> Result<TotpSecret, TotpError> {
        let is_base32 = |b: u8| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b);
        if s.len() != SECRET_BASE32_CHARS || !s.bytes().all(is_base32) {
            return Err(TotpError::InvalidSecret);
        }
        let secret =
            totp_rs::Secret::try_from_base32(s).map_err(|_parse| TotpError::InvalidSecret)?;
        if secret.as_bytes().len() != SECRET_BYTES {
            return Err(TotpError::InvalidSecret);
        }
        Ok(TotpSecret::from_secret(secret))
    }

    /// The secret as 32 characters of RFC 4648 base32 without padding: the form to store
    /// (encrypted) and to show for typing into an app. Exposing the secret is the point of this
    /// call; the result wipes itself on drop.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(self.totp.secret().to_base32())
    }

    fn from_secret(secret: totp_rs::Secret) -> TotpSecret {
        // SHA-1, 6 digits, 30 s: the frozen parameters, which `Builder::build` accepts (a test
        // checks it); the unchecked build avoids an error path that cannot be taken. totp-rs's
        // own skew is unused: `verify` walks the window itself to learn the matched step.
        let totp = totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_step_duration(STEP_SECONDS)
            .with_skew(0)
            .with_secret(secret)
            .build_noncompliant();
        TotpSecret { totp }
    }

    /// The code for time step `step`, or `None` if the step's start time overflows a `u64`.
    fn code_at_step(&self, step: u64) -> Option<Zeroizing<String>> {
        let start = step.checked_mul(STEP_SECONDS)?;
        let mut code = Zeroizing::new(String::with_capacity(DIGITS));
        write!(code, "{}", self.totp.generate(start)).ok()?;
        Some(code)
    }
}

/// What the user needs to add the secret to an authenticator app. Every field contains the
/// secret, so each wipes itself on drop; there is no `Debug`.
pub struct Enrolment {
    /// The secret in base32 (32 characters), for typing in by hand.
    pub secret_base32: Zeroizing<String>,
    /// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.
    pub otpauth_uri: Zeroizing<String>,
    /// The URI as a QR code: a standalone SVG document (`<?xml ...?><svg ...>`), black on white,
    /// with the quiet zone, at least 256 px square.
    pub qr_svg: Zeroizing<String>,
}

/// Builds what the user scans or types to enrol `secret`: the base32 secret, the otpauth URI
/// (Google Authenticator's Key URI format, every parameter explicit) and its QR code.
///
/// `issuer` names the service (shown as the entry's title in most apps) and `account` the user
/// (for example their email address); both are percent-encoded.
///
/// # Errors
///
/// [`TotpError::InvalidLabel`] if `issuer` or `account` is empty or contains a colon or a control
/// character; [`TotpError::Qr`] if the URI is too long for a QR code.
pub fn enrolment(secret: &TotpSecret, issuer: &str, account: &str) -> Result<Enrolment, TotpError> {
    let label_ok =
        |part: &str| !part.is_empty() && !part.chars().any(|c| c == ':' || c.is_control());
    if !label_ok(issuer) || !label_ok(account) {
        return Err(TotpError::InvalidLabel);
    }
    let secret_base32 = secret.to_base32();
    let issuer = utf8_percent_encode(issuer, URI_COMPONENT);
    let account = utf8_percent_encode(account, URI_COMPONENT);

    // Sized up front so the string holding the secret is not reallocated (leaving copies behind).
    let mut otpauth_uri = Zeroizing::new(String::with_capacity(512));
    write!(
        otpauth_uri,
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        secret = secret_base32.as_str(),
    )
    .map_err(|_fmt| TotpError::Qr("could not format the URI".to_owned()))?;

    // Level M (15% of the code may be damaged) is the usual choice for a code shown on a screen.
    let qr = QrCode::with_error_correction_level(otpauth_uri.as_bytes(), EcLevel::M)
        .map_err(|err| TotpError::Qr(err.to_string()))?;
    let qr_svg = Zeroizing::new(
        qr.render::<svg::Color<'_>>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build(),
    );
    Ok(Enrolment {
        secret_base32,
        otpauth_uri,
        qr_svg,
    })
}

/// Checks `code` at `now_unix` (seconds since 1970) against the steps now-1, now and now+1
/// (RFC 6238 with SHA-1, 30-second steps, 6 digits) and returns the step (counter) it matched.
///
/// The caller stores the returned step as the last used one and passes it back next time as
/// `last_used_step`; a code for that step or an earlier one is then refused as a replay. Pass
/// `None` only for the first code after enrolment.
///
/// The code must be exactly 6 ASCII digits; surrounding whitespace and spaces between the digits
/// ("123 456", as apps display it) are ignored. The comparison is constant-time and all three
/// steps are always computed, so timing tells neither which digits nor which step matched. If a
/// code happens to match two steps, the later one is returned, so the code cannot be accepted a
/// second time through the other.
///
/// # Errors
///
/// [`TotpError::Invalid`] for a malformed code or one that matches no step in the window;
/// [`TotpError::Replayed`] for a valid code whose step is not after `last_used_step`.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now_unix: u64,
    last_used_step: Option<u64>,
) -> Result<u64, TotpError> {
    let given = parse_code(code).ok_or(TotpError::Invalid)?;
    let now_step = now_unix / STEP_SECONDS;

    let mut matched = Choice::from(0);
    let mut matched_step = 0u64;
    // Ascending, so a later matching step overrides an earlier one.
    for step in now_step.saturating_sub(SKEW_STEPS)..=now_step.saturating_add(SKEW_STEPS) {
        let Some(expected) = secret.code_at_step(step) else {
            continue;
        };
        let hit = expected.as_bytes().ct_eq(given.as_slice());
        matched_step.conditional_assign(&step, hit);
        matched |= hit;
    }

    if !bool::from(matched) {
        return Err(TotpError::Invalid);
    }
    if last_used_step.is_some_and(|last| matched_step <= last) {
        return Err(TotpError::Replayed);
    }
    Ok(matched_step)
}

/// The code an authenticator app shows at `now_unix`. The server never needs this to check a
/// code (use [`verify`]); it is here for tests and tools that play the user's app.
pub fn code_at(secret: &TotpSecret, now_unix: u64) -> Zeroizing<String> {
    // `now_unix / STEP_SECONDS * STEP_SECONDS <= now_unix`: the step's start cannot overflow.
    secret
        .code_at_step(now_unix / STEP_SECONDS)
        .unwrap_or_default()
}

/// The 6 digits of `code`, ignoring surrounding whitespace and spaces in between; `None` if
/// anything else is there.
fn parse_code(code: &str) -> Option<Zeroizing<[u8; DIGITS]>> {
    if code.len() > MAX_CODE_INPUT_BYTES {
        return None;
    }
    let mut digits = Zeroizing::new([0u8; DIGITS]);
    let mut len = 0;
    for byte in code.trim().bytes().filter(|&b| b != b' ') {
        if !byte.is_ascii_digit() || len == DIGITS {
            return None;
        }
        digits[len] = byte;
        len += 1;
    }
    (len == DIGITS).then_some(digits)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// RFC 6238 Appendix B's SHA-1 secret, the ASCII bytes "12345678901234567890", in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_base32(RFC_SECRET).unwrap()
    }

    #[test]
    fn rfc_6238_sha1_vectors_last_six_digits() {
        // RFC 6238 Appendix B gives 8 digits; a 6-digit code is the same value mod 10^6.
        let secret = rfc_secret();
        let vectors: [(u64, &str, &str); 6] = [
            (59, "94287082", "287082"),
            (1_111_111_109, "07081804", "081804"),
            (1_111_111_111, "14050471", "050471"),
            (1_234_567_890, "89005924", "005924"),
            (2_000_000_000, "69279037", "279037"),
            (20_000_000_000, "65353130", "353130"),
        ];
        for (time, eight, six) in vectors {
            assert!(eight.ends_with(six));
            assert_eq!(code_at(&secret, time).as_str(), six, "code at {time}");
            assert_eq!(
                verify(&secret, six, time, None),
                Ok(time / 30),
                "verify at {time}"
            );
        }
    }

    #[test]
    fn the_fixed_parameters_pass_totp_rs_rfc_checks() {
        // `from_secret` skips totp-rs's checks on the grounds that our parameters pass them.
        totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_step_duration(STEP_SECONDS)
            .with_skew(0)
            .with_secret(totp_rs::Secret::new_stack([7; SECRET_BYTES]))
            .build()
            .unwrap();
    }

    #[test]
    fn accepts_one_step_either_side_and_refuses_two() {
        let secret = rfc_secret();
        let now: u64 = 1_111_111_111; // step 37037037
        let step = now / 30;
        for (offset, expected) in [
            (-60i64, Err(TotpError::Invalid)),
            (-30, Ok(step - 1)),
            (0, Ok(step)),
            (30, Ok(step + 1)),
            (60, Err(TotpError::Invalid)),
        ] {
            let code = code_at(&secret, now.saturating_add_signed(offset));
            assert_eq!(
                verify(&secret, &code, now, None),
                expected,
                "code from {offset:+} s"
            );
        }
        // The window follows the step boundaries, not `now` +/- 30 s: the last second of a step
        // still accepts the previous one, the first second of the next does not.
        let code = code_at(&secret, 1_111_111_109); // step 37037036
        assert_eq!(verify(&secret, &code, 1_111_111_139, None), Ok(37_037_036));
        assert_eq!(
            verify(&secret, &code, 1_111_111_140, None),
            Err(TotpError::Invalid)
        );
    }

    #[test]
    fn a_used_step_cannot_be_replayed() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = now / 30;
        let code = code_at(&secret, now);

        let used = verify(&secret, &code, now, None).unwrap();
        assert_eq!(used, step);
        // The same code again, at once or a few seconds later in the same step.
        assert_eq!(
            verify(&secret, &code, now, Some(used)),
            Err(TotpError::Replayed)
        );
        assert_eq!(
            verify(&secret, &code, now + 5, Some(used)),
            Err(TotpError::Replayed)
        );
        // An older code still inside the window.
        let older = code_at(&secret, now - 30);
        assert_eq!(
            verify(&secret, &older, now, Some(used)),
            Err(TotpError::Replayed)
        );
        // The next step's code is fine and moves the mark forward.
        let next = code_at(&secret, now + 30);
        assert_eq!(verify(&secret, &next, now + 30, Some(used)), Ok(step + 1));
        // A wrong code is Invalid, not Replayed, whatever the mark.
        let wrong = if code.as_str() == "000000" {
            "000001"
        } else {
            "000000"
        };
        assert_eq!(
            verify(&secret, wrong, now, Some(used)),
            Err(TotpError::Invalid)
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = rfc_secret();
        // "287082" is the valid code at t = 59.
        for bad in [
            "",
            "      ",
            "28708",
            "2870822",
            "0287082",
            "28708a",
            "+87082",
            "-87082",
            "2870.8",
            "287-082",
            "２８７０８２", // full-width digits
            "٢٨٧٠٨٢",       // Arabic-Indic digits
            "287082\u{0}",
            &"2".repeat(1000),
            &format!("287082{}", " ".repeat(40)),
        ] {
            assert_eq!(
                verify(&secret, bad, 59, None),
                Err(TotpError::Invalid),
                "{bad:?}"
            );
        }
        for good in ["287082", " 287082 ", "287 082", "287082\n", "\t287082"] {
            assert_eq!(verify(&secret, good, 59, None), Ok(1), "{good:?}");
        }
    }

    #[test]
    fn the_ends_of_time_do_not_panic() {
        let secret = rfc_secret();
        // Step 0 has no step before it; the last steps have none after.
        assert_eq!(verify(&secret, &code_at(&secret, 0), 0, None), Ok(0));
        assert_eq!(verify(&secret, &code_at(&secret, 31), 0, None), Ok(1));
        let end = u64::MAX;
        assert_eq!(
            verify(&secret, &code_at(&secret, end), end, None),
            Ok(end / 30)
        );
    }

    #[test]
    fn base32_round_trip_is_32_characters() {
        let secret = TotpSecret::generate();
        let b32 = secret.to_base32();
        assert_eq!(b32.len(), SECRET_BASE32_CHARS);
        assert!(
            b32.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        let loaded = TotpSecret::from_base32(&b32).unwrap();
        assert_eq!(loaded.to_base32().as_str(), b32.as_str());
        for time in [0, 1_700_000_000, 4_000_000_000] {
            assert_eq!(code_at(&loaded, time), code_at(&secret, time));
        }
        assert_eq!(rfc_secret().to_base32().as_str(), RFC_SECRET);
        // Two fresh secrets differ (160 random bits each).
        assert_ne!(
            TotpSecret::generate().to_base32(),
            TotpSecret::generate().to_base32()
        );
    }

    #[test]
    fn malformed_stored_secrets_are_refused() {
        for bad in [
            "",
            &RFC_SECRET[..31],
            &format!("{RFC_SECRET}A"),
            &RFC_SECRET.to_lowercase(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ0", // '0' is not base32
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ=",
            "GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJ",
            // 16 bytes with padding: an RFC-legal secret, but not ours.
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQ===",
        ] {
            assert!(
                matches!(TotpSecret::from_base32(bad), Err(TotpError::InvalidSecret)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn enrolment_uri_parses_back_with_totp_rs() {
        let secret = TotpSecret::generate();
        let enrolment = enrolment(&secret, "Strongroom Example", "alice@example.com").unwrap();
        let uri = enrolment.otpauth_uri.as_str();
        assert_eq!(enrolment.secret_base32, secret.to_base32());

        assert!(
            uri.starts_with("otpauth://totp/Strongroom%20Example:alice%40example.com?"),
            "{uri}"
        );
        let query = uri.split_once('?').unwrap().1;
        let params: Vec<(&str, &str)> = query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .collect();
        assert_eq!(
            params,
            [
                ("secret", enrolment.secret_base32.as_str()),
                ("issuer", "Strongroom%20Example"),
                ("algorithm", "SHA1"),
                ("digits", "6"),
                ("period", "30"),
            ]
        );

        // An implementation we did not write reads the same thing back.
        let parsed = totp_rs::Totp::from_url(uri).unwrap();
        assert_eq!(parsed.issuer(), Some("Strongroom Example"));
        assert_eq!(parsed.account_name(), "alice@example.com");
        assert_eq!(parsed.algorithm(), totp_rs::Algorithm::SHA1);
        assert_eq!(parsed.digits(), 6);
        assert_eq!(parsed.step(), 30);
        assert_eq!(
            parsed.secret().to_base32(),
            enrolment.secret_base32.as_str()
        );
        let now = 1_700_000_000;
        assert_eq!(
            verify(&secret, &parsed.generate(now).to_string(), now, None),
            Ok(now / 30)
        );
    }

    #[test]
    fn enrolment_labels_are_encoded_and_checked() {
        let secret = rfc_secret();
        let e = enrolment(&secret, "Acme & Co/EU", "Zoë+test@example.com").unwrap();
        assert!(
            e.otpauth_uri
                .starts_with("otpauth://totp/Acme%20%26%20Co%2FEU:Zo%C3%AB%2Btest%40example.com?"),
            "{}",
            e.otpauth_uri.as_str()
        );
        let parsed = totp_rs::Totp::from_url(e.otpauth_uri.as_str()).unwrap();
        assert_eq!(parsed.issuer(), Some("Acme & Co/EU"));
        assert_eq!(parsed.account_name(), "Zoë+test@example.com");

        for (issuer, account) in [
            ("", "alice"),
            ("Strongroom", ""),
            ("Strong:room", "alice"),
            ("Strongroom", "alice:admin"),
            ("Strongroom", "alice\nbob"),
        ] {
            assert!(
                matches!(
                    enrolment(&secret, issuer, account),
                    Err(TotpError::InvalidLabel)
                ),
                "{issuer:?} {account:?}"
            );
        }
        assert!(matches!(
            enrolment(&secret, "Strongroom", &"a".repeat(5000)),
            Err(TotpError::Qr(_))
        ));
    }

    #[test]
    fn enrolment_qr_is_an_svg_document() {
        let e = enrolment(&TotpSecret::generate(), "Strongroom", "alice@example.com").unwrap();
        let svg = e.qr_svg.as_str();
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<path"), "no modules drawn");
    }

    #[test]
    fn errors_do_not_echo_the_code() {
        for err in [
            TotpError::InvalidSecret,
            TotpError::InvalidLabel,
            TotpError::Invalid,
            TotpError::Replayed,
        ] {
            let message = err.to_string();
            assert!(!message.is_empty() && !message.chars().any(|c| c.is_ascii_digit()));
        }
    }

    /// Cross-checks against oathtool (OATH Toolkit, Debian package `oathtool`), an implementation
    /// that shares no code with totp-rs. Set STRONGROOM_TEST_NO_OATHTOOL=1 to skip it knowingly.
    #[test]
    fn oathtool_codes_are_accepted() {
        if std::env::var("STRONGROOM_TEST_NO_OATHTOOL").as_deref() == Ok("1") {
            eprintln!("STRONGROOM_TEST_NO_OATHTOOL=1: skipping the oathtool cross-check");
            return;
        }
        let oathtool = |secret: &str, now: u64| -> String {
            let out = match Command::new("oathtool")
                .args(["--totp", "--base32", &format!("--now=@{now}"), secret])
                .output()
            {
                Ok(out) => out,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                    "oathtool is not installed: install it (Debian: `apt-get install oathtool`) \
                     to cross-check TOTP against an independent implementation, or set \
                     STRONGROOM_TEST_NO_OATHTOOL=1 to skip this test knowingly"
                ),
                Err(err) => panic!("could not run oathtool: {err}"),
            };
            assert!(
                out.status.success(),
                "oathtool failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };

        // The RFC secret first: if this fails, oathtool and the vectors disagree, not our code.
        assert_eq!(oathtool(RFC_SECRET, 59), "287082");

        let secret = TotpSecret::generate();
        let b32 = secret.to_base32();
        for now in [1_700_000_000u64, 1_700_000_029, 59, 4_102_444_800] {
            let step = now / 30;
            let code = oathtool(&b32, now);
            assert_eq!(code.as_str(), code_at(&secret, now).as_str(), "at {now}");
            assert_eq!(verify(&secret, &code, now, None), Ok(step), "at {now}");
            // The app's clock one step behind or ahead: still accepted, and the step is theirs.
            let behind = oathtool(&b32, now - 30);
            assert_eq!(verify(&secret, &behind, now, None), Ok(step - 1));
            let ahead = oathtool(&b32, now + 30);
            assert_eq!(verify(&secret, &ahead, now, None), Ok(step + 1));
            // Two steps off: refused (unless the 6 digits happen to collide, one chance in ~10^5).
            let far = oathtool(&b32, now + 60);
            if ![code.as_str(), behind.as_str(), ahead.as_str()].contains(&far.as_str()) {
                assert_eq!(verify(&secret, &far, now, None), Err(TotpError::Invalid));
            }
        }
    }
}
