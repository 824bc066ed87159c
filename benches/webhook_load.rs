//! The webhook path under load, on loopback, against its own ceilings.
//!
//! One run drives, with `wrk` pinned to its own core:
//! - a bare axum server answering 202 (what HTTP alone costs here);
//! - axum doing one durable SQLite insert per request, WAL and
//!   `synchronous = NORMAL` like kefu's store (the durable-write ceiling);
//! - the real `kefu serve` binary with its SQLite store, a webhook channel
//!   whose callbacks go to a sink in this process.
//!
//! Each server gets a max-throughput run; the insert ceiling and kefu also
//! get a steady 1,000 requests/s run for p99 accept latency. kefu's
//! end-to-end rate is the messages it stored divided by the time from the
//! start of the load to the last reply arriving at the sink. Afterwards
//! kefu is stopped and its database audited: every stored buyer message
//! handled with a reply, every reply delivered, each exactly once at the
//! sink. One table of figures with a verdict per target is printed.
//!
//! Run: `cargo bench --bench webhook_load` (needs `wrk` and `taskset`:
//! `apt-get update && apt-get install -y wrk`). `WEBHOOK_LOAD_KEEP=1` keeps
//! the temporary directory (kefu's log and database). Outside `cargo bench`
//! it only checks its own parsers and says it skipped. benches/README.md
//! explains the figures.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::runtime::Runtime;

/// Where every server takes its messages (the reference servers too, so
/// wrk sends byte-for-byte the same requests everywhere).
const PATH: &str = "/v1/channels/load/messages";
/// Conversations the messages are spread over.
const CONVERSATIONS: u32 = 1_000;
/// Connections for the max-throughput runs.
const MAX_CONNECTIONS: u32 = 32;
const MAX_SECS: u32 = 10;
/// The steady rate for the latency runs, and the connections sharing it.
const STEADY_RATE: u32 = 1_000;
const STEADY_CONNECTIONS: u32 = 16;
const STEADY_SECS: u32 = 10;
/// How long to wait for the last replies once the load stops.
const DRAIN_CAP: Duration = Duration::from_secs(60);
/// kefu's coalescing window. A window delays every reply by design (a buyer
/// typing three lines gets one answer); 0 measures the pipeline itself.
const COALESCE_MS: u32 = 0;
/// Accepted messages may queue this deep, so a burst is stored and answered
/// late rather than refused with 503.
const QUEUE_CAPACITY: u32 = 100_000;

/// The targets.
const TARGET_E2E: f64 = 5_000.0;
const TARGET_E2E_OF_INSERT: f64 = 0.5;
const TARGET_P99_RATIO: f64 = 1.5;
const TARGET_RSS_MB: f64 = 100.0;

/// Buyer questions in the languages kefu answers, as wrk sends them.
const TEXTS: &[&str] = &[
    "Hi, where is my order? It has been three weeks and the tracking shows nothing.",
    "Can I change the shipping address for my order?",
    "thanks a lot, received it today!",
    "Hola, ¿cuándo llega mi pedido? Ya pasaron 20 días.",
    "Quiero devolver el producto, llegó roto.",
    "Olá, meu pacote ainda não chegou, podem verificar o rastreamento?",
    "Vocês têm esse tênis no tamanho 42?",
    "Здравствуйте, где моя посылка? Трек-номер не отслеживается.",
    "Хочу вернуть деньги, товар не соответствует описанию.",
    "Bonjour, combien coûte la livraison en France ?",
    "Hallo, kann ich meine Bestellung stornieren?",
    "你好，我的包裹什么时候到？",
    "可以开发票吗？",
];

fn main() {
    self_check();
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!("webhook_load: skipped outside `cargo bench` (its parsers checked out)");
        return;
    }
    let missing: Vec<&str> = ["wrk", "taskset"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if !missing.is_empty() {
        println!(
            "webhook_load: NOT RUN: {} not found on PATH. Install with \
             `apt-get update && apt-get install -y wrk` (taskset is in util-linux), then run \
             `cargo bench --bench webhook_load` again.",
            missing.join(" and ")
        );
        return;
    }
    if let Err(e) = run() {
        eprintln!("webhook_load: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let cpus = allowed_cpus();
    let layout = Layout::for_cpus(&cpus);
    // This thread only orchestrates; keep it off the servers' cores.
    pin_current_thread(&[layout.sink]);
    let servers_rt = pinned_runtime(&layout.servers, "servers")?;
    let sink_rt = pinned_runtime(&[layout.sink], "sink")?;
    let mut dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    // WEBHOOK_LOAD_KEEP=1 leaves kefu's log and the databases for a look.
    dir.disable_cleanup(std::env::var_os("WEBHOOK_LOAD_KEEP").is_some());
    let wrk = Wrk {
        cpu: layout.wrk,
        max_script: write_file(dir.path(), "max.lua", &lua_script(0))?,
        steady_script: write_file(dir.path(), "steady.lua", &lua_script(STEADY_RATE))?,
    };

    println!("webhook_load: command: cargo bench --bench webhook_load");
    println!("{}", layout.describe(&cpus));

    let echo = servers_rt.block_on(serve(echo_router()))?;
    let insert_pool = servers_rt.block_on(insert_store(&dir.path().join("insert.db")))?;
    let insert = servers_rt.block_on(serve(insert_router(insert_pool)))?;
    let echo_max = wrk.max(echo, "echo")?;
    let insert_max = wrk.max(insert, "insert")?;
    let insert_steady = wrk.steady(insert, "insert-steady")?;

    let sink = Sink::default();
    let sink_addr = sink_rt.block_on(serve(sink.router()))?;
    let kefu = KefuProcess::start(dir.path(), &layout.servers, sink_addr)?;
    let log_path = kefu.log_path();
    let k = measure_kefu(kefu, &wrk, &sink, &sink_rt)?;

    let figures = Figures {
        echo_max,
        insert_max,
        insert_steady,
        kefu_max: k.max,
        kefu_steady: k.steady,
        e2e: k.e2e,
        drained: k.drained,
        peak_rss_mb: k.peak_rss_mb,
        audit: k.audit,
        seen: sink.snapshot(),
    };
    print!("{}", figures.table());
    println!(
        "kefu: coalesce_ms = {COALESCE_MS} (a coalescing window delays every reply on purpose; \
         0 measures the pipeline), queue_capacity = {QUEUE_CAPACITY}, \
         max_bot_replies_per_minute raised (the load sends {} or more messages a minute per \
         conversation)",
        60 * STEADY_RATE / CONVERSATIONS
    );
    let errors = log_errors(&std::fs::read_to_string(&log_path).unwrap_or_default());
    if let Some((most, times)) = errors.most_common {
        println!(
            "kefu's log: {} ERROR lines; most common ({times}×): {most}",
            errors.lines
        );
    }
    println!(
        "kefu's log (level info): {} (kept only with WEBHOOK_LOAD_KEEP=1)",
        log_path.display()
    );
    Ok(())
}

/// kefu's side of the run.
struct KefuFigures {
    max: WrkResult,
    steady: WrkResult,
    e2e: Option<f64>,
    drained: bool,
    peak_rss_mb: Option<f64>,
    audit: Audit,
}

/// Max throughput and its end-to-end rate, then the steady run; then kefu
/// is stopped and its database audited.
fn measure_kefu(
    kefu: KefuProcess,
    wrk: &Wrk,
    sink: &Sink,
    rt: &Runtime,
) -> Result<KefuFigures, String> {
    let db = rt.block_on(open_db(&kefu.db_path(), true))?;
    let before = rt.block_on(buyer_messages(&db))?;
    let started = Instant::now();
    let max = wrk.max(kefu.addr, "kefu-max")?;
    let drain = rt.block_on(wait_for_replies(&db, sink, DRAIN_CAP));
    let stored = rt.block_on(buyer_messages(&db))? - before;
    let e2e = drain
        .last_reply_at
        .map(|at| stored as f64 / at.duration_since(started).as_secs_f64());

    let steady = wrk.steady(kefu.addr, "kefu-steady")?;
    let steady_drain = rt.block_on(wait_for_replies(&db, sink, DRAIN_CAP));
    for (run, drain) in [("max", &drain), ("steady", &steady_drain)] {
        if !drain.done {
            println!("kefu {run} run: not every reply arrived; {}", drain.left);
        }
    }
    rt.block_on(db.close());

    let peak_rss_mb = kefu.peak_rss_kib().map(|kib| kib as f64 / 1024.0);
    let db_path = kefu.db_path();
    kefu.stop()?;
    let audit = rt.block_on(async {
        let db = open_db(&db_path, false).await?;
        let audit = Audit::read(&db).await;
        db.close().await;
        audit
    })?;
    Ok(KefuFigures {
        max,
        steady,
        e2e,
        drained: drain.done && steady_drain.done,
        peak_rss_mb,
        audit,
    })
}

// ---------------------------------------------------------------- cores

/// Which cores run what. wrk gets a core to itself where there are enough,
/// so the load generator's own work does not show up as server time; the
/// callback sink (standing in for the platform receiving replies) shares
/// wrk's side, never the servers'.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    servers: Vec<usize>,
    wrk: usize,
    sink: usize,
}

impl Layout {
    fn for_cpus(cpus: &[usize]) -> Layout {
        match cpus {
            [] => Layout {
                servers: vec![0],
                wrk: 0,
                sink: 0,
            },
            [only] => Layout {
                servers: vec![*only],
                wrk: *only,
                sink: *only,
            },
            [a, b] => Layout {
                servers: vec![*a],
                wrk: *b,
                sink: *b,
            },
            [a, b, c] => Layout {
                servers: vec![*a],
                wrk: *c,
                sink: *b,
            },
            [servers @ .., sink, wrk] => Layout {
                servers: servers.to_vec(),
                wrk: *wrk,
                sink: *sink,
            },
        }
    }

    fn describe(&self, cpus: &[usize]) -> String {
        let servers = cpu_list(&self.servers);
        let mut text = format!(
            "cores: {} usable; servers (echo, insert, kefu) on CPU {servers}; wrk on CPU {}; callback sink on CPU {}",
            cpus.len(),
            self.wrk,
            self.sink
        );
        if self.servers.contains(&self.wrk) {
            text.push_str(
                "\nWARNING: one core only: wrk, sink and servers share it; figures include wrk's own work",
            );
        }
        text
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity only writes into the set it is given, whose
    // size is passed along.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Pins the calling thread; threads it starts later inherit the set.
fn pin_current_thread(cpus: &[usize]) {
    // SAFETY: the set is a plain bitmask built here; sched_setaffinity
    // only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A runtime whose every thread (workers, blocking pool, and the SQLite
/// threads they start) stays on `cpus`, one worker per core, as kefu's
/// runtime does when taskset gives it those cores.
fn pinned_runtime(cpus: &[usize], name: &str) -> Result<Runtime, String> {
    let cpus = cpus.to_vec();
    let workers = cpus.len().max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .on_thread_start(move || pin_current_thread(&cpus))
        .enable_all()
        .build()
        .map_err(|e| format!("{name} runtime: {e}"))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

// ------------------------------------------------------ reference servers

async fn serve(router: Router) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("webhook_load: server on {addr} stopped: {e}");
        }
    });
    Ok(addr)
}

/// What HTTP alone costs: 202 without looking at the body.
fn echo_router() -> Router {
    Router::new().route(
        PATH,
        post(|| async { (StatusCode::ACCEPTED, r#"{"status":"accepted"}"#) }),
    )
}

/// The body fields the insert ceiling stores.
#[derive(serde::Deserialize)]
struct Message {
    message_id: String,
    conversation_id: String,
    text: String,
}

/// The durable-write ceiling: parse, one INSERT (its own transaction),
/// then 202, as kefu answers once its write is committed.
fn insert_router(pool: SqlitePool) -> Router {
    Router::new().route(PATH, post(insert_one)).with_state(pool)
}

async fn insert_one(State(pool): State<SqlitePool>, body: Bytes) -> (StatusCode, String) {
    let Ok(msg) = serde_json::from_slice::<Message>(&body) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, String::new());
    };
    let inserted = sqlx::query(
        "INSERT INTO messages (external_id, conversation_id, text, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&msg.message_id)
    .bind(&msg.conversation_id)
    .bind(&msg.text)
    .bind(kefu::model::now_ms())
    .execute(&pool)
    .await;
    match inserted {
        Ok(_) => (
            StatusCode::ACCEPTED,
            serde_json::json!({ "status": "accepted", "message_id": msg.message_id }).to_string(),
        ),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    }
}

/// The insert ceiling's database, set up as kefu sets up its own: WAL,
/// NORMAL sync, a busy timeout, a pool of 8.
async fn insert_store(path: &Path) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(|e| format!("insert ceiling database: {e}"))?;
    sqlx::query(
        "CREATE TABLE messages (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             external_id TEXT NOT NULL UNIQUE,
             conversation_id TEXT NOT NULL,
             text TEXT NOT NULL,
             created_at INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await
    .map_err(|e| format!("insert ceiling table: {e}"))?;
    Ok(pool)
}

// ------------------------------------------------------------------ sink

/// What reached the callback sink.
#[derive(Debug, Default, Clone)]
struct Seen {
    callbacks: u64,
    /// Distinct idempotency keys.
    keys: u64,
    conversations: u64,
    /// Callbacks without a key or a readable body.
    malformed: u64,
}

impl Seen {
    fn duplicates(&self) -> u64 {
        self.callbacks - self.keys - self.malformed
    }
}

#[derive(Default)]
struct SinkState {
    callbacks: u64,
    malformed: u64,
    keys: HashSet<String>,
    conversations: HashSet<String>,
    last_at: Option<Instant>,
}

/// Stands in for the platform receiving replies: counts them and answers
/// 200 at once.
#[derive(Clone, Default)]
struct Sink {
    state: Arc<Mutex<SinkState>>,
}

impl Sink {
    fn router(&self) -> Router {
        Router::new()
            .route("/callback", post(receive))
            .with_state(self.state.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        // A panic while counting would already have failed the run.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Seen {
        let state = self.lock();
        Seen {
            callbacks: state.callbacks,
            keys: state.keys.len() as u64,
            conversations: state.conversations.len() as u64,
            malformed: state.malformed,
        }
    }

    fn last_at(&self) -> Option<Instant> {
        self.lock().last_at
    }
}

async fn receive(
    State(state): State<Arc<Mutex<SinkState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let conversation = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["conversation_id"].as_str().map(str::to_string));
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    state.callbacks += 1;
    state.last_at = Some(Instant::now());
    match (key, conversation) {
        (Some(key), Some(conversation)) => {
            state.keys.insert(key);
            state.conversations.insert(conversation);
        }
        _ => state.malformed += 1,
    }
    StatusCode::OK
}

// ------------------------------------------------------------------ kefu

/// The real binary, `kefu serve`, pinned to the servers' cores.
struct KefuProcess {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl KefuProcess {
    fn start(dir: &Path, cpus: &[usize], sink: SocketAddr) -> Result<KefuProcess, String> {
        let addr = free_port()?;
        let data = dir.join("kefu-data");
        let config = format!(
            "[server]\nlisten = \"{addr}\"\ndata_dir = \"{}\"\n\
             [pipeline]\ncoalesce_ms = {COALESCE_MS}\nqueue_capacity = {QUEUE_CAPACITY}\n\
             max_bot_replies_per_minute = 1000000\n\
             [channels.load]\nkind = \"webhook\"\ncallback_url = \"http://{sink}/callback\"\n",
            data.display()
        );
        let config_path = write_file(dir, "kefu.toml", &config)?;
        let log = std::fs::File::create(dir.join("kefu.log"))
            .map_err(|e| format!("kefu log file: {e}"))?;
        // taskset execs kefu, so the child's pid is kefu's own.
        let mut command = Command::new("taskset");
        // The figures are for the settings above, not whatever KEFU_… the
        // caller's environment holds.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KEFU_") {
                command.env_remove(name);
            }
        }
        let child = command
            .arg("-c")
            .arg(cpu_list(cpus))
            .arg(env!("CARGO_BIN_EXE_kefu"))
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start kefu: {e}"))?;
        let mut kefu = KefuProcess {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        kefu.wait_ready()?;
        Ok(kefu)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "kefu exited at start ({status}); its log:\n{}",
                    self.log_tail()
                ));
            }
            if http_get_ok(self.addr, "/readyz") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "kefu was not ready within 30 s; its log:\n{}",
            self.log_tail()
        ))
    }

    fn db_path(&self) -> PathBuf {
        self.dir.join("kefu-data").join("kefu.db")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("kefu.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        vm_hwm_kib(&status)
    }

    /// SIGTERM, as an operator stops it; kefu finishes what it holds.
    fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "kefu stopped with {status}; its log:\n{}",
                        self.log_tail()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("waiting for kefu: {e}")),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("kefu did not stop within 30 s of SIGTERM".into())
    }
}

impl Drop for KefuProcess {
    fn drop(&mut self) {
        // Only reached on an early return; `stop` has waited otherwise.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<SocketAddr, String> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a port: {e}"))?;
    listener
        .local_addr()
        .map_err(|e| format!("find a port: {e}"))
}

/// A minimal blocking GET: true on a 2xx answer.
fn http_get_ok(addr: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 2")
}

/// ERROR lines in kefu's log, and the most frequent of their messages.
#[derive(Debug, PartialEq, Eq)]
struct LogErrors {
    lines: usize,
    most_common: Option<(String, usize)>,
}

fn log_errors(log: &str) -> LogErrors {
    let mut by_message: std::collections::HashMap<&str, usize> = Default::default();
    let mut lines = 0;
    for line in log.lines() {
        // "<time>  ERROR <target>: <message>": drop the time.
        let Some((_, rest)) = line.split_once(" ERROR ") else {
            continue;
        };
        lines += 1;
        *by_message.entry(rest.trim()).or_default() += 1;
    }
    let most_common = by_message
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(message, n)| (message.to_string(), n));
    LogErrors { lines, most_common }
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

// -------------------------------------------------------- kefu's database

async fn open_db(path: &Path, read_only: bool) -> Result<SqlitePool, String> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| format!("open kefu's database {}: {e}", path.display()))
}

async fn count(db: &SqlitePool, sql: &str) -> Result<u64, sqlx::Error> {
    // fetch_all, not fetch_one: a statement left unfinished keeps its read
    // transaction, and every later query on the connection would see that
    // old snapshot of kefu's database.
    let rows = sqlx::query(sql).fetch_all(db).await?;
    let n: i64 = rows.first().ok_or(sqlx::Error::RowNotFound)?.try_get(0)?;
    Ok(n as u64)
}

async fn buyer_messages(db: &SqlitePool) -> Result<u64, String> {
    count(db, "SELECT COUNT(*) FROM messages WHERE author = 'buyer'")
        .await
        .map_err(|e| format!("count kefu's messages: {e}"))
}

struct Drain {
    done: bool,
    last_reply_at: Option<Instant>,
    /// What was still open when the wait gave up.
    left: String,
}

/// Waits until kefu has handled every stored message and delivered every
/// reply (so the sink holds them all), at most `cap`.
async fn wait_for_replies(db: &SqlitePool, sink: &Sink, cap: Duration) -> Drain {
    let deadline = Instant::now() + cap;
    loop {
        let unhandled = count(
            db,
            "SELECT COUNT(*) FROM messages WHERE author = 'buyer' AND processed_at IS NULL",
        )
        .await;
        let undelivered = count(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").await;
        if let (Ok(0), Ok(0)) = (&unhandled, &undelivered) {
            return Drain {
                done: true,
                last_reply_at: sink.last_at(),
                left: String::new(),
            };
        }
        if Instant::now() >= deadline {
            let show =
                |r: Result<u64, sqlx::Error>| r.map_or_else(|e| e.to_string(), |n| n.to_string());
            return Drain {
                done: false,
                last_reply_at: None,
                left: format!(
                    "after {} s: unhandled messages {}, undelivered replies {}",
                    cap.as_secs(),
                    show(unhandled),
                    show(undelivered)
                ),
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// kefu's database after it stopped: what became of every message.
#[derive(Debug, Default)]
struct Audit {
    stored: u64,
    unhandled: u64,
    /// Handled without a reply (a person holds the conversation, or the
    /// bot-loop cap): none expected here.
    silent: u64,
    replies: u64,
    delivered: u64,
}

impl Audit {
    async fn read(db: &SqlitePool) -> Result<Audit, String> {
        let q = |sql| count(db, sql);
        let audit = async {
            Ok::<_, sqlx::Error>(Audit {
                stored: q("SELECT COUNT(*) FROM messages WHERE author = 'buyer'").await?,
                unhandled: q(
                    "SELECT COUNT(*) FROM messages WHERE author = 'buyer' AND processed_at IS NULL",
                )
                .await?,
                silent: q("SELECT COUNT(*) FROM messages
                     WHERE author = 'buyer' AND processed_at IS NOT NULL AND decision IS NULL")
                .await?,
                replies: q("SELECT COUNT(*) FROM outbox").await?,
                delivered: q("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'").await?,
            })
        };
        audit
            .await
            .map_err(|e| format!("audit kefu's database: {e}"))
    }
}

// ------------------------------------------------------------------- wrk

/// The load generator, pinned to its core.
struct Wrk {
    cpu: usize,
    max_script: PathBuf,
    steady_script: PathBuf,
}

impl Wrk {
    /// As many requests as 32 connections can get answered.
    fn max(&self, addr: SocketAddr, run: &str) -> Result<WrkResult, String> {
        self.run(addr, run, &self.max_script, MAX_CONNECTIONS, MAX_SECS)
    }

    /// 1,000 requests a second, paced by the script, for latency.
    fn steady(&self, addr: SocketAddr, run: &str) -> Result<WrkResult, String> {
        self.run(
            addr,
            run,
            &self.steady_script,
            STEADY_CONNECTIONS,
            STEADY_SECS,
        )
    }

    fn run(
        &self,
        addr: SocketAddr,
        run: &str,
        script: &Path,
        connections: u32,
        secs: u32,
    ) -> Result<WrkResult, String> {
        let args = vec![
            "-c".to_string(),
            self.cpu.to_string(),
            "wrk".into(),
            "-t1".into(),
            format!("-c{connections}"),
            format!("-d{secs}s"),
            "--latency".into(),
            "-s".into(),
            script.display().to_string(),
            format!("http://{addr}{PATH}"),
            "--".into(),
            run.into(),
        ];
        println!("  $ taskset {}", args.join(" "));
        let output = Command::new("taskset")
            .args(&args)
            .output()
            .map_err(|e| format!("run wrk: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "wrk failed ({}): {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        WrkResult::parse(&stdout).ok_or_else(|| format!("cannot read wrk's report:\n{stdout}"))
    }
}

/// The figures read from wrk's report.
#[derive(Debug, Clone, PartialEq)]
struct WrkResult {
    requests: u64,
    secs: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    socket_errors: u64,
}

impl WrkResult {
    fn parse(report: &str) -> Option<WrkResult> {
        let mut requests = None;
        let mut secs = None;
        let mut rps = None;
        let mut p50_ms = None;
        let mut p99_ms = None;
        let mut non_2xx = 0;
        let mut socket_errors = 0;
        for line in report.lines().map(str::trim) {
            if let Some((n, rest)) = line.split_once(" requests in ") {
                requests = n.trim().parse().ok();
                secs = rest
                    .split(',')
                    .next()
                    .and_then(duration_ms)
                    .map(|ms| ms / 1e3);
            } else if let Some(v) = line.strip_prefix("Requests/sec:") {
                rps = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("50%") {
                p50_ms = duration_ms(v.trim());
            } else if let Some(v) = line.strip_prefix("99%") {
                p99_ms = duration_ms(v.trim());
            } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
                non_2xx = v.trim().parse().ok()?;
            } else if let Some(v) = line.strip_prefix("Socket errors:") {
                // "connect 0, read 0, write 0, timeout 0"
                socket_errors = v
                    .split(',')
                    .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum();
            }
        }
        Some(WrkResult {
            requests: requests?,
            secs: secs?,
            rps: rps?,
            p50_ms: p50_ms?,
            p99_ms: p99_ms?,
            non_2xx,
            socket_errors,
        })
    }

    /// Answered with 2xx, per second.
    fn ok_per_sec(&self) -> f64 {
        self.ok() as f64 / self.secs
    }

    fn ok(&self) -> u64 {
        self.requests.saturating_sub(self.non_2xx)
    }
}

/// wrk's durations: `812.00us`, `1.23ms`, `10.00s`, `1.50m`.
fn duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e3)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600e3)
    } else {
        return None;
    };
    f64::from_str(number).ok().map(|n| n * scale)
}

/// The wrk script: JSON messages with unique ids (the run name passed
/// after `--` keeps runs apart), spread at random over the conversations,
/// texts taken in turn. With `rate` > 0 it paces itself: each request gets
/// the next slot of a fixed schedule (wrk 4 has no `-R`), and one that is
/// late goes at once, so the average holds at `rate` while wrk's latency,
/// measured from the write, stays the server's.
fn lua_script(rate: u32) -> String {
    let mut lua = String::new();
    lua.push_str("local texts = {\n");
    for text in TEXTS {
        // Lua long brackets need no escaping; TEXTS need none in JSON.
        let _ = writeln!(lua, "  [[{text}]],");
    }
    lua.push_str("}\n");
    let _ = write!(
        lua,
        r#"
local conversations = {CONVERSATIONS}
local run = "run"
local n = 0
local headers = {{ ["Content-Type"] = "application/json" }}

function init(args)
  if args[1] then run = args[1] end
  math.randomseed(7)
end

function request()
  n = n + 1
  local conversation = math.random(conversations)
  local body = '{{"message_id":"' .. run .. '-' .. n ..
    '","conversation_id":"c' .. conversation ..
    '","text":"' .. texts[(n % #texts) + 1] ..
    '","buyer":{{"id":"b' .. conversation .. '"}}}}'
  return wrk.format("POST", nil, headers, body)
end
"#
    );
    if rate > 0 {
        let _ = write!(
            lua,
            r#"
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} load_timespec;
int clock_gettime(int clock, load_timespec *tp);
]]
local ts = ffi.new("load_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = 1000 / {rate}
local start = nil
local slots = 0

function delay()
  local now = now_ms()
  if start == nil then start = now end
  slots = slots + 1
  local wait = start + slots * interval - now
  if wait < 0 then return 0 end
  return wait
end
"#
        );
    }
    lua
}

fn write_file(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

// ----------------------------------------------------------------- report

struct Figures {
    echo_max: WrkResult,
    insert_max: WrkResult,
    kefu_max: WrkResult,
    insert_steady: WrkResult,
    kefu_steady: WrkResult,
    /// Stored messages per second, load start to last reply at the sink.
    e2e: Option<f64>,
    drained: bool,
    peak_rss_mb: Option<f64>,
    audit: Audit,
    seen: Seen,
}

impl Figures {
    fn zero_loss(&self) -> bool {
        let a = &self.audit;
        let sent_ok = self.kefu_max.ok() + self.kefu_steady.ok();
        self.drained
            && a.unhandled == 0
            && a.silent == 0
            && a.delivered == a.replies
            && self.seen.keys == a.replies
            && self.seen.duplicates() == 0
            && self.seen.malformed == 0
            && a.stored >= sent_ok
    }

    fn table(&self) -> String {
        let insert_rps = self.insert_max.ok_per_sec();
        let e2e_ratio = self.e2e.map(|e| e / insert_rps);
        let p99_ratio = self.kefu_steady.p99_ms / self.insert_steady.p99_ms;
        let a = &self.audit;
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut row = |name: &str, value: String, target: &str, verdict: Option<bool>| {
            rows.push([
                name.to_string(),
                value,
                target.to_string(),
                verdict.map_or(String::new(), pass),
            ]);
        };
        row("echo, max (req/s)", per_sec(&self.echo_max), "", None);
        row(
            "insert ceiling, max (req/s)",
            per_sec(&self.insert_max),
            "",
            None,
        );
        row(
            "kefu accept, max (req/s)",
            per_sec(&self.kefu_max),
            "",
            None,
        );
        row(
            "kefu end-to-end (msgs/s)",
            self.e2e
                .map_or("did not finish".into(), |e| format!("{e:.0}")),
            "≥ 5,000",
            Some(self.e2e.is_some_and(|e| e >= TARGET_E2E)),
        );
        row(
            "kefu e2e / insert ceiling",
            e2e_ratio.map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
            "≥ 50%",
            Some(e2e_ratio.is_some_and(|r| r >= TARGET_E2E_OF_INSERT)),
        );
        row(
            "insert @1,000/s p50 / p99 (ms)",
            latency(&self.insert_steady),
            "",
            None,
        );
        row(
            "kefu   @1,000/s p50 / p99 (ms)",
            latency(&self.kefu_steady),
            "",
            None,
        );
        row(
            "p99 kefu / insert",
            format!("{p99_ratio:.2}×"),
            "≤ 1.5×, all 2xx",
            // A refusal is no accept: its quick 500 would only flatter p99.
            Some(p99_ratio <= TARGET_P99_RATIO && all_ok(&self.kefu_steady)),
        );
        row(
            "kefu peak RSS (VmHWM, MB)",
            self.peak_rss_mb
                .map_or("unknown".into(), |mb| format!("{mb:.1}")),
            "≤ 100",
            Some(self.peak_rss_mb.is_some_and(|mb| mb <= TARGET_RSS_MB)),
        );
        row(
            "2xx from kefu (wrk) / stored",
            format!(
                "{} / {}",
                self.kefu_max.ok() + self.kefu_steady.ok(),
                a.stored
            ),
            "",
            None,
        );
        row(
            "stored: unhandled / silent",
            format!("{} / {}", a.unhandled, a.silent),
            "0 / 0",
            None,
        );
        row(
            "replies: stored / delivered / at sink",
            format!("{} / {} / {}", a.replies, a.delivered, self.seen.keys),
            "all equal",
            None,
        );
        row(
            "sink: duplicates / malformed",
            format!("{} / {}", self.seen.duplicates(), self.seen.malformed),
            "0 / 0",
            None,
        );
        row(
            "zero loss",
            format!(
                "{} msgs in {} replies, {} conversations",
                a.stored, a.replies, self.seen.conversations
            ),
            "every message answered once",
            Some(self.zero_loss()),
        );
        rows.insert(
            0,
            ["figure", "value", "target", "verdict"].map(str::to_string),
        );
        let mut out = String::from("\n");
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let widths = [width(0), width(1), width(2)];
        for r in &rows {
            let _ = writeln!(
                out,
                "{}  {}  {}  {}",
                pad(&r[0], widths[0]),
                pad_left(&r[1], widths[1]),
                pad(&r[2], widths[2]),
                r[3]
            );
        }
        let _ = writeln!(
            out,
            "\nbatches: a reply answers every message of its conversation still waiting when the \
             worker gets to it ({:.2} messages per reply)",
            a.stored as f64 / a.replies.max(1) as f64
        );
        out
    }
}

fn all_ok(r: &WrkResult) -> bool {
    r.non_2xx == 0 && r.socket_errors == 0
}

fn per_sec(r: &WrkResult) -> String {
    let mut text = format!("{:.0}", r.ok_per_sec());
    if r.non_2xx > 0 || r.socket_errors > 0 {
        let _ = write!(
            text,
            " ({} non-2xx, {} socket errors)",
            r.non_2xx, r.socket_errors
        );
    }
    text
}

fn latency(r: &WrkResult) -> String {
    let mut text = format!("{:.2} / {:.2} at {:.0}/s", r.p50_ms, r.p99_ms, r.rps);
    if r.non_2xx > 0 || r.socket_errors > 0 {
        let _ = write!(
            text,
            " ({} non-2xx, {} socket errors)",
            r.non_2xx, r.socket_errors
        );
    }
    text
}

fn pass(ok: bool) -> String {
    if ok { "PASS" } else { "FAIL" }.to_string()
}

fn pad(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width - text.chars().count()))
}

fn pad_left(text: &str, width: usize) -> String {
    format!("{}{text}", " ".repeat(width - text.chars().count()))
}

// ------------------------------------------------------------ self-check

/// Table tests for the pure parts, run every time (also under `cargo test
/// --benches`, where the load itself is skipped).
fn self_check() {
    struct Case {
        name: &'static str,
        input: &'static str,
        expect: Option<f64>,
    }
    let cases = [
        Case {
            name: "microseconds",
            input: "812.00us",
            expect: Some(0.812),
        },
        Case {
            name: "milliseconds",
            input: "1.50ms",
            expect: Some(1.5),
        },
        Case {
            name: "seconds",
            input: "10.01s",
            expect: Some(10_010.0),
        },
        Case {
            name: "minutes",
            input: "1.00m",
            expect: Some(60_000.0),
        },
        Case {
            name: "no unit",
            input: "12",
            expect: None,
        },
    ];
    for case in cases {
        let got = duration_ms(case.input);
        let same = match (got, case.expect) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            (None, None) => true,
            _ => false,
        };
        assert!(same, "duration_ms {}: got {got:?}", case.name);
    }

    let report = "Running 10s test @ http://127.0.0.1:1/v1/channels/load/messages
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  40.00ms   90.00%
    Req/Sec    10.32k   500.00    11.00k    70.00%
  Latency Distribution
     50%    2.90ms
     75%    3.40ms
     90%    4.10ms
     99%  812.00us
  102768 requests in 10.01s, 12.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 17
Requests/sec:  10266.53
Transfer/sec:      1.20MB
";
    let parsed = WrkResult::parse(report).expect("a full report parses");
    assert_eq!(
        parsed,
        WrkResult {
            requests: 102_768,
            secs: 10.01,
            rps: 10_266.53,
            p50_ms: 2.9,
            p99_ms: 0.812,
            non_2xx: 17,
            socket_errors: 5,
        }
    );
    assert_eq!(parsed.ok(), 102_751);
    assert!(
        WrkResult::parse("Running 10s test\n").is_none(),
        "a report without figures is refused"
    );

    let layouts: [(&[usize], Layout); 5] = [
        (
            &[],
            Layout {
                servers: vec![0],
                wrk: 0,
                sink: 0,
            },
        ),
        (
            &[3],
            Layout {
                servers: vec![3],
                wrk: 3,
                sink: 3,
            },
        ),
        (
            &[0, 1],
            Layout {
                servers: vec![0],
                wrk: 1,
                sink: 1,
            },
        ),
        (
            &[0, 1, 2],
            Layout {
                servers: vec![0],
                wrk: 2,
                sink: 1,
            },
        ),
        (
            &[0, 1, 2, 3, 4, 5],
            Layout {
                servers: vec![0, 1, 2, 3],
                wrk: 5,
                sink: 4,
            },
        ),
    ];
    for (cpus, expect) in layouts {
        assert_eq!(Layout::for_cpus(cpus), expect, "layout for {cpus:?}");
    }

    assert_eq!(
        vm_hwm_kib("Name:\tkefu\nVmPeak:\t  900 kB\nVmHWM:\t   45312 kB\n"),
        Some(45_312)
    );
    assert_eq!(vm_hwm_kib("Name:\tkefu\n"), None);

    let log = "2026-11-22T04:03:44.18Z  INFO kefu::server: kefu is serving
2026-11-22T04:03:44.20Z ERROR kefu::http: internal error error=locked
2026-11-22T04:03:44.21Z ERROR kefu::http: internal error error=locked
2026-11-22T04:03:44.22Z ERROR kefu::outbox: cannot record
";
    assert_eq!(
        log_errors(log),
        LogErrors {
            lines: 3,
            most_common: Some(("kefu::http: internal error error=locked".into(), 2)),
        }
    );
    assert_eq!(
        log_errors("x  INFO fine\n"),
        LogErrors {
            lines: 0,
            most_common: None
        }
    );

    let lua = lua_script(STEADY_RATE);
    assert!(lua.contains("function delay()") && lua.contains("local interval = 1000 / 1000"));
    assert!(!lua_script(0).contains("function delay()"));
    for text in TEXTS {
        assert!(
            !text.contains(['"', '\\', ']']),
            "{text:?} must need no escaping in JSON or a Lua long string"
        );
    }
}
