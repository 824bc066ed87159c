//! Keywords that two intents compete for, reported by `kefu check` (pure).
//!
//! Two kinds: the same keyword in two intents (both score, the higher
//! priority wins a tie), and a keyword that stands inside a longer keyword of
//! another intent (where the longer one matches, it hides the shorter one).

use aho_corasick::{AhoCorasick, MatchKind};

use super::catalog::{Catalog, Phrase, PhraseKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The same keyword in two intents (they split the message), as opposed
    /// to one standing inside a longer one (the longer one simply wins).
    pub identical: bool,
    pub message: String,
}

struct Item<'a> {
    intent: &'a str,
    priority: i32,
    phrase: &'a Phrase,
}

pub fn find_overlaps(catalog: &Catalog) -> Vec<Overlap> {
    let items: Vec<Item<'_>> = catalog
        .intents
        .iter()
        .flat_map(|intent| {
            intent
                .phrases
                .iter()
                .filter(|p| p.kind != PhraseKind::Exclude)
                .map(move |phrase| Item {
                    intent: &intent.id,
                    priority: intent.priority,
                    phrase,
                })
        })
        .collect();
    let automaton = match AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(items.iter().map(|i| i.phrase.normalized.as_str()))
    {
        Ok(a) => a,
        Err(_) => return Vec::new(),
    };
    let place = |i: &Item<'_>| {
        format!(
            "{} {} `{}` ({}:{})",
            i.intent,
            kind_name(i.phrase.kind),
            i.phrase.written,
            i.phrase.origin.file,
            i.phrase.origin.line
        )
    };
    let mut out = Vec::new();
    for (outer_idx, outer) in items.iter().enumerate() {
        let text = outer.phrase.normalized.as_str();
        let bytes = text.as_bytes();
        for m in automaton.find_overlapping_iter(text) {
            let inner_idx = m.pattern().as_usize();
            let inner = &items[inner_idx];
            if inner.intent == outer.intent {
                continue;
            }
            let whole_word = (m.start() == 0 || bytes[m.start() - 1] == b' ')
                && (m.end() == bytes.len() || bytes[m.end()] == b' ');
            let same = m.start() == 0 && m.end() == text.len();
            if same {
                // Report each identical pair once.
                if inner_idx < outer_idx {
                    let winner = if inner.priority == outer.priority {
                        format!(
                            "equal priority, so unless other words in the message tip the score, {} wins (ties go to the id that sorts first)",
                            inner.intent.min(outer.intent)
                        )
                    } else if inner.priority > outer.priority {
                        format!("{} wins a tie (higher priority)", inner.intent)
                    } else {
                        format!("{} wins a tie (higher priority)", outer.intent)
                    };
                    out.push(Overlap {
                        identical: true,
                        message: format!(
                            "same keyword in two intents: {} and {}; both score, {winner}",
                            place(inner),
                            place(outer)
                        ),
                    });
                }
            } else if whole_word || !inner.phrase.normalized.is_ascii() {
                out.push(Overlap {
                    identical: false,
                    message: format!(
                        "{} stands inside {}; where the longer one matches, {} wins",
                        place(inner),
                        place(outer),
                        outer.intent
                    ),
                });
            }
        }
    }
    out
}

fn kind_name(kind: PhraseKind) -> &'static str {
    match kind {
        PhraseKind::Keyword => "keyword",
        PhraseKind::Hint => "hint",
        PhraseKind::Exclude => "exclusion",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packs::PackFile;

    #[test]
    fn shared_and_nested_keywords_are_reported() {
        let files = [
            PackFile {
                name: "intents/a.toml".into(),
                text: "priority = 70\n[en]\nkeywords = [\"shipping\", \"order\"]\n".into(),
            },
            PackFile {
                name: "intents/b.toml".into(),
                text: "[en]\nkeywords = [\"shipping\", \"cancel my order\", \"reorder\"]\n".into(),
            },
        ];
        let catalog = Catalog::load(&files).unwrap();
        let report: Vec<String> = find_overlaps(&catalog)
            .into_iter()
            .map(|o| o.message)
            .collect();
        assert_eq!(report.len(), 2, "{report:#?}");
        assert!(
            report[0]
                .contains("same keyword in two intents: a keyword `shipping` (intents/a.toml:3)")
        );
        assert!(report[0].contains("a wins a tie"));
        assert!(report.iter().any(|r| r.contains(
            "a keyword `order` (intents/a.toml:3) stands inside b keyword `cancel my order`"
        )));
        assert!(
            !report.iter().any(|r| r.contains("reorder")),
            "not a whole word"
        );
    }
}
