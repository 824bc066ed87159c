//! `kefu classify` as a user runs it: 1,000,000 JSON lines through the real
//! binary, stdin to stdout. Prints lines per second and the child's peak
//! resident memory (from getrusage), which must stay flat however long the
//! stream is.
//!
//! Run: `cargo bench --bench classify_stream` (KEFU_STREAM_LINES overrides
//! the line count).

use std::io::{BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!("classify_stream: skipped outside `cargo bench`");
        return;
    }
    let lines: usize = std::env::var("KEFU_STREAM_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/tuned");
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(root).expect("corpus") {
        let path = entry.expect("entry").path();
        let body = std::fs::read_to_string(&path).expect("corpus file");
        for line in body.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            texts.push(v["text"].as_str().expect("text").to_string());
        }
    }
    texts.sort();

    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("stream.jsonl");
    {
        let mut w = BufWriter::new(std::fs::File::create(&input).expect("create"));
        for i in 0..lines {
            let text = &texts[(i * 7919) % texts.len()];
            serde_json::to_writer(&mut w, &serde_json::json!({ "id": i, "text": text })).unwrap();
            w.write_all(b"\n").unwrap();
        }
        w.flush().unwrap();
    }
    let input_bytes = std::fs::metadata(&input).unwrap().len();

    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("classify")
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(Stdio::null())
        .status()
        .expect("run kefu classify");
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "kefu classify failed: {status}");

    // SAFETY: getrusage only writes into the struct we hand it.
    let peak_kib = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    };
    println!(
        "kefu classify stream: {lines} lines ({:.1} MB in) in {secs:.2} s = {:.0} lines/s; peak RSS {:.1} MB",
        input_bytes as f64 / 1e6,
        lines as f64 / secs,
        peak_kib as f64 / 1024.0
    );
}
