//! Forgiving one-letter typos ("refnd", "shiping time", "cancelation") (pure).
//!
//! The index holds every word of six letters or more that appears in any
//! keyword, hint or exclusion, with the languages that use it, in a
//! symmetric-deletion table. A buyer's word the exact scan left uncovered is
//! looked up with its own deletions; the matcher then rewrites the message
//! with the corrected words and scans it again, so typos inside phrases
//! ("traking number") are forgiven too.
//!
//! A correction is only made when it is unambiguous and plausible:
//! - exactly one vocabulary word is one edit away ("eight" is one edit from
//!   both "height" and "weight": no correction);
//! - the word belongs to the message's language ("canada" in an English
//!   message must not become Spanish "dañada"), or to any language when the
//!   message gives no clue to its language;
//! - the buyer's word is not itself a common word ([`NEVER_CORRECT`], the
//!   language cue words, and every vocabulary word).

use std::collections::{HashMap, HashSet};

use crate::lang::Lang;
use crate::normalize::needs_boundary;

/// Vocabulary words shorter than this are not fuzzed: one edit on a short
/// word makes a different word too often ("track" → "truck").
const MIN_VOCABULARY_CHARS: usize = 6;
/// Buyer words shorter than this are not looked up.
const MIN_WORD_CHARS: usize = 5;

/// Everyday words one edit away from common store keywords. They are spelled
/// right; correcting them would invent a topic ("created" → "cheated").
pub const NEVER_CORRECT: &[&str] = &[
    // English
    "cases",
    "causes",
    "charger",
    "chargers",
    "created",
    "creating",
    "feeling",
    "facing",
    "curious",
    "manage",
    "managed",
    "manages",
    "sterling",
    "heated",
    "heating",
    "compliant",
    "shopping",
    "sending",
    "costume",
    "costumes",
    "changed",
    "heater",
    "heaters",
    "switching",
    "policy",
    "tracked",
    "denied",
    "canada",
    "models",
    "wander",
    "wonder",
    "sipping",
    "shipment",
    "refunding",
    "retired",
    "returned",
    "parcels",
    "prices",
    "ordered",
    "cancelled",
    "canceled",
    // Russian (inflected forms one letter from another word)
    "закончится",
    "яндекс",
    "единиц",
    "пришло",
    "платил",
    "помоги",
    "придет",
    "придут",
    // Spanish, Portuguese, French, German
    "cansada",
    "cansado",
    "pagado",
    "llegada",
    "chegada",
    "envios",
    "modele",
    "modell",
    "gerade",
];

#[derive(Debug, Default)]
pub struct FuzzyIndex {
    /// (hash of a deletion variant or of the word itself, vocabulary word
    /// id), sorted by hash once built. Hashes instead of strings keep the
    /// index small; a collision only adds a candidate that the edit-distance
    /// check then rejects.
    variants: Vec<(u64, u32)>,
    /// Vocabulary words and a bit per language using them.
    words: Vec<(Box<str>, u8)>,
    ids: HashMap<Box<str>, u32>,
    protected: HashSet<Box<str>>,
}

fn lang_bit(lang: Lang) -> u8 {
    1 << (lang as u8)
}

impl FuzzyIndex {
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Adds the long Latin or Cyrillic words of a normalized phrase.
    /// `open_start`/`open_end`: the phrase's first/last word is a stem
    /// (`*`), which is not a whole word and is left out.
    pub fn insert_phrase(&mut self, phrase: &str, lang: Lang, open_start: bool, open_end: bool) {
        let words: Vec<&str> = phrase.split(' ').collect();
        let last = words.len() - 1;
        for (i, word) in words.iter().enumerate() {
            if (i == 0 && open_start) || (i == last && open_end) {
                continue;
            }
            self.insert_word(word, lang);
        }
    }

    fn insert_word(&mut self, word: &str, lang: Lang) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() < MIN_VOCABULARY_CHARS
            || !chars
                .iter()
                .all(|c| c.is_alphabetic() && needs_boundary(*c))
        {
            return;
        }
        if let Some(&id) = self.ids.get(word) {
            self.words[id as usize].1 |= lang_bit(lang);
            return;
        }
        let id = self.words.len() as u32;
        self.words.push((word.into(), lang_bit(lang)));
        self.ids.insert(word.into(), id);
        self.variants.push((hash(word), id));
        for skip in 0..chars.len() {
            let variant: String = chars
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, c)| c)
                .collect();
            self.variants.push((hash(&variant), id));
        }
    }

    /// Sorts the index for lookups; call once after the last insert.
    pub fn finish(&mut self) {
        self.variants.sort_unstable();
        self.variants.dedup();
        self.variants.shrink_to_fit();
    }

    /// Marks a correctly spelled word that must never be read as a typo.
    pub fn protect(&mut self, word: &str) {
        self.protected.insert(word.into());
    }

    /// Whether a buyer's word is long enough and made of letters.
    pub fn worth_checking(word: &str) -> bool {
        word.chars().nth(MIN_WORD_CHARS - 1).is_some()
            && word.chars().all(|c| c.is_alphabetic() && needs_boundary(c))
    }

    /// The one vocabulary word, of one of `langs`, exactly one edit away from
    /// `word`; `None` when there is none or more than one.
    pub fn correct(&self, word: &str, langs: &[Lang], buf: &mut String) -> Option<&str> {
        if self.protected.contains(word) || self.ids.contains_key(word) {
            return None;
        }
        let allowed = langs.iter().fold(0u8, |mask, &l| mask | lang_bit(l));
        let mut found: Option<u32> = None;
        let mut ambiguous = false;
        let mut consider = |key: &str| {
            let h = hash(key);
            let start = self.variants.partition_point(|&(v, _)| v < h);
            let ids = self.variants[start..]
                .iter()
                .take_while(|&&(v, _)| v == h)
                .map(|&(_, id)| id);
            for id in ids {
                let (candidate, mask) = &self.words[id as usize];
                if mask & allowed == 0
                    || found == Some(id)
                    || !one_edit_apart(word, candidate)
                    || !plausible_typo(word, candidate)
                {
                    continue;
                }
                if found.is_some() {
                    ambiguous = true;
                } else {
                    found = Some(id);
                }
            }
        };
        consider(word);
        for (i, c) in word.char_indices() {
            buf.clear();
            buf.push_str(&word[..i]);
            buf.push_str(&word[i + c.len_utf8()..]);
            consider(buf);
        }
        match (found, ambiguous) {
            (Some(id), false) => Some(&self.words[id as usize].0),
            _ => None,
        }
    }
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// People rarely get the first letter of a word wrong, and a different last
/// letter usually makes a different word ("cancer" / "cancel"), so edits
/// there are not read as typos ("eating" is not "rating").
fn plausible_typo(word: &str, candidate: &str) -> bool {
    let first_diff = word
        .chars()
        .zip(candidate.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let (w, c) = (word.chars().count(), candidate.chars().count());
    first_diff > 0 && !(w == c && first_diff + 1 == w)
}

/// True when `a` and `b` differ by exactly one insertion, deletion,
/// substitution or swap of two neighbouring letters.
pub fn one_edit_apart(a: &str, b: &str) -> bool {
    if a == b {
        return false;
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    match long.len() - short.len() {
        0 => {
            let diffs: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            match diffs.as_slice() {
                [_] => true,
                [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
                _ => false,
            }
        }
        1 => {
            let prefix = short
                .iter()
                .zip(long.iter())
                .take_while(|(x, y)| x == y)
                .count();
            short[prefix..] == long[prefix + 1..]
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_table() {
        for (a, b, expect) in [
            ("refund", "refnd", true),
            ("shipping", "shiping", true),
            ("cancellation", "cancelation", true),
            ("receive", "recieve", true),
            ("refund", "refunt", true),
            ("refund", "refund", false),
            ("refund", "rfnd", false),
            ("доставка", "доставак", true),
            ("abcdef", "badcef", false),
        ] {
            assert_eq!(one_edit_apart(a, b), expect, "{a} vs {b}");
        }
    }

    fn index() -> FuzzyIndex {
        let mut index = FuzzyIndex::default();
        index.insert_phrase("refund", Lang::En, false, false);
        index.insert_phrase("tracking number", Lang::En, false, false);
        index.insert_phrase("track", Lang::En, false, false);
        index.insert_phrase("height", Lang::En, false, false);
        index.insert_phrase("weight", Lang::En, false, false);
        index.insert_phrase("danada", Lang::Es, false, false);
        index.insert_phrase("refund*", Lang::De, false, true);
        index.protect("refunded");
        index.finish();
        index
    }

    #[test]
    fn corrections_table() {
        let index = index();
        let mut buf = String::new();
        let en = [Lang::En];
        for (word, langs, expect) in [
            ("refnd", &en[..], Some("refund")),
            ("rrefund", &en[..], Some("refund")),
            ("refudn", &en[..], Some("refund")),
            ("traking", &en[..], Some("tracking")),
            ("numbr", &en[..], Some("number")),
            ("refunded", &en[..], None),
            ("truck", &en[..], None),
            ("eight", &en[..], None),
            ("canada", &[Lang::Es][..], None),
            ("danadas", &en[..], None),
            ("danadas", &[Lang::Es][..], Some("danada")),
            ("eight", &[Lang::En][..], None),
            ("refunt", &en[..], None),
            ("efund", &en[..], None),
        ] {
            assert_eq!(
                index.correct(word, langs, &mut buf),
                expect,
                "{word} in {langs:?}"
            );
        }
    }
}
