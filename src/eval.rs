//! Scoring the packs against a labelled corpus: `kefu eval` (pure).
//!
//! Per intent precision, recall and F1; per language intent accuracy and
//! language-detection accuracy; the most frequent confusions; and the
//! off-topic false-answer rate — how often kefu answered a message it should
//! have handed to a person.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Inbound};
use crate::intent::Scratch;
use crate::lang::Lang;

/// One labelled line of a corpus file.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub text: String,
    /// Intents that are right as the first one; empty for off-topic.
    pub accept: Vec<String>,
    pub lang: Option<Lang>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    text: String,
    #[serde(default, deserialize_with = "deserialize_some")]
    intent: Option<Option<String>>,
    accept: Option<Vec<String>>,
    lang: Option<String>,
}

fn deserialize_some<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl Example {
    /// Parses a corpus line; the error says what is wrong with it.
    pub fn parse(line: &str) -> Result<Example, String> {
        let raw: RawExample =
            serde_json::from_str(line).map_err(|e| format!("not a corpus line: {e}"))?;
        let accept = match (raw.intent, raw.accept) {
            (Some(_), Some(_)) => {
                return Err("give either \"intent\" or \"accept\", not both".into());
            }
            (Some(intent), None) => intent.into_iter().collect(),
            (None, Some(list)) if !list.is_empty() => list,
            (None, Some(_)) => {
                return Err("\"accept\" is empty; use \"intent\": null for off-topic lines".into());
            }
            (None, None) => {
                return Err(
                    "missing \"intent\" (an intent id, or null for off-topic) or \"accept\": [ids]"
                        .into(),
                );
            }
        };
        let lang = match raw.lang {
            Some(code) => Some(code.parse::<Lang>()?),
            None => None,
        };
        Ok(Example {
            text: raw.text,
            accept,
            lang,
        })
    }

    pub fn is_off_topic(&self) -> bool {
        self.accept.is_empty()
    }
}

/// What kefu did with one example.
#[derive(Debug, Clone)]
pub struct Prediction<'a> {
    pub intent: Option<&'a str>,
    pub answered: bool,
    pub lang: Lang,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Tally {
    pub correct: usize,
    pub total: usize,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.total += 1;
        self.correct += usize::from(ok);
    }

    pub fn rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct IntentCounts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl IntentCounts {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

const OFF_TOPIC: &str = "(off-topic)";
const UNKNOWN: &str = "(unknown)";

#[derive(Debug, Default, Clone, Serialize)]
pub struct Evaluation {
    pub overall: Tally,
    /// Intent accuracy by the example's language.
    pub by_lang: BTreeMap<Lang, Tally>,
    /// Language detection by the example's language.
    pub lang_detection: BTreeMap<Lang, Tally>,
    pub intents: BTreeMap<String, IntentCounts>,
    /// (expected, predicted) → count, for wrong predictions.
    pub confusions: BTreeMap<(String, String), usize>,
    /// Off-topic examples: `correct` = escalated, the rest were answered.
    pub off_topic: Tally,
}

impl Evaluation {
    /// Runs one example through the engine, without a language hint (the
    /// corpus checks detection too), and counts the result.
    pub fn run(&mut self, engine: &Engine, scratch: &mut Scratch, example: &Example) {
        let outcome = engine.understand_with(
            scratch,
            &Inbound {
                text: &example.text,
                ..Inbound::default()
            },
        );
        self.add(
            example,
            &Prediction {
                intent: outcome.classification.best().map(|s| &*s.intent),
                answered: outcome.decision.is_answer(),
                lang: outcome.lang,
            },
        );
    }

    pub fn add(&mut self, example: &Example, predicted: &Prediction<'_>) {
        let ok = if example.is_off_topic() {
            !predicted.answered
        } else {
            predicted
                .intent
                .is_some_and(|p| example.accept.iter().any(|a| a == p))
        };
        self.overall.add(ok);
        if let Some(lang) = example.lang {
            self.by_lang.entry(lang).or_default().add(ok);
            self.lang_detection
                .entry(lang)
                .or_default()
                .add(predicted.lang == lang);
        }
        if example.is_off_topic() {
            self.off_topic.add(!predicted.answered);
        }
        let expected = example.accept.first().map(String::as_str);
        if let Some(p) = predicted.intent {
            let counts = self.intents.entry(p.to_string()).or_default();
            if example.accept.iter().any(|a| a == p) {
                counts.tp += 1;
            } else {
                counts.fp += 1;
            }
        }
        if let Some(e) = expected {
            if !ok {
                self.intents.entry(e.to_string()).or_default().fn_ += 1;
            } else {
                self.intents.entry(e.to_string()).or_default();
            }
        }
        if !ok {
            let key = (
                expected.unwrap_or(OFF_TOPIC).to_string(),
                predicted.intent.unwrap_or(UNKNOWN).to_string(),
            );
            *self.confusions.entry(key).or_default() += 1;
        }
    }

    /// Off-topic messages that got an answer, as a share of all off-topic ones.
    pub fn false_answer_rate(&self) -> f64 {
        1.0 - self.off_topic.rate()
    }

    pub fn lang_detection_overall(&self) -> Tally {
        let mut t = Tally::default();
        for v in self.lang_detection.values() {
            t.correct += v.correct;
            t.total += v.total;
        }
        t
    }

    /// The plain-text report `kefu eval` prints.
    pub fn render(&self, top_confusions: usize) -> String {
        let mut out = String::new();
        let pct = |x: f64| format!("{:5.1}%", x * 100.0);
        let _ = writeln!(
            out,
            "{:<18} {:>9} {:>9} {:>9} {:>7}",
            "intent", "precision", "recall", "f1", "tp/fp/fn"
        );
        for (intent, c) in &self.intents {
            let _ = writeln!(
                out,
                "{:<18} {:>9} {:>9} {:>9} {:>7}",
                intent,
                pct(c.precision()),
                pct(c.recall()),
                pct(c.f1()),
                format!("{}/{}/{}", c.tp, c.fp, c.fn_)
            );
        }
        let _ = writeln!(
            out,
            "\n{:<6} {:>16} {:>22}",
            "lang", "intent accuracy", "language detection"
        );
        for (lang, t) in &self.by_lang {
            let d = self.lang_detection.get(lang).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<6} {:>7} {:>8} {:>11} {:>10}",
                lang.code(),
                pct(t.rate()),
                format!("{}/{}", t.correct, t.total),
                pct(d.rate()),
                format!("{}/{}", d.correct, d.total)
            );
        }
        let d = self.lang_detection_overall();
        let _ = writeln!(
            out,
            "{:<6} {:>7} {:>8} {:>11} {:>10}",
            "all",
            pct(self.overall.rate()),
            format!("{}/{}", self.overall.correct, self.overall.total),
            pct(d.rate()),
            format!("{}/{}", d.correct, d.total)
        );
        let _ = writeln!(
            out,
            "\noff-topic false answers: {} ({} of {} off-topic messages were answered)",
            pct(self.false_answer_rate()),
            self.off_topic.total - self.off_topic.correct,
            self.off_topic.total
        );
        let mut confusions: Vec<_> = self.confusions.iter().collect();
        confusions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !confusions.is_empty() {
            let _ = writeln!(out, "\ntop confusions (expected → got):");
            for ((expected, got), n) in confusions.into_iter().take(top_confusions) {
                let _ = writeln!(out, "  {n:>4}  {expected} → {got}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_lines_parse_with_clear_errors() {
        let e = Example::parse(r#"{"text":"hi","intent":"greeting","lang":"en"}"#).unwrap();
        assert_eq!(e.accept, vec!["greeting"]);
        let off = Example::parse(r#"{"text":"weather?","intent":null}"#).unwrap();
        assert!(off.is_off_topic());
        let multi = Example::parse(r#"{"text":"x","accept":["a","b"],"lang":"es"}"#).unwrap();
        assert_eq!(multi.lang, Some(Lang::Es));
        assert!(
            Example::parse(r#"{"text":"x"}"#)
                .unwrap_err()
                .contains("missing \"intent\"")
        );
        assert!(
            Example::parse(r#"{"text":"x","intent":"a","accept":["b"]}"#)
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            Example::parse(r#"{"text":"x","intent":"a","lang":"xx"}"#)
                .unwrap_err()
                .contains("unknown language")
        );
        assert!(
            Example::parse("not json")
                .unwrap_err()
                .contains("not a corpus line")
        );
    }

    #[test]
    fn metrics_count_what_they_say() {
        let mut eval = Evaluation::default();
        let ex = |text: &str, accept: &[&str], lang| Example {
            text: text.into(),
            accept: accept.iter().map(|s| s.to_string()).collect(),
            lang: Some(lang),
        };
        let p = |intent, answered, lang| Prediction {
            intent,
            answered,
            lang,
        };
        eval.add(
            &ex("a", &["refund"], Lang::En),
            &p(Some("refund"), true, Lang::En),
        );
        eval.add(
            &ex("b", &["refund"], Lang::En),
            &p(Some("returns"), true, Lang::En),
        );
        eval.add(
            &ex("c", &["returns", "refund"], Lang::Es),
            &p(Some("refund"), true, Lang::Pt),
        );
        eval.add(&ex("d", &[], Lang::Es), &p(None, false, Lang::Es));
        eval.add(&ex("e", &[], Lang::En), &p(Some("tariffs"), true, Lang::En));
        assert_eq!((eval.overall.correct, eval.overall.total), (3, 5));
        assert_eq!(eval.by_lang[&Lang::En].correct, 1);
        assert_eq!(eval.by_lang[&Lang::Es].correct, 2);
        assert_eq!(eval.lang_detection[&Lang::Es].correct, 1);
        let refund = eval.intents["refund"];
        assert_eq!((refund.tp, refund.fp, refund.fn_), (2, 0, 1));
        assert_eq!(eval.intents["tariffs"].fp, 1);
        assert!((eval.false_answer_rate() - 0.5).abs() < 1e-9);
        let report = eval.render(5);
        assert!(report.contains("refund → returns"), "{report}");
        assert!(report.contains("(off-topic) → tariffs"), "{report}");
    }
}
