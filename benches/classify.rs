//! Throughput of the understanding engine on one core: normalization,
//! language detection, keyword matching, typo tolerance, entities and the
//! answer/escalate decision, over a mixed-language stream of real-looking
//! buyer messages (the labelled corpus, both parts, shuffled).
//!
//! Run: `cargo bench --bench classify`. Besides criterion's timings it prints
//! messages per second and language-detection accuracy on the corpus.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kefu::config::Config;
use kefu::eval::Example;
use kefu::intent::Scratch;
use kefu::packs::PackSource;
use kefu::reply::Style;
use kefu::{Engine, Inbound};

fn corpus() -> Vec<Example> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut examples = Vec::new();
    for part in ["tuned", "heldout"] {
        let mut paths: Vec<_> = std::fs::read_dir(format!("{root}/{part}"))
            .expect("corpus folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("corpus file");
            examples.extend(
                text.lines()
                    .map(|l| Example::parse(l).expect("corpus line")),
            );
        }
    }
    // Interleave languages the way a shared inbox sees them.
    let n = examples.len();
    let mut shuffled = Vec::with_capacity(n);
    let mut i = 0usize;
    for _ in 0..n {
        i = (i + 7919) % n;
        shuffled.push(examples[i].clone());
    }
    shuffled
}

fn engine() -> Engine {
    let config = Config::load(None).expect("built-in config");
    Engine::load(
        &PackSource::builtin(),
        config.facts.clone(),
        config.default_lang().unwrap(),
    )
    .expect("built-in packs")
}

fn bench(c: &mut Criterion) {
    let engine = engine();
    let examples = corpus();
    let bytes: usize = examples.iter().map(|e| e.text.len()).sum();

    // Orientation figures printed once, outside criterion's loop.
    let mut scratch = Scratch::default();
    let mut detected = 0usize;
    let mut labelled = 0usize;
    for ex in &examples {
        let out = engine.understand_with(
            &mut scratch,
            &Inbound {
                text: &ex.text,
                ..Inbound::default()
            },
        );
        if let Some(lang) = ex.lang {
            labelled += 1;
            detected += usize::from(out.lang == lang);
        }
    }
    let rounds = 50;
    let start = Instant::now();
    for _ in 0..rounds {
        for ex in &examples {
            black_box(engine.understand_with(
                &mut scratch,
                &Inbound {
                    text: black_box(&ex.text),
                    ..Inbound::default()
                },
            ));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let per_sec = (rounds * examples.len()) as f64 / secs;
    println!(
        "kefu classify (one core): {} messages ({} bytes avg) x {rounds}: {:.0} messages/s, {:.2} µs/message; language detection {:.1}% ({detected}/{labelled}) on the corpus",
        examples.len(),
        bytes / examples.len(),
        per_sec,
        1e6 / per_sec,
        100.0 * detected as f64 / labelled as f64
    );

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(examples.len() as u64));
    group.bench_function("understand_mixed_corpus", |b| {
        let mut scratch = Scratch::default();
        b.iter(|| {
            for ex in &examples {
                black_box(engine.understand_with(
                    &mut scratch,
                    &Inbound {
                        text: black_box(&ex.text),
                        ..Inbound::default()
                    },
                ));
            }
        })
    });
    group.bench_function("respond_with_reply_mixed_corpus", |b| {
        let mut scratch = Scratch::default();
        b.iter(|| {
            for ex in &examples {
                black_box(engine.respond_with(
                    &mut scratch,
                    &Inbound {
                        text: black_box(&ex.text),
                        style: Style::Chat,
                        ..Inbound::default()
                    },
                ));
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
