//! Single-use recovery codes: the way back in when the authenticator is lost.
//!
//! A code is 10 characters from a 31-symbol alphabet with no look-alikes (no 0/O, 1/I/L), shown as
//! `XXXXX-XXXXX`. That is 10 x log2(31) = 49.5 bits per code: against 10 live codes an online
//! attacker still needs ~2^46 guesses on average, far beyond any rate limit's reach. (The 31
//! unambiguous letters and digits are one short of 32, hence 49.5 and not 50 bits; a longer code
//! would be the way to more.)
//!
//! This module only makes codes and puts typed input into canonical form. Storing them (hashed
//! with a keyed HMAC over [`normalize`]'s output), marking one used and refusing it afterwards
//! belong to the caller. The alphabet, length and canonical form are frozen once codes are
//! stored: a stored hash is of the canonical form, so changing any of them would make issued
//! codes unusable.

use zeroize::Zeroizing;

/// The symbols a code is made of: digits 2-9 and A-Z without I, L and O. Frozen (module docs).
pub const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// Symbols in a code, not counting the dash. Frozen (module docs).
pub const CODE_CHARS: usize = 10;

/// The dash goes after this many symbols: `XXXXX-XXXXX`.
const GROUP_CHARS: usize = 5;

/// How many codes a user gets at a time.
pub const DEFAULT_COUNT: usize = 10;

/// Input longer than this is refused before looking at it: a code is 11 characters plus a few
/// stray spaces.
const MAX_INPUT_BYTES: usize = 64;

/// Random bytes below this are used, the rest discarded, so that `byte % 31` is uniform
/// (248 = 8 x 31).
const UNBIASED_BELOW: u8 = (256 / ALPHABET.len() * ALPHABET.len()) as u8;

/// `count` distinct fresh codes in canonical form (`XXXXX-XXXXX`, upper case), from the
/// operating system's CSPRNG. Show them to the user once; store only their keyed hashes.
pub fn generate(count: usize) -> Vec<Zeroizing<String>> {
    let mut codes: Vec<Zeroizing<String>> = Vec::with_capacity(count);
    while codes.len() < count {
        let code = generate_one();
        // A repeat is a one-in-2^49 event, but "10 codes" must mean 10 usable codes.
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

fn generate_one() -> Zeroizing<String> {
    let mut code = Zeroizing::new(String::with_capacity(CODE_CHARS + 1));
    let mut pool = Zeroizing::new([0u8; 32]);
    let mut symbols = 0;
    while symbols < CODE_CHARS {
        crate::random::fill(pool.as_mut_slice());
        for &byte in pool.iter().filter(|&&b| b < UNBIASED_BELOW) {
            if symbols == CODE_CHARS {
                break;
            }
            if symbols == GROUP_CHARS {
                code.push('-');
            }
            code.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            symbols += 1;
        }
    }
    code
}

/// The canonical form (`XXXXX-XXXXX`, upper case) of what a user typed, or `None` if it cannot be
/// a code: "ABCDE-FGHJK", "abcde fghjk", " abcdefghjk " and "ab-cde-fghjk" are all the same code.
/// Case, whitespace and dashes are ignored; anything else outside the alphabet (including the
/// look-alikes 0, O, 1, I, L that no code contains) refuses the input, as does a wrong length.
///
/// Hash this form, both when storing a code and when checking one, and a code matches however it
/// was typed. [`generate`]'s codes are already in this form.
pub fn normalize(code: &str) -> Option<Zeroizing<String>> {
    if code.len() > MAX_INPUT_BYTES {
        return None;
    }
    let mut canonical = Zeroizing::new(String::with_capacity(CODE_CHARS + 1));
    let mut symbols = 0;
    for c in code.chars().filter(|&c| c != '-' && !c.is_whitespace()) {
        let upper = c.to_ascii_uppercase();
        if symbols == CODE_CHARS || !u8::try_from(upper).is_ok_and(|b| ALPHABET.contains(&b)) {
            return None;
        }
        if symbols == GROUP_CHARS {
            canonical.push('-');
        }
        canonical.push(upper);
        symbols += 1;
    }
    (symbols == CODE_CHARS).then_some(canonical)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// [`normalize`] as a plain `Option<String>`, for comparisons.
    fn norm(typed: &str) -> Option<String> {
        normalize(typed).map(|c| c.as_str().to_owned())
    }

    fn is_canonical(code: &str) -> bool {
        let bytes = code.as_bytes();
        bytes.len() == CODE_CHARS + 1
            && bytes[GROUP_CHARS] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == GROUP_CHARS || ALPHABET.contains(b))
    }

    #[test]
    fn the_alphabet_has_no_look_alikes_and_enough_entropy() {
        let unique: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(unique.len(), ALPHABET.len());
        for ambiguous in *b"0O1IL" {
            assert!(!ALPHABET.contains(&ambiguous));
        }
        assert!(
            ALPHABET
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_eq!(UNBIASED_BELOW, 248);
        let bits = CODE_CHARS as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits > 49.5, "{bits} bits");
    }

    #[test]
    fn generates_ten_distinct_well_formed_codes() {
        let codes = generate(DEFAULT_COUNT);
        assert_eq!(codes.len(), 10);
        let unique: HashSet<&str> = codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(unique.len(), 10);
        for code in &codes {
            assert!(is_canonical(code), "{}", code.as_str());
            assert_eq!(norm(code).as_deref(), Some(code.as_str()));
        }
        assert!(generate(0).is_empty());
    }

    #[test]
    fn every_symbol_turns_up() {
        // 2,000 symbols over 31 values: a symbol missing means a broken mapping, not bad luck
        // (the chance of one missing by chance is below 10^-25).
        let seen: HashSet<char> = generate(200)
            .iter()
            .flat_map(|c| c.chars().filter(|&c| c != '-').collect::<Vec<_>>())
            .collect();
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn typing_variations_are_the_same_code() {
        let canonical = "ABCDE-FGHJK";
        for typed in [
            "ABCDE-FGHJK",
            "abcde-fghjk",
            "abcde fghjk",
            "abcdefghjk",
            "  AbCdEfGhJk\n",
            "ab-cde-fgh-jk",
            "abcde - fghjk",
            "abcde\tfghjk",
            "abcde--fghjk",
        ] {
            assert_eq!(norm(typed).as_deref(), Some(canonical), "{typed:?}");
        }
    }

    #[test]
    fn impossible_codes_are_refused() {
        for bad in [
            "",
            "-----",
            "ABCDE-FGHJ",   // 9 symbols
            "ABCDE-FGHJKM", // 11 symbols
            "ABCDE-FGHJ0",  // look-alikes are not in the alphabet
            "ABCDE-FGHJO",
            "ABCDE-FGHJ1",
            "ABCDE-FGHJI",
            "abcde-fghjl",
            "ABCDE_FGHJK",
            "ABCDE.FGHJK",
            "ABCDÉ-FGHJK",
            "ＡBCDE-FGHJK", // full-width A
            "ABCDE-FGHJK\u{0}",
        ] {
            assert_eq!(norm(bad), None, "{bad:?}");
        }
        let long = format!("ABCDE-FGHJK{}", " ".repeat(100));
        assert_eq!(norm(&long), None);
    }
}
