//! Test harness: kefu started in-process on 127.0.0.1:0 with its own
//! temporary SQLite file, and fake external servers (callback receivers,
//! platform APIs) that are real HTTP servers on 127.0.0.1:0 and record what
//! they receive.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kefu::Engine;
use kefu::config::Config;
use kefu::packs::PackSource;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The built-in engine, compiled once for all tests.
pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = Config::load(None).expect("built-in config");
            Arc::new(
                Engine::load(
                    &PackSource::builtin(),
                    config.facts.clone(),
                    config.default_lang().unwrap(),
                )
                .expect("built-in packs"),
            )
        })
        .clone()
}

/// A running kefu.
pub struct Kefu {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), kefu::server::ServeError>>>,
}

/// Settings for a test: `extra` is TOML merged over a base that puts the
/// database in `dir` and makes the pipeline and retries quick.
pub fn config(dir: &Path, extra: &str) -> Config {
    let path = dir.join("kefu.toml");
    let db = dir.join("kefu.db");
    let base = format!(
        "[database]\nurl = \"sqlite://{}?mode=rwc\"\n[pipeline]\ncoalesce_ms = 50\n[outbox]\nretry_base_ms = 20\nretry_max_ms = 200\npoll_ms = 50\nlease_ms = 2000\nrequest_timeout_ms = 2000\n",
        db.display()
    );
    let mut merged: toml::Table = toml::from_str(&base).unwrap();
    let extra: toml::Table = toml::from_str(extra).expect("test TOML");
    merge(&mut merged, extra);
    std::fs::write(&path, toml::to_string(&merged).unwrap()).unwrap();
    Config::load(Some(&path)).expect("test config")
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

impl Kefu {
    pub async fn start(config: Config) -> Kefu {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(kefu::server::run(config, engine(), listener, async move {
            let _ = rx.await;
        }));
        let kefu = Kefu {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        };
        kefu.wait_ready().await;
        kefu
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(self.url("/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("kefu did not become ready");
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        let result = tokio::time::timeout(Duration::from_secs(20), self.task.take().unwrap())
            .await
            .expect("kefu stops within 20 s");
        result.expect("no panic").expect("clean shutdown");
    }

    /// Stops kefu abruptly, as a crash would: no graceful shutdown.
    pub async fn kill(mut self) {
        let task = self.task.take().unwrap();
        task.abort();
        let _ = task.await;
    }

    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Kefu {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One request a fake server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A scripted answer: status and body.
pub type Answer = (StatusCode, String);

/// A fake HTTP server that records every request and answers from a script
/// (then with its default answer).
#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Answer>>,
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Fake {
            addr,
            requests: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new((StatusCode::OK, "{\"ok\":true}".to_string()))),
        };
        let state = fake.clone();
        let app = Router::new().fallback(
            move |method: axum::http::Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.handle(method.to_string(), uri, headers, body) }
            },
        );
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    fn handle(&self, method: String, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        self.requests.lock().unwrap().push(Recorded {
            method,
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            headers,
            body,
        });
        let (status, body) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.lock().unwrap().clone());
        (status, [("content-type", "application/json")], body).into_response()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next requests with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    pub fn set_default(&self, answer: Answer) {
        *self.default.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests matching `path` arrived.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Recorded> {
        for _ in 0..1000 {
            let got: Vec<Recorded> = self
                .received()
                .into_iter()
                .filter(|r| r.path == path)
                .collect();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} requests to {path}, got {:?}",
            self.received().iter().map(|r| &r.path).collect::<Vec<_>>()
        );
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("kefu.db")
}
