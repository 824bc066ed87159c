//! Forgiving one-letter typos ("refnd", "shiping", "cancelation") (pure).
//!
//! A symmetric-deletion index: every single-word keyword of six letters or
//! more is stored with each of its one-letter deletions. A buyer's word of
//! five letters or more that no exact hit covered is looked up with its own
//! deletions; a candidate counts only if the two words are really one edit
//! apart (insert, delete, substitute or swap two neighbours). Common words
//! (the language cue words and every keyword itself) are never "corrected",
//! which keeps "sipping" from turning into "shipping" only when the store
//! lists it — see `protect`.

use std::collections::{HashMap, HashSet};

use crate::normalize::needs_boundary;

/// Keywords shorter than this are not fuzzed: one edit on a short word makes
/// a different word too often ("track" → "truck").
const MIN_KEYWORD_CHARS: usize = 6;
/// Buyer words shorter than this are not looked up.
const MIN_WORD_CHARS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuzzyTarget {
    pub intent: u16,
    pub phrase: u32,
}

#[derive(Debug, Default)]
pub struct FuzzyIndex {
    /// Deletion variant (or the keyword itself) → keywords it came from.
    variants: HashMap<Box<str>, Vec<usize>>,
    keywords: Vec<(Box<str>, FuzzyTarget)>,
    protected: HashSet<Box<str>>,
}

impl FuzzyIndex {
    pub fn is_empty(&self) -> bool {
        self.keywords.is_empty()
    }

    /// Adds a normalized keyword, if it is one long Latin or Cyrillic word.
    pub fn insert(&mut self, keyword: &str, target: FuzzyTarget) {
        let chars: Vec<char> = keyword.chars().collect();
        if chars.len() < MIN_KEYWORD_CHARS
            || !chars
                .iter()
                .all(|c| c.is_alphabetic() && needs_boundary(*c))
        {
            return;
        }
        let id = self.keywords.len();
        self.keywords.push((keyword.into(), target));
        let mut push = |variant: String| {
            let list = self.variants.entry(variant.into_boxed_str()).or_default();
            if !list.contains(&id) {
                list.push(id);
            }
        };
        push(keyword.to_string());
        for skip in 0..chars.len() {
            push(
                chars
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != skip)
                    .map(|(_, c)| c)
                    .collect(),
            );
        }
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

    /// Keywords exactly one edit away from `word`.
    pub fn lookup(&self, word: &str, buf: &mut String) -> Vec<FuzzyTarget> {
        let mut found = Vec::new();
        if self.protected.contains(word) {
            return found;
        }
        let consider = |key: &str, found: &mut Vec<FuzzyTarget>| {
            if let Some(ids) = self.variants.get(key) {
                for &id in ids {
                    let (keyword, target) = &self.keywords[id];
                    if !found.contains(target) && one_edit_apart(word, keyword) {
                        found.push(*target);
                    }
                }
            }
        };
        consider(word, &mut found);
        for (i, c) in word.char_indices() {
            buf.clear();
            buf.push_str(&word[..i]);
            buf.push_str(&word[i + c.len_utf8()..]);
            consider(buf, &mut found);
        }
        found
    }
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

    #[test]
    fn lookup_finds_typos_but_not_protected_or_short_words() {
        let mut index = FuzzyIndex::default();
        let t = FuzzyTarget {
            intent: 1,
            phrase: 7,
        };
        index.insert("refund", t);
        index.insert(
            "track",
            FuzzyTarget {
                intent: 2,
                phrase: 8,
            },
        );
        index.insert(
            "tracking number",
            FuzzyTarget {
                intent: 2,
                phrase: 9,
            },
        );
        index.protect("refunded");
        let mut buf = String::new();
        assert_eq!(index.lookup("refnd", &mut buf), vec![t]);
        assert_eq!(index.lookup("rrefund", &mut buf), vec![t]);
        assert_eq!(index.lookup("refudn", &mut buf), vec![t]);
        assert!(
            index.lookup("refunded", &mut buf).is_empty(),
            "protected word"
        );
        assert!(
            index.lookup("truck", &mut buf).is_empty(),
            "short keywords are not fuzzed"
        );
        assert!(index.lookup("fund", &mut buf).is_empty());
    }
}
