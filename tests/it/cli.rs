//! The `kefu` binary as a user runs it, from an empty directory (built-in
//! packs and defaults, no kefu.toml).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kefu(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    kefu_in(dir.path(), args, stdin)
}

fn kefu_in(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .current_dir(cwd)
        .env_remove("KEFU_PACKS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kefu");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = kefu(args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn english_tracking_question_is_answered_with_the_number() {
    let v = json(&["reply", "where is my package RR123456789CN?", "--json"]);
    assert_eq!(v["action"], "answer");
    assert_eq!(v["lang"], "en");
    assert_eq!(v["intent"], "order_tracking");
    assert!(
        v["reply"].as_str().unwrap().contains("RR123456789CN"),
        "{v}"
    );
}

#[test]
fn chinese_delivery_question_is_answered_in_chinese() {
    let v = json(&["reply", "包裹什么时候到？", "--json"]);
    assert_eq!(v["action"], "answer");
    assert_eq!(v["lang"], "zh");
    let reply = v["reply"].as_str().unwrap();
    assert!(
        reply
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{reply}"
    );
}

#[test]
fn spanish_two_questions_get_one_reply_answering_both() {
    let v = json(&[
        "reply",
        "¿cuánto tarda el envío a México y pagaré aduana?",
        "--json",
    ]);
    assert_eq!(v["action"], "answer", "{v}");
    assert_eq!(v["lang"], "es");
    let intents: Vec<&str> = v["intents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        intents.contains(&"shipping_time") && intents.contains(&"tariffs"),
        "{intents:?}"
    );
    let reply = v["reply"].as_str().unwrap();
    // The transit fact from the built-in profile, and a Spanish customs answer.
    assert!(reply.contains("25–60"), "{reply}");
    assert!(reply.to_lowercase().contains("aduan"), "{reply}");
}

#[test]
fn weather_question_escalates_with_a_reason() {
    let out = kefu(&["reply", "what's the weather today"], None);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("escalate to a person"), "{text}");
    let v = json(&["reply", "what's the weather today", "--json"]);
    assert_eq!(v["action"], "escalate");
    assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()));
}

#[test]
fn mail_style_has_salutation_and_closing() {
    let v = json(&[
        "reply",
        "can I return these shoes?",
        "--style",
        "mail",
        "--name",
        "Ana",
        "--json",
    ]);
    let reply = v["reply"].as_str().unwrap();
    assert!(reply.starts_with("Dear Ana"), "{reply}");
    assert!(
        reply.trim_end().ends_with("Demo Store customer service") || reply.contains("Demo Store"),
        "{reply}"
    );
}

#[test]
fn settings_come_from_kefu_toml_then_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kefu.toml"),
        "[facts]\nstore_name = \"File Shop\"\nhandling_days = \"1–2\"\n",
    )
    .unwrap();
    let out = kefu_in(
        dir.path(),
        &["reply", "when will you ship my order?", "--style", "mail"],
        None,
    );
    let text = stdout(&out);
    assert!(text.contains("File Shop") && text.contains("1–2"), "{text}");

    let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["reply", "when will you ship my order?", "--style", "mail"])
        .current_dir(dir.path())
        .env("KEFU_FACTS__STORE_NAME", "Env Shop")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("Env Shop") && text.contains("1–2"), "{text}");

    std::fs::write(
        dir.path().join("kefu.toml"),
        "[store]\ndefault_lang = \"klingon\"\n",
    )
    .unwrap();
    let out = kefu_in(dir.path(), &["reply", "hi"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("store.default_lang: unknown language `klingon`")
    );
}

#[test]
fn lang_hint_wins() {
    let v = json(&["reply", "refund", "--lang", "pt-BR", "--json"]);
    assert_eq!(v["lang"], "pt");
    assert_eq!(v["lang_source"], "hint");
}

#[test]
fn classify_streams_and_reports_bad_lines_in_place() {
    let mut input = "{\"text\": \"hola, ¿dónde está mi pedido?\", \"id\": 7}\nnot json\n\n{\"text\": \"how much is shipping to Canada\", \"lang\": \"en\"}\n"
        .as_bytes()
        .to_vec();
    input.extend_from_slice(b"\xff\xfe\n{\"text\": \"tell me a joke\"}\n");
    let out = kefu(&["classify"], Some(&input));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert_eq!(lines[0]["id"], 7);
    assert_eq!(lines[0]["lang"], "es");
    assert_eq!(lines[0]["intent"], "order_tracking");
    assert_eq!(lines[0]["action"], "answer");
    assert!(
        lines[0]["matched"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(lines[1]["line"], 2);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object")
    );
    assert_eq!(lines[2]["intent"], "shipping_cost");
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8")
    );
    assert_eq!(lines[4]["action"], "escalate");
    assert_eq!(lines[4]["intent"], serde_json::Value::Null);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 6 lines could not be read"));
}

#[test]
fn check_passes_on_the_built_in_packs() {
    let out = kefu(&["check"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).starts_with("ok: 20 intents, replies in 7"),
        "{}",
        stdout(&out)
    );
}

fn copy_packs(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["intents", "replies"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, to.join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn check_names_file_and_line_of_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    copy_packs(dir.path());
    let refund = dir.path().join("intents/refund.toml");
    let text = std::fs::read_to_string(&refund).unwrap();
    // Two problems in one file, one in another: all three must be reported.
    let broken = text
        .replacen("[en]\n", "[en]\nkeywrds = [\"money back\"]\n", 1)
        .replacen("priority = ", "priority = -", 1);
    std::fs::write(&refund, broken).unwrap();
    let en = dir.path().join("replies/en.toml");
    let replies =
        std::fs::read_to_string(&en)
            .unwrap()
            .replacen("{handling_days}", "{handling_dayz}", 1);
    std::fs::write(&en, replies).unwrap();

    let out = kefu_in(dir.path(), &["check", "--packs", "."], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("intents/refund.toml:"), "{err}");
    assert!(err.contains("unknown key `keywrds` in [en]"), "{err}");
    assert!(err.contains("priority -"), "{err}");
    assert!(
        err.contains("replies/en.toml:") && err.contains("unknown placeholder {handling_dayz}"),
        "{err}"
    );
    assert!(err.contains("3 problems in the packs"), "{err}");
    let line = err.lines().find(|l| l.contains("keywrds")).unwrap();
    let (_, rest) = line.split_once("refund.toml:").unwrap();
    let n: usize = rest.split(':').next().unwrap().parse().unwrap();
    let in_file = std::fs::read_to_string(&refund).unwrap();
    assert!(
        in_file.lines().nth(n - 1).unwrap().starts_with("keywrds"),
        "line {n} is the broken one"
    );

    // A broken pack also stops `reply`: kefu refuses to start on it.
    let out = kefu_in(dir.path(), &["reply", "hi", "--packs", "."], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn eval_prints_every_section() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/tuned/de.jsonl");
    let out = kefu(&["eval", corpus.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for section in [
        "precision",
        "recall",
        "intent accuracy",
        "language detection",
        "off-topic false answers",
    ] {
        assert!(text.contains(section), "missing {section} in\n{text}");
    }
}

/// `kefu serve` as an operator runs it: built-in defaults in an empty
/// directory, a message in, SIGTERM, a clean exit with the reply logged.
#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("KEFU_PIPELINE__COALESCE_MS", "10")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("kefu never logged {needle:?}");
    };
    let serving = wait_for("kefu is serving");
    let address = serving
        .split("address=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let body =
        r#"{"message_id":"m1","conversation_id":"c1","text":"where is my package RR123456789CN?"}"#;
    let status = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ])
        .arg(format!("http://{address}/v1/channels/demo/messages"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    let status = match status {
        Ok(s) => s,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("SKIPPED: curl is not installed");
            return;
        }
    };
    assert_eq!(status, "202");
    let reply = wait_for("reply (no callback_url configured");
    assert!(reply.contains("RR123456789CN"), "{reply}");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_for("kefu stopped");
    assert!(child.wait().unwrap().success());
    assert!(
        dir.path().join("data/kefu.db").exists(),
        "the SQLite file is in ./data"
    );
}
