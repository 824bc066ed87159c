//! The `kefu` command line: `serve`, `reply`, `classify`, `eval`, `check`,
//! and `agent …` (in [`agent`]).
//!
//! Exit codes: 0 success, 1 a check or evaluation found problems, 2 kefu
//! could not start (bad configuration or packs, unreadable input file).

use std::borrow::Cow;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::config::Config;
use crate::engine::{Engine, Inbound};
use crate::eval::{Evaluation, Example};
use crate::intent::{FiredKind, Scratch};
use crate::lang::Lang;
use crate::packs::PackSource;
use crate::policy::Decision;
use crate::reply::Style;

mod agent;

pub use agent::AgentCommand;

#[derive(Debug, Parser)]
#[command(
    name = "kefu",
    version,
    about = "Multilingual auto-responder for cross-border e-commerce customer service"
)]
pub struct Cli {
    /// Settings file (default: ./kefu.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory with the store's own intents/ and replies/ (default: the packs built into kefu).
    #[arg(long, global = true, value_name = "DIR")]
    pub packs: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: webhooks and pollers in, replies out (defaults: 127.0.0.1:8080, SQLite in ./data).
    Serve {
        /// Address to listen on (overrides server.listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Show what a buyer writing TEXT would receive, or that it goes to a person and why.
    Reply {
        text: String,
        /// The buyer's language as the channel reports it (en, zh, pt-BR …).
        #[arg(long, value_name = "LANG")]
        lang: Option<String>,
        #[arg(long, value_enum, default_value_t = Style::Chat)]
        style: Style,
        /// The buyer's name, for mail salutations.
        #[arg(long)]
        name: Option<String>,
        /// Print the full reading as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Classify JSON lines from stdin ({"text": "...", "lang": "optional hint"}), one JSON result per line on stdout.
    Classify,
    /// Score the packs against labelled JSON-lines files ({"text", "intent" | "accept", "lang"}).
    Eval {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How many confusions to list.
        #[arg(long, default_value_t = 15)]
        top: usize,
    },
    /// Validate the packs: every problem with file:line, replies for every intent and language, known placeholders, overlapping keywords.
    Check {
        /// Also list keywords that stand inside a longer keyword of another intent.
        #[arg(long)]
        all_overlaps: bool,
    },
    /// Manage the people who answer escalated conversations and their tokens.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    if let Command::Serve { listen } = &cli.command {
        return serve(&cli, listen.clone());
    }
    if let Command::Agent { command } = cli.command {
        return agent::run(cli.config.as_deref(), command);
    }
    let engine = match load_engine(&cli) {
        Ok(engine) => engine,
        Err(message) => {
            eprintln!("kefu: {message}");
            // For `check`, broken packs are the finding, not a failure to run.
            let code = if matches!(cli.command, Command::Check { .. }) {
                1
            } else {
                2
            };
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Serve { .. } | Command::Agent { .. } => unreachable!("handled above"),
        Command::Reply {
            text,
            lang,
            style,
            name,
            json,
        } => reply(
            &engine,
            &text,
            lang.as_deref(),
            style,
            name.as_deref(),
            json,
        ),
        Command::Classify => classify(&engine),
        Command::Eval { files, top } => eval(&engine, &files, top),
        Command::Check { all_overlaps } => check(&engine, all_overlaps),
    };
    match result {
        Ok(code) => code,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kefu: {err}");
            ExitCode::from(2)
        }
    }
}

/// Settings, then packs; every pack problem is reported, not just the first.
pub fn load_engine(cli: &Cli) -> Result<Engine, String> {
    let config = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    engine_for(cli, &config)
}

fn engine_for(cli: &Cli, config: &Config) -> Result<Engine, String> {
    let default_lang = config.default_lang().map_err(|e| e.to_string())?;
    let source = match cli.packs.clone().or_else(|| config.packs_dir()) {
        Some(dir) => PackSource::from_dir(&dir).map_err(|e| e.to_string())?,
        None => PackSource::builtin(),
    };
    Engine::load(&source, config.facts.clone(), default_lang)
        .map_err(|e| format!("the packs ({}) have problems:\n{e}", source.origin))
}

fn serve(cli: &Cli, listen: Option<String>) -> ExitCode {
    init_tracing();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kefu: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let address = match config.listen_addr() {
        Ok(address) => address,
        Err(e) => {
            eprintln!("kefu: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = match engine_for(cli, &config) {
        Ok(engine) => std::sync::Arc::new(engine),
        Err(e) => {
            eprintln!("kefu: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kefu: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("kefu: cannot listen on {address}: {e}; is another kefu running? Use --listen or server.listen to pick another address");
                return ExitCode::from(2);
            }
        };
        match crate::server::run(config, engine, listener, crate::server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kefu: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// Logs to stderr; `KEFU_LOG` sets the filter (default `info`),
/// `KEFU_LOG_FORMAT=json` switches to JSON lines.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()));
    if std::env::var("KEFU_LOG_FORMAT").is_ok_and(|f| f == "json") {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

fn reply(
    engine: &Engine,
    text: &str,
    lang: Option<&str>,
    style: Style,
    name: Option<&str>,
    json: bool,
) -> io::Result<ExitCode> {
    if let Some(code) = lang {
        if Lang::from_locale(code).is_none() {
            eprintln!(
                "kefu: --lang {code}: not a language kefu answers in; detecting from the text instead"
            );
        }
    }
    let outcome = engine.respond(&Inbound {
        text,
        locale: lang,
        last_lang: None,
        buyer_name: name,
        style,
    });
    let mut out = io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(outcome.report()).map_err(io::Error::other)?;
        value["reply"] = serde_json::Value::String(outcome.reply.clone());
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).map_err(io::Error::other)?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let c = &outcome.classification;
    match &outcome.decision {
        Decision::Answer { intents } => {
            let intents: Vec<&str> = intents.iter().map(|i| &**i).collect();
            writeln!(
                out,
                "answer · {} · {} · confidence {:.2}",
                outcome.lang,
                intents.join(" + "),
                outcome.confidence
            )?;
        }
        Decision::Escalate { reason, .. } => {
            writeln!(out, "escalate to a person · {} · {reason}", outcome.lang)?;
        }
    }
    for score in c.detected.iter().chain(&c.weak) {
        let fired: Vec<String> = score
            .matched
            .iter()
            .map(|f| {
                let kind = match f.kind {
                    FiredKind::Keyword => "keyword",
                    FiredKind::Hint => "hint",
                    FiredKind::Exclude => "exclusion",
                    FiredKind::Pattern => "pattern",
                };
                let lang = f.lang.map(|l| format!("{l} ")).unwrap_or_default();
                match &f.typo {
                    Some(typo) => format!("\"{}\" ({lang}{kind}, typo \"{typo}\")", f.phrase),
                    None => format!("\"{}\" ({lang}{kind})", f.phrase),
                }
            })
            .collect();
        writeln!(
            out,
            "  {} {:.1}: {}",
            score.intent,
            score.score,
            fired.join(", ")
        )?;
    }
    for veto in &c.vetoed {
        writeln!(out, "  {} vetoed by \"{}\"", veto.intent, veto.exclusion)?;
    }
    for entity in &outcome.entities {
        writeln!(out, "  {}: {}", entity.kind.placeholder(), entity.value)?;
    }
    writeln!(out, "\n{}", outcome.reply)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct ClassifyLine<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default, borrow)]
    lang: Option<Cow<'a, str>>,
    /// Echoed back, so results can be joined to inputs.
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// Streams stdin to stdout: one result per input line, in order, in flat
/// memory. A bad line gets an error object on its own line.
fn classify(engine: &Engine) -> io::Result<ExitCode> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut buf = Vec::with_capacity(4096);
    let mut scratch = Scratch::default();
    let mut line_no = 0u64;
    let mut failures = 0u64;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let raw = trim_line_end(&buf);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(e) => {
                failures += 1;
                write_error(
                    &mut out,
                    line_no,
                    &format!("line is not valid UTF-8 ({e}); re-encode the input as UTF-8"),
                )?;
                continue;
            }
        };
        let parsed: ClassifyLine<'_> = match serde_json::from_str(line) {
            Ok(p) => p,
            Err(e) => {
                failures += 1;
                write_error(
                    &mut out,
                    line_no,
                    &format!(
                        "expected a JSON object like {{\"text\": \"...\", \"lang\": \"en\"}}: {e}"
                    ),
                )?;
                continue;
            }
        };
        let outcome = engine.understand_with(
            &mut scratch,
            &Inbound {
                text: &parsed.text,
                locale: parsed.lang.as_deref(),
                ..Inbound::default()
            },
        );
        let report = outcome.report();
        match parsed.id {
            Some(id) => {
                let mut value = serde_json::to_value(&report).map_err(io::Error::other)?;
                value["id"] = id;
                serde_json::to_writer(&mut out, &value).map_err(io::Error::other)?;
            }
            None => serde_json::to_writer(&mut out, &report).map_err(io::Error::other)?,
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if failures > 0 {
        eprintln!(
            "kefu classify: {failures} of {line_no} lines could not be read (see the \"error\" lines)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn trim_line_end(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && (buf[end - 1] == b'\n' || buf[end - 1] == b'\r') {
        end -= 1;
    }
    &buf[..end]
}

fn write_error(out: &mut impl Write, line: u64, message: &str) -> io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &serde_json::json!({ "line": line, "error": message }),
    )
    .map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// Runs the labelled files through the engine without language hints (the
/// corpus checks detection too) and prints the report.
fn eval(engine: &Engine, files: &[PathBuf], top: usize) -> io::Result<ExitCode> {
    let mut evaluation = Evaluation::default();
    let mut scratch = Scratch::default();
    let mut bad = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let example = match Example::parse(line) {
                Ok(example) => example,
                Err(e) => {
                    bad.push(format!("{}:{}: {e}", path.display(), i + 1));
                    continue;
                }
            };
            evaluation.run(engine, &mut scratch, &example);
        }
    }
    let mut out = io::stdout().lock();
    write!(out, "{}", evaluation.render(top))?;
    if !bad.is_empty() {
        eprintln!("{}", bad.join("\n"));
        eprintln!("kefu eval: {} lines skipped; fix them", bad.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(engine: &Engine, all_overlaps: bool) -> io::Result<ExitCode> {
    let mut out = io::stdout().lock();
    let catalog = engine.catalog();
    let langs: Vec<&str> = engine.replies().languages().map(Lang::code).collect();
    writeln!(
        out,
        "ok: {} intents, replies in {} ({})",
        catalog.intents.len(),
        langs.len(),
        langs.join(", ")
    )?;
    for lang in engine.replies().missing_languages() {
        writeln!(
            out,
            "note: no replies/{lang}.toml: buyers writing {lang} are answered in English"
        )?;
    }
    for gap in engine.replies().variant_gaps() {
        writeln!(out, "note: {gap}")?;
    }
    let (identical, nested): (Vec<_>, Vec<_>) =
        engine.overlaps().into_iter().partition(|o| o.identical);
    if !identical.is_empty() {
        writeln!(
            out,
            "{} keywords belong to two intents (not errors; each such word scores for both, check the winner is the one you want):",
            identical.len()
        )?;
        for overlap in &identical {
            writeln!(out, "  {}", overlap.message)?;
        }
    }
    if all_overlaps {
        for overlap in &nested {
            writeln!(out, "  {}", overlap.message)?;
        }
    } else if !nested.is_empty() {
        writeln!(
            out,
            "{} keywords stand inside a longer keyword of another intent (the longer one wins); list them with --all-overlaps",
            nested.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
