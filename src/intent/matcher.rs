//! The compiled matcher: every keyword, hint, exclusion and language cue word
//! in one Aho-Corasick automaton, scanned once per message (pure).
//!
//! [`Matcher::classify`] normalizes the text, scans it, keeps the hits that
//! respect word boundaries, lets longer hits hide the shorter ones inside
//! them, forgives one-letter typos in words the scan did not cover, runs the
//! packs' regular expressions, scores intents and detects the language. The
//! result carries what fired, so every decision can be explained.

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::RegexSet;
use serde::Serialize;

use super::catalog::{Catalog, DETECTION_THRESHOLD, PhraseKind};
use super::fuzzy::{FuzzyIndex, NEVER_CORRECT};
use crate::lang::{CUE_WORDS, Detected, Lang, LangSource, LangVotes, OTHER_CUE_WORDS, detect};
use crate::normalize::{TextStats, needs_boundary, normalize_into};

/// Weight of a fired keyword's language in language detection: the same as
/// a function word, because buyers borrow keywords ("refund", "tracking")
/// from English while writing their own language.
const KEYWORD_LANG_VOTE: f32 = 1.0;

#[derive(Debug, Clone, Copy)]
enum Target {
    Phrase { intent: u16, phrase: u32 },
    Cue { langs: &'static [Lang] },
    OtherCue,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    target: Target,
    /// The hit must start at a word start.
    bounded_start: bool,
    /// The hit must end at a word end.
    bounded_end: bool,
}

/// A phrase as the matcher keeps it.
#[derive(Debug)]
struct PhraseInfo {
    kind: PhraseKind,
    /// Every language whose list has this phrase (e.g. "checkout" in en and de).
    langs: Vec<Lang>,
    written: Arc<str>,
}

#[derive(Debug)]
struct IntentInfo {
    id: Arc<str>,
    priority: i32,
    escalate: bool,
    social: bool,
}

/// What fired for an intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fired {
    /// The keyword as the pack wrote it, or the regular expression.
    pub phrase: Arc<str>,
    pub kind: FiredKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<Lang>,
    /// For a forgiven typo: the word the buyer wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typo: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FiredKind {
    Keyword,
    Hint,
    Exclude,
    Pattern,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentScore {
    pub intent: Arc<str>,
    pub score: f32,
    #[serde(skip)]
    pub priority: i32,
    /// The pack says this intent always goes to a person.
    #[serde(skip)]
    pub escalate: bool,
    /// Greeting or thanks: only answered when nothing else is asked.
    #[serde(skip)]
    pub social: bool,
    pub matched: Vec<Fired>,
}

/// An intent an exclusion vetoed, and the exclusion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Veto {
    pub intent: Arc<str>,
    pub exclusion: Arc<str>,
}

/// Everything the matcher found in one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub lang: Detected,
    /// Intents at or above the detection threshold, best first.
    pub detected: Vec<IntentScore>,
    /// Intents that scored but stayed below the threshold, best first.
    pub weak: Vec<IntentScore>,
    pub vetoed: Vec<Veto>,
    pub stats: TextStats,
}

impl Classification {
    /// The best detected intent that is not small talk, else the best one.
    pub fn best(&self) -> Option<&IntentScore> {
        self.detected
            .iter()
            .find(|s| !s.social)
            .or_else(|| self.detected.first())
    }
}

#[derive(Debug)]
pub struct Matcher {
    automaton: AhoCorasick,
    /// For each automaton pattern, what it stands for (one normalized string
    /// can be a keyword of two intents and a cue word at once).
    entries: Vec<Vec<Entry>>,
    phrases: Vec<PhraseInfo>,
    intents: Vec<IntentInfo>,
    fuzzy: FuzzyIndex,
    patterns: Option<RegexSet>,
    /// For each regex in `patterns`: (intent, weight, source).
    pattern_targets: Vec<(u16, f32, Arc<str>)>,
}

/// Scratch space reused between messages to avoid allocations.
#[derive(Default)]
pub struct Scratch {
    normalized: String,
    /// The message with typos corrected, when there were any.
    corrected: String,
    hits: Vec<Hit>,
    /// A copy of `hits` to compare against while pruning them.
    all_hits: Vec<Hit>,
    token: String,
    /// (start, end) in `corrected` of each corrected word, and the word the
    /// buyer wrote.
    corrections: Vec<(usize, usize, String)>,
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    intent: u16,
    phrase: u32,
    /// Index into `Scratch::corrections` when the hit covers a corrected word.
    typo: Option<usize>,
}

impl Matcher {
    /// Compiles the catalog. The catalog was validated on load, so the only
    /// failure left is an automaton too large to build.
    pub fn new(catalog: &Catalog) -> Result<Matcher, String> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut strings: Vec<String> = Vec::new();
        let mut entries: Vec<Vec<Entry>> = Vec::new();
        let mut add = |text: &str, entry: Entry| {
            let id = *index.entry(text.to_string()).or_insert_with(|| {
                strings.push(text.to_string());
                entries.push(Vec::new());
                strings.len() - 1
            });
            entries[id].push(entry);
        };

        let mut phrases: Vec<PhraseInfo> = Vec::new();
        let mut intents = Vec::new();
        let mut fuzzy = FuzzyIndex::default();
        let mut pattern_sources = Vec::new();
        let mut pattern_targets = Vec::new();
        for (intent_idx, intent) in catalog.intents.iter().enumerate() {
            let intent_idx =
                u16::try_from(intent_idx).map_err(|_| "too many intents (at most 65535)")?;
            intents.push(IntentInfo {
                id: intent.id.as_str().into(),
                priority: intent.priority,
                escalate: intent.escalate,
                social: intent.social,
            });
            // The same phrase listed twice for an intent (in two languages,
            // say) is one phrase: it must not score twice.
            let mut known: HashMap<(PhraseKind, &str, bool, bool), u32> = HashMap::new();
            for phrase in &intent.phrases {
                let key = (
                    phrase.kind,
                    phrase.normalized.as_str(),
                    phrase.open_start,
                    phrase.open_end,
                );
                // Every language's words join the typo vocabulary, even when
                // the phrase itself is shared with another language.
                fuzzy.insert_phrase(
                    &phrase.normalized,
                    phrase.lang,
                    phrase.open_start,
                    phrase.open_end,
                );
                if let Some(&idx) = known.get(&key) {
                    let langs = &mut phrases[idx as usize].langs;
                    if !langs.contains(&phrase.lang) {
                        langs.push(phrase.lang);
                    }
                    continue;
                }
                let phrase_idx = phrases.len() as u32;
                known.insert(key, phrase_idx);
                phrases.push(PhraseInfo {
                    kind: phrase.kind,
                    langs: vec![phrase.lang],
                    written: phrase.written.as_str().into(),
                });
                let first = phrase.normalized.chars().next().unwrap_or(' ');
                let last = phrase.normalized.chars().last().unwrap_or(' ');
                add(
                    &phrase.normalized,
                    Entry {
                        target: Target::Phrase {
                            intent: intent_idx,
                            phrase: phrase_idx,
                        },
                        bounded_start: !phrase.open_start && needs_boundary(first),
                        bounded_end: !phrase.open_end && needs_boundary(last),
                    },
                );
            }
            for pattern in &intent.patterns {
                pattern_sources.push(pattern.regex.clone());
                pattern_targets.push((
                    intent_idx,
                    pattern.weight,
                    Arc::from(pattern.regex.as_str()),
                ));
            }
        }
        for &(word, langs) in CUE_WORDS {
            let bounded = Entry {
                target: Target::Cue { langs },
                bounded_start: true,
                bounded_end: true,
            };
            add(word, bounded);
        }
        for &word in OTHER_CUE_WORDS {
            add(
                word,
                Entry {
                    target: Target::OtherCue,
                    bounded_start: true,
                    bounded_end: true,
                },
            );
        }
        // Words that are themselves common words must never be "corrected"
        // into a keyword.
        for word in CUE_WORDS
            .iter()
            .map(|(w, _)| *w)
            .chain(OTHER_CUE_WORDS.iter().copied())
        {
            fuzzy.protect(word);
        }
        for word in NEVER_CORRECT {
            fuzzy.protect(word);
        }
        fuzzy.finish();

        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&strings)
            .or_else(|_| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&strings)
            })
            .map_err(|e| format!("cannot build the keyword automaton: {e}"))?;
        let patterns = if pattern_sources.is_empty() {
            None
        } else {
            Some(RegexSet::new(&pattern_sources).map_err(|e| format!("invalid pattern: {e}"))?)
        };
        Ok(Matcher {
            automaton,
            entries,
            phrases,
            intents,
            fuzzy,
            patterns,
            pattern_targets,
        })
    }

    pub fn intent_ids(&self) -> impl Iterator<Item = &str> {
        self.intents.iter().map(|i| &*i.id)
    }

    /// Classifies one message. `hint` is the channel's language for the
    /// buyer, `fallback` the conversation's last language or the store default.
    pub fn classify(&self, text: &str, hint: Option<Lang>, fallback: Lang) -> Classification {
        let mut scratch = Scratch::default();
        self.classify_with(&mut scratch, text, hint, fallback)
    }

    /// [`Matcher::classify`] reusing buffers, for streams of messages.
    pub fn classify_with(
        &self,
        scratch: &mut Scratch,
        text: &str,
        hint: Option<Lang>,
        fallback: Lang,
    ) -> Classification {
        let stats = normalize_into(text, &mut scratch.normalized);
        let mut votes = LangVotes::default();
        scratch.hits.clear();
        scratch.corrections.clear();
        self.scan(&scratch.normalized, &mut scratch.hits, Some(&mut votes));

        // Typos: correct the words no hit covers, in the message's language
        // or English, then scan the corrected text instead.
        let mut use_corrected = false;
        if !self.fuzzy.is_empty() {
            // Typos are read in the message's language only (a Portuguese
            // "Recife" is no misspelt English "recipe"); with no clue to the
            // language at all ("grcias"), in any language, as long as the
            // correction is unambiguous.
            let guess = detect(&stats, &votes, hint, fallback);
            let langs: &[Lang] = if guess.source == LangSource::Fallback {
                &Lang::ALL
            } else {
                std::slice::from_ref(&guess.lang)
            };
            if self.correct_typos(scratch, langs) {
                scratch.hits.clear();
                self.scan(&scratch.corrected, &mut scratch.hits, None);
                for hit in scratch.hits.iter_mut() {
                    hit.typo = scratch
                        .corrections
                        .iter()
                        .position(|&(s, e, _)| s < hit.end && hit.start < e);
                }
                use_corrected = true;
            }
        }
        let norm = if use_corrected {
            scratch.corrected.as_str()
        } else {
            scratch.normalized.as_str()
        };
        let hits = &mut scratch.hits;

        // Longer keyword hits hide the shorter ones they contain. Exclusions
        // take no part: they veto their own intent, nothing else, whatever
        // matched around them.
        // A hint never hides a keyword: the weaker reading does not win.
        let kind = |h: &Hit| self.phrases[h.phrase as usize].kind;
        let all = &mut scratch.all_hits;
        all.clear();
        all.extend_from_slice(hits);
        hits.retain(|h| {
            kind(h) == PhraseKind::Exclude
                || !all.iter().any(|g| {
                    kind(g) != PhraseKind::Exclude
                        && kind(g).weight() >= kind(h).weight()
                        && g.start <= h.start
                        && h.end <= g.end
                        && (g.end - g.start) > (h.end - h.start)
                })
        });

        // Score every intent from distinct phrases.
        let n = self.intents.len();
        let mut scores = vec![0f32; n];
        let mut fired: Vec<Vec<Fired>> = vec![Vec::new(); n];
        let mut vetoed: Vec<Veto> = Vec::new();
        // A phrase counts once per message, and so does a stretch of text for
        // one intent: "kaputt" and "kaputt*" on the same word, or "el envío"
        // and "envío a" sharing "envío", are one piece of evidence. Keywords
        // are counted before hints so the stronger reading of a stretch wins.
        hits.sort_by_key(|h| {
            (
                self.phrases[h.phrase as usize].kind != PhraseKind::Keyword,
                h.start,
            )
        });
        let mut seen_phrases: Vec<u32> = Vec::with_capacity(hits.len());
        let mut seen_spans: Vec<(u16, usize, usize)> = Vec::with_capacity(hits.len());
        for hit in hits.iter() {
            let overlaps = |&(intent, start, end): &(u16, usize, usize)| {
                intent == hit.intent && start < hit.end && hit.start < end
            };
            let is_exclusion = self.phrases[hit.phrase as usize].kind == PhraseKind::Exclude;
            if seen_phrases.contains(&hit.phrase)
                || (!is_exclusion && seen_spans.iter().any(overlaps))
            {
                continue;
            }
            seen_phrases.push(hit.phrase);
            if !is_exclusion {
                seen_spans.push((hit.intent, hit.start, hit.end));
            }
            let info = &self.phrases[hit.phrase as usize];
            let intent = hit.intent as usize;
            let typo = hit.typo.map(|i| scratch.corrections[i].2.clone());
            match info.kind {
                PhraseKind::Exclude => {
                    if !vetoed.iter().any(|v| v.intent == self.intents[intent].id) {
                        vetoed.push(Veto {
                            intent: self.intents[intent].id.clone(),
                            exclusion: info.written.clone(),
                        });
                    }
                }
                kind => {
                    scores[intent] += kind.weight();
                    if !info.written.chars().any(|c| !needs_boundary(c)) {
                        let share = KEYWORD_LANG_VOTE / info.langs.len() as f32;
                        for &lang in &info.langs {
                            votes.add(lang, share);
                        }
                    }
                    fired[intent].push(Fired {
                        phrase: info.written.clone(),
                        kind: if kind == PhraseKind::Keyword {
                            FiredKind::Keyword
                        } else {
                            FiredKind::Hint
                        },
                        lang: info.langs.first().copied(),
                        typo,
                    });
                }
            }
        }
        if let Some(set) = &self.patterns {
            for i in set.matches(norm).iter() {
                let (intent, weight, ref source) = self.pattern_targets[i];
                scores[intent as usize] += weight;
                fired[intent as usize].push(Fired {
                    phrase: source.clone(),
                    kind: FiredKind::Pattern,
                    lang: None,
                    typo: None,
                });
            }
        }

        let mut detected = Vec::new();
        let mut weak = Vec::new();
        for (i, matched) in fired.into_iter().enumerate() {
            if matched.is_empty() {
                continue;
            }
            let info = &self.intents[i];
            if vetoed.iter().any(|v| v.intent == info.id) {
                continue;
            }
            let score = IntentScore {
                intent: info.id.clone(),
                score: scores[i],
                priority: info.priority,
                escalate: info.escalate,
                social: info.social,
                matched,
            };
            if score.score >= DETECTION_THRESHOLD {
                detected.push(score);
            } else {
                weak.push(score);
            }
        }
        let order = |a: &IntentScore, b: &IntentScore| {
            b.score
                .total_cmp(&a.score)
                .then(b.priority.cmp(&a.priority))
                .then(a.intent.cmp(&b.intent))
        };
        detected.sort_by(order);
        weak.sort_by(order);
        let lang = detect(&stats, &votes, hint, fallback);
        Classification {
            lang,
            detected,
            weak,
            vetoed,
            stats,
        }
    }

    /// Runs the automaton over normalized text: phrase hits that respect
    /// word boundaries go to `hits`, cue words to `votes`.
    fn scan(&self, norm: &str, hits: &mut Vec<Hit>, mut votes: Option<&mut LangVotes>) {
        let bytes = norm.as_bytes();
        for m in self.automaton.find_overlapping_iter(norm) {
            let (start, end) = (m.start(), m.end());
            let at_word_start = start == 0 || bytes[start - 1] == b' ';
            let at_word_end = end == bytes.len() || bytes[end] == b' ';
            for entry in &self.entries[m.pattern().as_usize()] {
                if (entry.bounded_start && !at_word_start) || (entry.bounded_end && !at_word_end) {
                    continue;
                }
                match (entry.target, votes.as_deref_mut()) {
                    (Target::Phrase { intent, phrase }, _) => hits.push(Hit {
                        start,
                        end,
                        intent,
                        phrase,
                        typo: None,
                    }),
                    (Target::Cue { langs }, Some(votes)) => {
                        for &lang in langs {
                            votes.add(lang, 1.0 / langs.len() as f32);
                        }
                    }
                    (Target::OtherCue, Some(votes)) => votes.add_other(1.0),
                    (_, None) => {}
                }
            }
        }
    }

    /// Writes `scratch.corrected` with every uncovered word that is a clear
    /// typo of a vocabulary word replaced; false when nothing was corrected.
    fn correct_typos(&self, scratch: &mut Scratch, langs: &[Lang]) -> bool {
        let norm = scratch.normalized.as_str();
        let corrected = &mut scratch.corrected;
        corrected.clear();
        let mut pos = 0;
        for word in norm.split(' ') {
            let (start, end) = (pos, pos + word.len());
            pos = end + 1;
            if !corrected.is_empty() {
                corrected.push(' ');
            }
            let covered = scratch.hits.iter().any(|h| h.start < end && start < h.end);
            let fix = if covered || !FuzzyIndex::worth_checking(word) {
                None
            } else {
                self.fuzzy.correct(word, langs, &mut scratch.token)
            };
            match fix {
                Some(fixed) => {
                    let at = corrected.len();
                    corrected.push_str(fixed);
                    scratch
                        .corrections
                        .push((at, corrected.len(), word.to_string()));
                }
                None => corrected.push_str(word),
            }
        }
        !scratch.corrections.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packs::PackFile;

    fn matcher() -> Matcher {
        let file = |name: &str, text: &str| PackFile {
            name: format!("intents/{name}.toml"),
            text: text.to_string(),
        };
        let catalog = Catalog::load(&[
            file(
                "shipping_time",
                "[en]\nkeywords = [\"ship\", \"how long does delivery take\"]\nhints = [\"how long\", \"long for\", \"parcel\"]\nexclude = [\"how long to boil\"]\n[ru]\nkeywords = [\"доставк*\"]\n[zh]\nkeywords = [\"多久到\"]\n",
            ),
            file(
                "tariffs",
                "[en]\nkeywords = [\"customs\", \"tax*\"]\nexclude = [\"taxi\", \"income tax\"]\n",
            ),
            file(
                "refund",
                "priority = 60\n[en]\nkeywords = [\"refund\", \"money back\"]\n[de]\nkeywords = [\"kaputt\", \"kaputt*\"]\n",
            ),
            file("cancel_order", "[en]\nkeywords = [\"cancel my order\"]\n"),
            file("order_tracking", "[en]\nhints = [\"order\"]\n[de]\nkeywords = [\"*nummer\"]\n"),
            file("greeting", "social = true\n[en]\nkeywords = [\"hello\"]\n"),
        ])
        .unwrap();
        Matcher::new(&catalog).unwrap()
    }

    struct Case {
        name: &'static str,
        text: &'static str,
        detected: &'static [&'static str],
        weak: &'static [&'static str],
    }

    #[test]
    fn matching_table() {
        let m = matcher();
        let cases = [
            Case {
                name: "whole word",
                text: "When will you SHIP it?",
                detected: &["shipping_time"],
                weak: &[],
            },
            Case {
                name: "no hit inside a longer word",
                text: "our relationship is great",
                detected: &[],
                weak: &[],
            },
            Case {
                name: "stem takes endings",
                text: "сколько идёт доставка?",
                detected: &["shipping_time"],
                weak: &[],
            },
            Case {
                name: "stem still needs a word start",
                text: "syntax error",
                detected: &[],
                weak: &[],
            },
            Case {
                name: "leading star matches compounds",
                text: "Wo ist die Sendungsnummer",
                detected: &["order_tracking"],
                weak: &[],
            },
            Case {
                name: "chinese has no word boundaries",
                text: "亲，这个多久到啊",
                detected: &["shipping_time"],
                weak: &[],
            },
            Case {
                name: "two hints make a detection",
                text: "how long for my parcel",
                detected: &["shipping_time"],
                weak: &[],
            },
            Case {
                name: "one hint is weak",
                text: "how long are you open",
                detected: &[],
                weak: &["shipping_time"],
            },
            Case {
                name: "exclusion vetoes its intent",
                text: "how long to boil an egg, how long exactly",
                detected: &[],
                weak: &[],
            },
            Case {
                name: "exclusion taxi",
                text: "my taxi is late",
                detected: &[],
                weak: &[],
            },
            Case {
                name: "exclusion income tax",
                text: "how much is income tax here",
                detected: &[],
                weak: &[],
            },
            Case {
                name: "longer keyword hides the shorter",
                text: "please cancel my order",
                detected: &["cancel_order"],
                weak: &[],
            },
            Case {
                name: "two intents, best first by score then priority",
                text: "refund or customs?",
                detected: &["refund", "tariffs"],
                weak: &[],
            },
            Case {
                name: "typo forgiven",
                text: "i want a refnd",
                detected: &["refund"],
                weak: &[],
            },
            Case {
                name: "a stretch of text counts once per intent",
                text: "kaputt",
                detected: &["refund"],
                weak: &[],
            },
            Case {
                name: "full width and accents",
                text: "ＣＵＳＴＯＭＳ?",
                detected: &["tariffs"],
                weak: &[],
            },
        ];
        for case in cases {
            let c = m.classify(case.text, None, Lang::En);
            let detected: Vec<&str> = c.detected.iter().map(|s| &*s.intent).collect();
            let weak: Vec<&str> = c.weak.iter().map(|s| &*s.intent).collect();
            assert_eq!(detected, case.detected, "{}: detected", case.name);
            assert_eq!(weak, case.weak, "{}: weak", case.name);
        }
    }

    #[test]
    fn explanations_name_what_fired() {
        let m = matcher();
        let c = m.classify("refnd pls, hello", None, Lang::En);
        let refund = &c
            .detected
            .iter()
            .find(|s| &*s.intent == "refund")
            .unwrap()
            .matched[0];
        assert_eq!(&*refund.phrase, "refund");
        assert_eq!(refund.typo.as_deref(), Some("refnd"));
        assert_eq!(
            c.best().map(|s| &*s.intent),
            Some("refund"),
            "small talk is never best when something is asked"
        );
        let kaputt = m.classify("kaputt", None, Lang::En);
        assert_eq!(kaputt.detected[0].score, 1.0);
        let vetoed = m.classify("my taxi", None, Lang::En);
        assert_eq!(&*vetoed.vetoed[0].exclusion, "taxi");
    }
}
