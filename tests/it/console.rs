//! The agent console end to end: a real kefu on 127.0.0.1 (SQLite file,
//! fake buyer channel), driven in headless Chromium through chromedriver
//! (WebDriver, with the `fantoccini` client).
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the tests
//! print `SKIPPED: …` and pass, unless `CI` is set: in CI a missing browser
//! is a failure (`.ci/run` installs it).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use kefu::channel::webhook::Callback;

use crate::support::{Fake, Kefu, config, temp_dir};

/// How long a page may take to show what the test waits for. The console
/// polls every 2 s, so this is several polls on a slow machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn program(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// chromedriver, started in its own process group so that dropping this
/// (also when the test panics) kills it together with the Chromium it
/// launched.
struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
    /// Chromium's fresh profile (`--user-data-dir`) and chromedriver's log.
    dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port, or says why it cannot: `None`
    /// after printing `SKIPPED` outside CI; a panic in CI.
    async fn start() -> Option<Driver> {
        let chromedriver = program("KEFU_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("KEFU_CHROMIUM", "/usr/bin/chromium");
        for (path, package) in [(&chromedriver, "chromium-driver"), (&chromium, "chromium")] {
            if !path.exists() {
                let why = format!(
                    "{} not found (Debian package {package}; or set KEFU_CHROMEDRIVER / KEFU_CHROMIUM)",
                    path.display()
                );
                assert!(
                    !in_ci(),
                    "{why}: CI is set, so the console test must run; .ci/run installs chromium and chromium-driver"
                );
                println!("SKIPPED: agent console browser test: {why}");
                return None;
            }
        }
        let dir = temp_dir();
        let log = dir.path().join("chromedriver.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            dir,
        };
        let status = format!("{}/status", driver.url);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(&status).await {
                if let Ok(body) = r.json::<Value>().await {
                    if body["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer {status} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(driver)
    }

    /// A new browser session: headless Chromium with a fresh profile and
    /// everything that would phone home switched off (the test machine has
    /// no network beyond 127.0.0.1).
    async fn browser(&self) -> Client {
        let chromium = program("KEFU_CHROMIUM", "/usr/bin/chromium");
        let profile = self.dir.path().join("profile");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--disable-default-apps",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
                // Exports are downloads: keep them in the temporary dir.
                "prefs": {
                    "download.default_directory": self.dir.path(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("starting Chromium through chromedriver: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser it started.
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) with a process-group id we created; no memory is
        // involved.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut log = String::new();
            if let Ok(mut file) = std::fs::File::open(&self.log) {
                let _ = file.read_to_string(&mut log);
            }
            let tail: String = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("chromedriver log (last lines):\n{tail}");
        }
    }
}

/// The console page in the browser, with waits that poll the DOM.
struct Page {
    client: Client,
}

impl Page {
    async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script:?} in the page: {e}"))
    }

    /// Waits until the JavaScript expression `condition` is true.
    async fn wait_until(&self, condition: &str, what: &str) {
        let script = format!("return Boolean({condition});");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Value::Bool(true)) = self.client.execute(&script, vec![]).await {
                return;
            }
            if Instant::now() > deadline {
                let page = self
                    .eval("return document.body ? document.body.innerText : ''")
                    .await;
                panic!(
                    "waited {PATIENCE:?} for {what} ({condition}); the page shows:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_policy_and_asks_for_a_token() {
    let dir = temp_dir();
    let kefu = Kefu::start(config(dir.path(), "")).await;

    let page = reqwest::get(kefu.url("/console")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert!(
        header("content-security-policy").contains("script-src 'self';"),
        "{}",
        header("content-security-policy")
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    let script = reqwest::get(kefu.url("/console/app.js")).await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let Some(driver) = Driver::start().await else {
        kefu.stop().await;
        return;
    };
    let page = Page {
        client: driver.browser().await,
    };
    page.client.goto(&kefu.url("/console")).await.unwrap();
    page.wait_until("!document.getElementById('login').hidden", "the login form")
        .await;
    page.type_into("#token", "kefu_nobody_not-a-real-token")
        .await;
    page.click("#login-button").await;
    // A token kefu does not know: the agent stays at the login form and is
    // told why, in kefu's own words.
    page.wait_until(
        "!document.getElementById('login-error').hidden && document.getElementById('login-error').textContent.length > 0",
        "the login error",
    )
    .await;
    assert!(
        page.eval("return document.getElementById('app').hidden")
            .await
            == true
    );
    assert_eq!(
        page.eval("return sessionStorage.length").await,
        json!(0),
        "a refused token is not kept"
    );
    page.close().await;
    drop(driver);
    kefu.stop().await;
}

/// An agent's token and its `[agents.<id>]` entry for kefu.toml.
fn agent(id: &str, name: &str, role: &str) -> (String, String) {
    let token = kefu::agents::token::generate(id);
    let hash = kefu::agents::token::hash(&token);
    let toml =
        format!("[agents.{id}]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_hash = \"{hash}\"\n");
    (token, toml)
}

/// A message from Ana, the buyer the test follows.
fn buyer_message(id: &str, text: &str) -> String {
    json!({
        "message_id": id,
        "conversation_id": "buyer-42",
        "text": text,
        "buyer": { "id": "b42", "name": "Ana Buyer", "locale": "en-GB", "country": "GB" },
    })
    .to_string()
}

/// Messages from two other buyers that also need a person, so the queue
/// has an order to show.
fn other_buyers() -> [String; 2] {
    [
        json!({
            "message_id": "m-lucia",
            "conversation_id": "buyer-7",
            "text": "El paquete llegó roto y quiero un reembolso",
            "buyer": { "id": "b7", "name": "Lucía", "locale": "es-MX", "country": "MX" },
        })
        .to_string(),
        json!({
            "message_id": "m-dmitry",
            "conversation_id": "buyer-9",
            "text": "Посылка так и не пришла, я открою спор",
            "buyer": { "id": "b9", "name": "Дмитрий", "locale": "ru-RU", "country": "RU" },
        })
        .to_string(),
    ]
}

/// The buyer channel's callbacks for our conversation, in order.
fn callbacks(sink: &Fake) -> Vec<Callback> {
    sink.received()
        .iter()
        .filter(|r| r.path == "/replies")
        .map(|r| serde_json::from_slice::<Callback>(&r.body).unwrap())
        .filter(|c| c.conversation_id == "buyer-42")
        .collect()
}

async fn wait_callbacks(sink: &Fake, n: usize, what: &str) -> Vec<Callback> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = callbacks(sink);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {what}: the buyer's channel got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A JavaScript string literal (JSON is valid JavaScript).
fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_claims_answers_and_hands_back_in_the_console() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let dir = temp_dir();
    let sink = Fake::start().await;
    let (token, alice) = agent("alice", "Alice", "agent");
    let (boss_token, boss) = agent("boss", "Mei the supervisor", "supervisor");
    let kefu = Kefu::start(config(
        dir.path(),
        &format!(
            "[channels.demo]\ncallback_url = \"{}\"\n{alice}{boss}",
            sink.url("/replies")
        ),
    ))
    .await;
    let http = reqwest::Client::new();

    // The buyer asks for a person: kefu says when someone will answer and
    // opens a ticket.
    let accepted = kefu
        .post(
            "/v1/channels/demo/messages",
            &buyer_message("m-1", "I want to talk to a real person"),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let told = wait_callbacks(&sink, 1, "the buyer being told a person will answer").await;
    assert!(!told[0].text.is_empty());
    for body in other_buyers() {
        let accepted = kefu.post("/v1/channels/demo/messages", &body).await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    }
    let deadline = Instant::now() + PATIENCE;
    let queue = loop {
        let list: Value = http
            .get(kefu.url("/v1/tickets"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tickets = list["tickets"].as_array().cloned().unwrap_or_default();
        if tickets.len() == 3 {
            break tickets;
        }
        assert!(Instant::now() < deadline, "expected three tickets: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ticket = queue
        .iter()
        .find(|t| t["buyer_name"] == "Ana Buyer")
        .unwrap_or_else(|| panic!("no ticket for Ana: {queue:?}"))
        .clone();
    let id = ticket["id"].as_i64().unwrap();
    let reason = ticket["reason"].as_str().unwrap().to_string();

    let page = Page {
        client: driver.browser().await,
    };
    {
        page.client.goto(&kefu.url("/console")).await.unwrap();
        page.wait_until("!document.getElementById('login').hidden", "the login form")
            .await;
        page.type_into("#token", &token).await;
        page.type_into("#token", "\u{E007}").await; // Enter submits the form.
        page.wait_until(
            "!document.getElementById('app').hidden && document.getElementById('who').textContent.includes('Alice')",
            "the console after login",
        )
        .await;
    }

    // The queue shows the ticket with its priority and reason.
    let item = format!("#queue button[data-ticket=\"{id}\"]");
    page.wait_until(
        &format!("document.querySelector({})", js(&item)),
        "the ticket in the queue",
    )
    .await;
    page.wait_until(
        "document.querySelectorAll('#queue button[data-ticket]').length === 3",
        "all three tickets in the queue",
    )
    .await;
    let order = page
        .eval("return [...document.querySelectorAll('#queue button[data-ticket]')].map((b) => Number(b.dataset.ticket))")
        .await;
    let expected: Vec<Value> = queue.iter().map(|t| t["id"].clone()).collect();
    assert_eq!(
        order,
        Value::Array(expected),
        "the queue keeps kefu's order: most urgent, then longest waiting"
    );
    let queued = page.text(&item).await;
    assert!(queued.contains(&reason), "{queued}");
    assert!(
        queued.contains(ticket["priority_label"].as_str().unwrap()),
        "{queued}"
    );
    assert!(
        queued.contains("I want to talk to a real person"),
        "{queued}"
    );

    // Open it: the transcript and why it came to a person.
    page.click(&item).await;
    page.wait_until(
        "!document.getElementById('conv').hidden && document.querySelectorAll('#transcript li').length >= 2",
        "the conversation view",
    )
    .await;
    assert!(
        page.client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with(&format!("#ticket={id}"))
    );
    let why = page.text("#escalations").await;
    assert!(why.contains(&reason), "escalation reason shown: {why}");
    let transcript = page.text("#transcript").await;
    assert!(
        transcript.contains("I want to talk to a real person"),
        "{transcript}"
    );
    assert!(
        transcript.contains(&told[0].text),
        "the bot's notice is in the transcript: {transcript}"
    );

    // Claim, insert a quick phrase, edit it, send with Ctrl+Enter.
    assert_eq!(
        page.eval("return document.getElementById('send').disabled")
            .await,
        true
    );
    page.click("#claim").await;
    page.wait_until(
        "!document.getElementById('send').disabled && document.getElementById('conv-state').textContent.includes('you')",
        "the ticket claimed by Alice",
    )
    .await;
    page.wait_until(
        "document.querySelectorAll('#phrase option').length > 1",
        "quick phrases",
    )
    .await;
    let phrases: Value = http
        .get(kefu.url(&format!("/v1/tickets/{id}/phrases")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The shipping-time phrase, in the buyer's language, filled in.
    let (index, phrase) = phrases["phrases"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .find(|(_, p)| p["intent"] == "shipping_time")
        .map(|(i, p)| (i, p["text"].as_str().unwrap().to_string()))
        .unwrap_or_else(|| panic!("no shipping_time phrase: {phrases}"));
    page.find("#phrase")
        .await
        .select_by_value(&index.to_string())
        .await
        .unwrap();
    page.wait_until(
        &format!(
            "document.getElementById('reply-text').value === {}",
            js(&phrase)
        ),
        "the quick phrase in the reply box",
    )
    .await;
    page.type_into(
        "#reply-text",
        " Alice here: your parcel leaves our warehouse tomorrow.",
    )
    .await;
    // Ctrl+Enter sends (then Ctrl is released).
    page.type_into("#reply-text", "\u{E009}\u{E007}\u{E000}")
        .await;
    let replies = wait_callbacks(&sink, 2, "the agent's reply on the buyer's channel").await;
    assert!(
        replies[1].text.starts_with(&phrase)
            && replies[1]
                .text
                .ends_with("Alice here: your parcel leaves our warehouse tomorrow."),
        "{:?}",
        replies[1].text
    );
    page.wait_until(
        "document.querySelector('#transcript li.agent') && document.getElementById('reply-text').value === ''",
        "the reply in the transcript and the box cleared",
    )
    .await;
    // A private note: shown to agents, never sent to the buyer.
    page.type_into("#note-text", "Buyer prefers e-mail; order not placed yet.")
        .await;
    page.type_into("#note-text", "\u{E009}\u{E007}\u{E000}")
        .await;
    page.wait_until(
        "document.getElementById('notes').textContent.includes('Buyer prefers e-mail')",
        "the note",
    )
    .await;
    page.click("#status").await; // Dismiss the "Note added." message.
    if let Some(path) = std::env::var_os("KEFU_SCREENSHOT") {
        std::fs::write(&path, page.client.screenshot().await.unwrap()).unwrap();
    }

    // The buyer writes again while Alice holds the ticket: it goes to her,
    // not the bot, and markup in it stays text.
    let hostile = "<img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned'</script> still there?";
    kefu.post("/v1/channels/demo/messages", &buyer_message("m-2", hostile))
        .await;
    page.wait_until(
        &format!(
            "[...document.querySelectorAll('#transcript li.buyer .text')].some((e) => e.textContent === {})",
            js(hostile)
        ),
        "the buyer's markup shown as text",
    )
    .await;
    assert_eq!(
        page.eval("return document.querySelectorAll('img').length")
            .await,
        json!(0)
    );
    assert_eq!(
        page.eval("return document.querySelectorAll('script').length")
            .await,
        json!(1),
        "only the console's own script"
    );
    assert_eq!(
        page.eval("return document.querySelectorAll('[onerror]').length")
            .await,
        json!(0)
    );
    let title = page.eval("return document.title").await;
    assert!(
        title.as_str().is_some_and(|t| t.ends_with("kefu console")),
        "{title}"
    );
    // The pipeline has had its coalescing window many times over by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        callbacks(&sink).len(),
        2,
        "the bot stays silent while Alice holds the ticket"
    );

    // Export: the console fetches the transcript with Alice's token and
    // hands it to the browser as a file.
    page.eval(
        "window.exported = []; const make = URL.createObjectURL; \
         URL.createObjectURL = (blob) => { window.exported.push(blob); return make(blob); }; return true;",
    )
    .await;
    page.click("#export-csv").await;
    page.wait_until("window.exported.length === 1", "the CSV export")
        .await;
    let csv = page
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; window.exported[0].text().then(done);",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap();
    assert!(csv.contains("I want to talk to a real person"), "{csv}");
    assert!(
        csv.contains("your parcel leaves our warehouse tomorrow"),
        "{csv}"
    );

    // Hand back: the bot answers the next message again.
    page.click("#handback").await;
    page.wait_until(
        "document.getElementById('conv-state').textContent === 'handed back to the bot'",
        "the ticket handed back",
    )
    .await;
    kefu.post(
        "/v1/channels/demo/messages",
        &buyer_message("m-3", "How long does shipping take to Mexico?"),
    )
    .await;
    let answers = wait_callbacks(&sink, 3, "the bot's answer after hand-back").await;
    assert!(answers[2].text.contains("25–60"), "{:?}", answers[2].text);

    // A supervisor assigns a waiting ticket to Alice; agents see no such
    // control.
    assert_eq!(
        page.eval("return document.getElementById('assign-box').hidden")
            .await,
        true
    );
    page.click("#logout").await;
    page.wait_until(
        "!document.getElementById('login').hidden",
        "the login form again",
    )
    .await;
    page.type_into("#token", &boss_token).await;
    page.type_into("#token", "\u{E007}").await;
    let waiting = queue.iter().find(|t| t["buyer_name"] == "Lucía").unwrap()["id"].clone();
    page.wait_until(
        &format!("document.querySelector('#queue button[data-ticket=\"{waiting}\"]')"),
        "Lucía's ticket in the supervisor's queue",
    )
    .await;
    page.click(&format!("#queue button[data-ticket=\"{waiting}\"]"))
        .await;
    page.wait_until(
        "!document.getElementById('assign-box').hidden && document.getElementById('conv-title').textContent === 'Lucía'",
        "the assign control",
    )
    .await;
    page.type_into("#assign-agent", "alice").await;
    page.click("#assign").await;
    page.wait_until(
        "document.getElementById('conv-state').textContent === 'claimed by alice' && document.getElementById('claim').disabled",
        "the ticket assigned to Alice",
    )
    .await;

    page.close().await;
    drop(driver);
    kefu.stop().await;
}
