//! The built-in packs against `tests/corpus/`: the tuned part must stay at
//! 95% intent accuracy per language, off-topic false answers at 3% or less
//! (over both parts), language detection at 98% or more; the held-out part
//! is guarded against regressions (its 90% target is not reached yet).

use std::path::Path;

use kefu::config::Config;
use kefu::eval::{Evaluation, Example};
use kefu::intent::Scratch;
use kefu::packs::PackSource;
use kefu::{Engine, Lang};

fn engine() -> Engine {
    let config = Config::load(None).expect("built-in config");
    Engine::load(
        &PackSource::builtin(),
        config.facts.clone(),
        config.default_lang().unwrap(),
    )
    .expect("built-in packs load")
}

fn evaluate(engine: &Engine, part: &str) -> Evaluation {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(part);
    let mut evaluation = Evaluation::default();
    let mut scratch = Scratch::default();
    for lang in Lang::ALL {
        let path = dir.join(format!("{}.jsonl", lang.code()));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (i, line) in text.lines().enumerate() {
            let example = Example::parse(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            evaluation.run(engine, &mut scratch, &example);
        }
    }
    evaluation
}

/// What a part of the corpus must reach.
struct Targets {
    /// Intent accuracy, every language.
    accuracy: f64,
    /// Off-topic messages answered, at most (the target of 3% is
    /// checked over both parts together, see `off_topic_false_answers`).
    false_answers: f64,
}

fn assert_targets(part: &str, targets: Targets) {
    let engine = engine();
    let evaluation = evaluate(&engine, part);
    let report = evaluation.render(30);
    let mut failures = Vec::new();
    for lang in Lang::ALL {
        let tally = evaluation.by_lang.get(&lang).copied().unwrap_or_default();
        assert!(
            tally.total >= 60,
            "{part}/{lang}.jsonl has only {} lines",
            tally.total
        );
        if tally.rate() < targets.accuracy {
            failures.push(format!(
                "{lang}: intent accuracy {:.1}% < {:.0}%",
                tally.rate() * 100.0,
                targets.accuracy * 100.0
            ));
        }
    }
    if evaluation.false_answer_rate() > targets.false_answers {
        failures.push(format!(
            "off-topic false answers {:.1}% > {:.0}%",
            evaluation.false_answer_rate() * 100.0,
            targets.false_answers * 100.0
        ));
    }
    let detection = evaluation.lang_detection_overall();
    if detection.rate() < 0.98 {
        failures.push(format!(
            "language detection {:.1}% < 98%",
            detection.rate() * 100.0
        ));
    }
    assert!(
        failures.is_empty(),
        "{part} corpus below target:\n{}\n\n{report}",
        failures.join("\n")
    );
    println!("{part}:\n{report}");
}

#[test]
fn tuned_corpus_meets_targets() {
    assert_targets(
        "tuned",
        Targets {
            accuracy: 0.95,
            false_answers: 0.03,
        },
    );
}

/// The target for the held-out part is 90% per language; on
/// 2026-11-22 zh, pt and de stand at 85.7–88.7% (README, "Accuracy"). Until
/// they get there this guards against regressions at 85% and 7% false
/// answers (3 of 49 held-out off-topic lines); raise the floor with them.
#[test]
fn heldout_corpus_does_not_regress() {
    assert_targets(
        "heldout",
        Targets {
            accuracy: 0.85,
            false_answers: 0.07,
        },
    );
}

#[test]
fn off_topic_false_answers_stay_under_3_percent() {
    let engine = engine();
    let mut answered = 0;
    let mut total = 0;
    for part in ["tuned", "heldout"] {
        let e = evaluate(&engine, part);
        answered += e.off_topic.total - e.off_topic.correct;
        total += e.off_topic.total;
    }
    let rate = answered as f64 / total as f64;
    assert!(
        rate <= 0.03,
        "{answered} of {total} off-topic messages answered ({:.1}%)",
        rate * 100.0
    );
}

#[test]
fn corpus_has_the_promised_size() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/tuned");
    let mut off_topic = 0;
    for lang in Lang::ALL {
        let text = std::fs::read_to_string(dir.join(format!("{}.jsonl", lang.code()))).unwrap();
        let mut per_intent = std::collections::BTreeMap::<String, usize>::new();
        for line in text.lines() {
            let example = Example::parse(line).unwrap();
            if example.is_off_topic() {
                off_topic += 1;
            }
            for intent in example.accept {
                *per_intent.entry(intent).or_default() += 1;
            }
        }
        let need = if matches!(lang, Lang::En | Lang::Zh) {
            25
        } else {
            10
        };
        assert_eq!(per_intent.len(), 20, "{lang}: every intent is represented");
        for (intent, n) in per_intent {
            assert!(n >= need, "{lang}/{intent}: {n} examples, need {need}");
        }
    }
    assert!(off_topic >= 150, "{off_topic} off-topic examples, need 150");
}
