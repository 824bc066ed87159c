//! Answer or hand over, and why (pure).
//!
//! The bot answers only what it understood: one to three detected topics, none
//! of which the packs send to a person. Everything else goes to a human with a
//! recorded [`Reason`], which agents see and `kefu classify` prints.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::intent::Classification;

/// More distinct topics than this in one message is better handled by a
/// person than by a wall of templates.
pub const MAX_TOPICS: usize = 3;

/// Small talk longer than this many words probably carries a question kefu
/// did not understand ("hi, what's the weather in Paris tomorrow?").
const MAX_SOCIAL_WORDS: u32 = 6;
const MAX_SOCIAL_HAN: u32 = 10;
/// Small talk with a question mark and more words than "hi, are you there?"
/// asks something kefu did not understand.
const MAX_SOCIAL_QUESTION_WORDS: u32 = 4;
/// The same for Chinese, in characters ("你好，在吗？" is still a greeting).
const MAX_SOCIAL_QUESTION_HAN: u32 = 4;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// Reply to these intents, in this order.
    Answer { intents: Vec<Arc<str>> },
    /// Hand over to a person. `intents` are topics whose templates still
    /// help the buyer meanwhile (e.g. product_quality asks for photos).
    Escalate {
        reason: Reason,
        intents: Vec<Arc<str>>,
    },
}

impl Decision {
    pub fn is_answer(&self) -> bool {
        matches!(self, Decision::Answer { .. })
    }

    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Decision::Escalate { reason, .. } => Some(reason),
            Decision::Answer { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No keyword of any intent fired.
    NoMatch,
    /// Only hints fired, not enough to be sure.
    WeakMatch { intent: Arc<str>, score: f32 },
    /// The only candidate was vetoed by an exclusion (an off-topic sense).
    Excluded {
        intent: Arc<str>,
        exclusion: Arc<str>,
    },
    /// The pack sends this intent to a person.
    NeedsPerson { intent: Arc<str> },
    /// Too many topics at once.
    TooManyTopics { count: usize },
    /// A greeting or thanks wrapped around something not understood.
    UnclearSmallTalk,
}

impl Reason {
    /// Stable name for the tickets' reason column and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::NoMatch => "no_match",
            Reason::WeakMatch { .. } => "weak_match",
            Reason::Excluded { .. } => "excluded",
            Reason::NeedsPerson { .. } => "needs_person",
            Reason::TooManyTopics { .. } => "too_many_topics",
            Reason::UnclearSmallTalk => "unclear_small_talk",
        }
    }

    /// Queue priority: 0 urgent, 1 high, 2 normal.
    pub fn priority(&self) -> i64 {
        match self {
            Reason::NeedsPerson { intent } if matches!(&**intent, "complaint" | "refund") => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoMatch => f.write_str("no intent matched: kefu does not know this question"),
            Reason::WeakMatch { intent, score } => write!(
                f,
                "only a weak match for {intent} (score {score:.1} of 1.0 needed): not sure enough to answer"
            ),
            Reason::Excluded { intent, exclusion } => write!(
                f,
                "looked like {intent} but `{exclusion}` marks it as off-topic"
            ),
            Reason::NeedsPerson { intent } => write!(f, "{intent} always goes to a person"),
            Reason::TooManyTopics { count } => write!(
                f,
                "{count} different topics in one message (at most {MAX_TOPICS} are answered automatically)"
            ),
            Reason::UnclearSmallTalk => {
                f.write_str("a greeting or thanks around a question kefu does not understand")
            }
        }
    }
}

pub fn decide(c: &Classification) -> Decision {
    let escalating: Vec<Arc<str>> = c
        .detected
        .iter()
        .filter(|s| s.escalate)
        .map(|s| s.intent.clone())
        .collect();
    if let Some(first) = escalating.first() {
        return Decision::Escalate {
            reason: Reason::NeedsPerson {
                intent: first.clone(),
            },
            intents: escalating,
        };
    }
    let topics: Vec<Arc<str>> = c
        .detected
        .iter()
        .filter(|s| !s.social)
        .map(|s| s.intent.clone())
        .collect();
    if topics.len() > MAX_TOPICS {
        return Decision::Escalate {
            reason: Reason::TooManyTopics {
                count: topics.len(),
            },
            intents: Vec::new(),
        };
    }
    if !topics.is_empty() {
        return Decision::Answer { intents: topics };
    }
    if !c.detected.is_empty() {
        let long = c.stats.words > MAX_SOCIAL_WORDS || c.stats.han_chars > MAX_SOCIAL_HAN;
        let asks = c.stats.questions > 0
            && (c.stats.words > MAX_SOCIAL_QUESTION_WORDS
                || c.stats.han_chars > MAX_SOCIAL_QUESTION_HAN);
        let unclear = !c.weak.is_empty() || !c.vetoed.is_empty();
        if asks || (long && (unclear || c.stats.words > MAX_SOCIAL_WORDS + 2)) {
            return Decision::Escalate {
                reason: Reason::UnclearSmallTalk,
                intents: Vec::new(),
            };
        }
        return Decision::Answer {
            intents: c.detected.iter().map(|s| s.intent.clone()).collect(),
        };
    }
    let reason = if let Some(weak) = c.weak.first() {
        Reason::WeakMatch {
            intent: weak.intent.clone(),
            score: weak.score,
        }
    } else if let Some(veto) = c.vetoed.first() {
        Reason::Excluded {
            intent: veto.intent.clone(),
            exclusion: veto.exclusion.clone(),
        }
    } else {
        Reason::NoMatch
    };
    Decision::Escalate {
        reason,
        intents: Vec::new(),
    }
}

/// How sure kefu is of its best reading, 0–1: a single keyword gives 0.67,
/// two 0.8; weak matches stay at or below 0.5.
pub fn confidence(c: &Classification) -> f32 {
    let score = c
        .best()
        .map(|s| s.score)
        .or_else(|| c.weak.first().map(|s| s.score))
        .unwrap_or(0.0);
    let conf = score / (score + 0.5);
    (conf * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::IntentScore;
    use crate::lang::{Detected, Lang, LangSource};
    use crate::normalize::TextStats;

    fn score(intent: &str, score: f32, escalate: bool, social: bool) -> IntentScore {
        IntentScore {
            intent: intent.into(),
            score,
            priority: 50,
            escalate,
            social,
            matched: Vec::new(),
        }
    }

    fn classification(
        detected: Vec<IntentScore>,
        weak: Vec<IntentScore>,
        words: u32,
    ) -> Classification {
        Classification {
            lang: Detected {
                lang: Lang::En,
                source: LangSource::Words,
            },
            detected,
            weak,
            vetoed: Vec::new(),
            stats: TextStats {
                words,
                ..TextStats::default()
            },
        }
    }

    struct Case {
        name: &'static str,
        input: Classification,
        expect: Decision,
    }

    #[test]
    fn decision_table() {
        let answer = |ids: &[&str]| Decision::Answer {
            intents: ids.iter().map(|s| Arc::from(*s)).collect(),
        };
        let cases = vec![
            Case {
                name: "one topic is answered",
                input: classification(vec![score("refund", 1.0, false, false)], vec![], 4),
                expect: answer(&["refund"]),
            },
            Case {
                name: "greeting is dropped when something is asked",
                input: classification(
                    vec![
                        score("greeting", 1.0, false, true),
                        score("shipping_time", 1.0, false, false),
                    ],
                    vec![],
                    6,
                ),
                expect: answer(&["shipping_time"]),
            },
            Case {
                name: "a bare greeting is answered",
                input: classification(vec![score("greeting", 1.0, false, true)], vec![], 1),
                expect: answer(&["greeting"]),
            },
            Case {
                name: "a greeting around an unknown question escalates",
                input: classification(vec![score("greeting", 1.0, false, true)], vec![], 10),
                expect: Decision::Escalate {
                    reason: Reason::UnclearSmallTalk,
                    intents: vec![],
                },
            },
            Case {
                name: "small talk with a question escalates",
                input: Classification {
                    stats: TextStats {
                        words: 6,
                        questions: 1,
                        ..TextStats::default()
                    },
                    ..classification(vec![score("thanks", 1.0, false, true)], vec![], 6)
                },
                expect: Decision::Escalate {
                    reason: Reason::UnclearSmallTalk,
                    intents: vec![],
                },
            },
            Case {
                name: "an escalating intent wins over answerable ones",
                input: classification(
                    vec![
                        score("order_tracking", 2.0, false, false),
                        score("human", 1.0, true, false),
                    ],
                    vec![],
                    8,
                ),
                expect: Decision::Escalate {
                    reason: Reason::NeedsPerson {
                        intent: "human".into(),
                    },
                    intents: vec!["human".into()],
                },
            },
            Case {
                name: "four topics escalate",
                input: classification(
                    ["a", "b", "c", "d"]
                        .iter()
                        .map(|i| score(i, 1.0, false, false))
                        .collect(),
                    vec![],
                    20,
                ),
                expect: Decision::Escalate {
                    reason: Reason::TooManyTopics { count: 4 },
                    intents: vec![],
                },
            },
            Case {
                name: "weak only",
                input: classification(vec![], vec![score("shipping_time", 0.5, false, false)], 5),
                expect: Decision::Escalate {
                    reason: Reason::WeakMatch {
                        intent: "shipping_time".into(),
                        score: 0.5,
                    },
                    intents: vec![],
                },
            },
            Case {
                name: "nothing",
                input: classification(vec![], vec![], 5),
                expect: Decision::Escalate {
                    reason: Reason::NoMatch,
                    intents: vec![],
                },
            },
        ];
        for case in cases {
            assert_eq!(decide(&case.input), case.expect, "{}", case.name);
        }
    }

    #[test]
    fn confidence_grows_with_evidence() {
        let one = classification(vec![score("refund", 1.0, false, false)], vec![], 3);
        let two = classification(vec![score("refund", 2.0, false, false)], vec![], 3);
        let weak = classification(vec![], vec![score("refund", 0.5, false, false)], 3);
        assert_eq!(confidence(&one), 0.67);
        assert_eq!(confidence(&two), 0.8);
        assert_eq!(confidence(&weak), 0.5);
        assert_eq!(confidence(&classification(vec![], vec![], 3)), 0.0);
    }
}
