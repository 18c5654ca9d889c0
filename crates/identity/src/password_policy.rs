//! Which passwords Strongroom accepts (NIST SP 800-63B §5.1.1.2, OWASP ASVS V2.1).
//!
//! Length is the only shape rule: 12 to 128 characters, any Unicode, no composition rules ("one
//! digit, one symbol") and no forced rotation, because those push people towards predictable
//! patterns. On top of length a password is refused when it is on a list of common or breached
//! passwords, when it contains the user's email address or name, or when the zxcvbn estimate says
//! it is easy to guess. The checks run in that order and the first refusal wins, so the user gets
//! the most specific reason.
//!
//! A refusal's message is written for the user and never quotes the password: it may be shown
//! on a page and end up in logs.

use std::sync::LazyLock;

use zxcvbn::Score;

/// Why a password was refused; Display is one sentence safe to show the user (never echoes the
/// password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct WeakPassword {
    /// One lower-case sentence without a final full stop, safe to show the user.
    pub reason: String,
}

/// Fewest characters (Unicode scalar values) a password may have.
pub const MIN_CHARS: usize = 12;

/// Most characters (Unicode scalar values) a password may have. High enough for any passphrase,
/// low enough that hashing and strength estimation stay cheap for hostile input.
pub const MAX_CHARS: usize = 128;

/// Email and name fragments shorter than this are too common to refuse ("al", "bob").
const SHORTEST_PERSONAL_FRAGMENT: usize = 4;

/// zxcvbn scores below this are refused. 3 is zxcvbn's "safely unguessable" (estimated at 10^8
/// guesses or more): out of reach online, and costly offline against the slow Argon2id hash.
const MIN_SCORE: Score = Score::Three;

/// zxcvbn judges only this many leading characters. Its cost climbs steeply with length (measured
/// here, release build: high-entropy input takes up to ~45 ms at 64 characters but 150-300 ms at
/// 90-100), and a sign-up form must not be a CPU lever. Judging a prefix only ever errs towards
/// refusing: characters after it cannot make the password easier to guess.
const STRENGTH_PREFIX_CHARS: usize = 64;

/// The shipped list: lower-cased, deduplicated, sorted by byte (see `data/README.md`), one entry
/// a line. Sorted on disk so that start-up only splits lines and a look-up is a binary search.
static COMMON_PASSWORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .collect()
});

/// Checks `password` for a user with `email` and, if known, `name`.
///
/// NIST 800-63B / ASVS 2.1: 12..=128 characters, counted as Unicode scalar values without
/// normalization (so a decomposed "Ü" counts as two); any Unicode allowed, no composition rules.
/// Refused, in this order, when it is
/// 1. shorter than [`MIN_CHARS`] or longer than [`MAX_CHARS`];
/// 2. on the shipped common/breached list (case-insensitive);
/// 3. containing, case-insensitively, the email address, its local part (if that has at least 4
///    characters), the name, or any word of the name (each if at least 4 characters);
/// 4. rated below 3 by zxcvbn, given the email, local part and name as the user's own words
///    (only the first 64 characters are rated, which bounds the cost of hostile input).
///
/// # Errors
///
/// [`WeakPassword`] with the first reason that applies.
pub fn check(password: &str, email: &str, name: Option<&str>) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(refuse(format!(
            "the password is too short: use at least {MIN_CHARS} characters"
        )));
    }
    if chars > MAX_CHARS {
        return Err(refuse(format!(
            "the password is too long: use at most {MAX_CHARS} characters"
        )));
    }

    let lower = password.to_lowercase();
    if is_common(&lower) {
        return Err(refuse(
            "the password is on a list of common or breached passwords".to_owned(),
        ));
    }

    let personal = personal_fragments(email, name);
    if personal
        .iter()
        .any(|fragment| lower.contains(fragment.as_str()))
    {
        return Err(refuse(
            "the password must not contain your email address or name".to_owned(),
        ));
    }

    let inputs: Vec<&str> = personal.iter().map(String::as_str).collect();
    let judged: String = password.chars().take(STRENGTH_PREFIX_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&judged, &inputs);
    if estimate.score() < MIN_SCORE {
        let warning = estimate
            .feedback()
            .and_then(zxcvbn::feedback::Feedback::warning);
        let reason = match warning {
            Some(warning) => format!(
                "the password is too easy to guess: {}; add more words or characters",
                as_clause(&warning.to_string())
            ),
            None => "the password is too easy to guess; add more words or characters".to_owned(),
        };
        return Err(refuse(reason));
    }
    Ok(())
}

/// How many entries the shipped list holds (>= 100,000).
pub fn common_list_len() -> usize {
    COMMON_PASSWORDS.len()
}

fn refuse(reason: String) -> WeakPassword {
    WeakPassword { reason }
}

/// `lower` must already be lower-cased, as every list entry is.
fn is_common(lower: &str) -> bool {
    COMMON_PASSWORDS.binary_search(&lower).is_ok()
}

/// The lower-cased pieces of the user's identity a password must not contain; zxcvbn also gets
/// them as the user's own words, so near-misses ("alice2026") cost guesses too.
fn personal_fragments(email: &str, name: Option<&str>) -> Vec<String> {
    let long_enough = |s: &str| s.chars().count() >= SHORTEST_PERSONAL_FRAGMENT;
    let mut fragments = Vec::new();

    let email = email.trim().to_lowercase();
    // The local part is everything before the last '@' ("a@b"@example.com is a valid address).
    if let Some((local, _domain)) = email.rsplit_once('@')
        && long_enough(local)
    {
        fragments.push(local.to_owned());
    }
    if long_enough(&email) {
        fragments.push(email);
    }

    if let Some(name) = name {
        let name = name.trim().to_lowercase();
        // Each word of "Anne-Marie O'Neill" on its own: a password holding a surname holds the
        // name as far as a guesser is concerned.
        for word in name.split(|c: char| !c.is_alphanumeric()) {
            if long_enough(word) && word != name {
                fragments.push(word.to_owned());
            }
        }
        if long_enough(&name) {
            fragments.push(name);
        }
    }
    fragments
}

/// zxcvbn's warnings are full sentences ("Straight rows of keys are easy to guess."); ours put
/// them after a colon, so drop the capital and the full stop.
fn as_clause(sentence: &str) -> String {
    let sentence = sentence.trim().trim_end_matches('.');
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "Jonathan.Doe@example.com";

    fn reason(password: &str, email: &str, name: Option<&str>) -> String {
        let err = check(password, email, name).expect_err("password should be refused");
        assert!(
            !err.reason.contains(password) && !err.reason.contains(&password.to_lowercase()),
            "message echoes the password: {err}"
        );
        assert_eq!(err.to_string(), err.reason);
        err.reason
    }

    #[test]
    fn accepts_a_long_random_passphrase() {
        check(
            "violet-harbor-tractor-umbrella-41",
            EMAIL,
            Some("Jonathan Doe"),
        )
        .unwrap();
        check("kV9#qL2!zR7@wX4$", EMAIL, None).unwrap();
    }

    #[test]
    fn accepts_a_unicode_passphrase() {
        check(
            "Über-Geheimnis mit Ümlaut 2026 ✓",
            EMAIL,
            Some("Jonathan Doe"),
        )
        .unwrap();
        check(
            "東京の秋は紅葉が美しい季節です",
            "keiko@example.jp",
            Some("Keiko"),
        )
        .unwrap();
    }

    #[test]
    fn length_bounds_count_characters_not_bytes() {
        assert_eq!(
            reason("abcdefghijk", EMAIL, None),
            "the password is too short: use at least 12 characters"
        );
        // 11 characters, 33 bytes: still too short.
        assert!(reason("秋秋秋秋秋秋秋秋秋秋秋", EMAIL, None).contains("too short"));

        let random_128: String = "Xq7#mP2v!Lr9@Kz4$Wn6%Hb8^Tc3&Yf5*"
            .chars()
            .cycle()
            .take(MAX_CHARS)
            .collect();
        check(&random_128, EMAIL, None).unwrap();
        let random_129 = format!("{random_128}x");
        assert_eq!(
            reason(&random_129, EMAIL, None),
            "the password is too long: use at most 128 characters"
        );
        // 128 multi-byte characters are fine: the cap is characters, not bytes.
        let wide_128 = "ñ東✓é".repeat(32);
        assert_eq!(wide_128.chars().count(), MAX_CHARS);
        assert!(wide_128.len() > MAX_CHARS);
        assert!(
            !check(&wide_128, EMAIL, None)
                .err()
                .is_some_and(|e| e.reason.contains("too long"))
        );
    }

    #[test]
    fn refuses_list_entries_in_any_case() {
        let listed = "the password is on a list of common or breached passwords";
        assert_eq!(reason("password1234", EMAIL, None), listed);
        assert_eq!(reason("PassWord1234", EMAIL, None), listed);
        assert_eq!(reason("QWERTYUIOP12", EMAIL, None), listed);
        assert_eq!(reason("1qaz2WSX3edc4RFV", EMAIL, None), listed);
    }

    #[test]
    fn refuses_the_email_address_or_its_local_part() {
        let personal = "the password must not contain your email address or name";
        assert_eq!(
            reason("mine-jonathan.doe@example.com-vault", EMAIL, None),
            personal
        );
        assert_eq!(reason("Violet JONATHAN.DOE harbor", EMAIL, None), personal);
    }

    #[test]
    fn refuses_the_name_or_a_word_of_it() {
        let personal = "the password must not contain your email address or name";
        let email = "jd@example.com";
        assert_eq!(
            reason(
                "violet katharina tractor umbrella",
                email,
                Some("Katharina")
            ),
            personal
        );
        assert_eq!(
            reason(
                "violet-Ostermann-tractor-umbrella",
                email,
                Some("Anne-Marie Ostermann")
            ),
            personal
        );
    }

    #[test]
    fn short_personal_fragments_are_not_refused() {
        // Local part "jd" and name "Bo" are under 4 characters: containing them is no reason.
        check(
            "violet-jd-bo-tractor-umbrella",
            "jd@example.com",
            Some("Bo"),
        )
        .unwrap();
        // An empty email never matches everything.
        check("violet-harbor-tractor-umbrella-41", "", None).unwrap();
    }

    #[test]
    fn refuses_guessable_passwords_by_strength() {
        // On the list already: refused there, first.
        assert!(reason("aaaaaaaaaaaaaaaa", EMAIL, None).contains("list"));

        // Not on the list, but a repeat or a keyboard walk all the same.
        for password in [
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "poiuytrewq12",
            "asdfghjkl;12",
        ] {
            assert!(!is_common(&password.to_lowercase()), "{password} is listed");
            let why = reason(password, EMAIL, None);
            assert!(
                why.starts_with("the password is too easy to guess")
                    && why.ends_with("; add more words or characters"),
                "{password}: {why}"
            );
        }
        assert_eq!(
            reason("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", EMAIL, None),
            "the password is too easy to guess: repeats like \"aaa\" are easy to guess; \
             add more words or characters"
        );
    }

    #[test]
    fn strength_is_judged_on_the_first_64_characters() {
        let strong_tail = "violet-harbor-tractor-umbrella-41";
        // A weak start is refused even though a strong tail follows it...
        let weak_start = format!("{}{strong_tail}", "a".repeat(STRENGTH_PREFIX_CHARS));
        assert!(reason(&weak_start, EMAIL, None).contains("too easy to guess"));
        // ...while a strong start carries any tail.
        let strong_start = format!("{strong_tail}{}", "a".repeat(90));
        assert!(strong_start.chars().count() <= MAX_CHARS);
        check(&strong_start, EMAIL, None).unwrap();
    }

    #[test]
    fn the_shipped_list_is_large_sorted_and_lower_case() {
        assert!(common_list_len() >= 100_000, "{}", common_list_len());
        assert!(
            COMMON_PASSWORDS.windows(2).all(|w| w[0] < w[1]),
            "not sorted"
        );
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|e| e.chars().count() >= 4 && e.to_lowercase() == *e && e.trim() == *e),
        );
        // Entries the length rule lets through are there: they are the ones that can match.
        let reachable = COMMON_PASSWORDS
            .iter()
            .filter(|e| e.chars().count() >= MIN_CHARS)
            .count();
        assert!(reachable >= 40_000, "{reachable}");
    }

    #[test]
    fn warnings_become_clauses() {
        assert_eq!(
            as_clause("Straight rows of keys are easy to guess."),
            "straight rows of keys are easy to guess"
        );
        assert_eq!(as_clause(""), "");
    }
}
