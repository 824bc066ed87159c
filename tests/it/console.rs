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

use crate::support::{Kefu, config, temp_dir};

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
pub struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
    /// Chromium's fresh profile (`--user-data-dir`) and chromedriver's log.
    dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port, or says why it cannot: `None`
    /// after printing `SKIPPED` outside CI; a panic in CI.
    pub async fn start() -> Option<Driver> {
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
    pub async fn browser(&self) -> Client {
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
pub struct Page {
    pub client: Client,
}

impl Page {
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script:?} in the page: {e}"))
    }

    /// Waits until the JavaScript expression `condition` is true.
    pub async fn wait_until(&self, condition: &str, what: &str) {
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

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    pub async fn close(self) {
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
