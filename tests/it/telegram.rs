//! The Telegram channel end to end: kefu long-polls a fake Bot API on
//! 127.0.0.1 and answers through its `sendMessage`.
//!
//! The fake keeps every update it was given and serves those at or after the
//! requested offset, holding an empty poll open (up to the requested
//! timeout) until an update arrives, as Telegram does. It never forgets
//! updates, like a Telegram that did not get kefu's confirmation: only the
//! offset kefu sends keeps old updates away.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::support::{Kefu, config, temp_dir};

const TOKEN: &str = "123:ABC";
const TRACKING: &str = "RR123456789CN";

/// One request the fake received.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    body: Value,
    /// What the fake answered.
    status: StatusCode,
}

#[derive(Default)]
struct State {
    updates: Vec<Value>,
    next_update_id: i64,
    polls: Vec<Call>,
    sends: Vec<Call>,
    /// Answers for the next getUpdates / sendMessage calls, before the
    /// normal ones.
    poll_script: VecDeque<(StatusCode, Value)>,
    send_script: VecDeque<(StatusCode, Value)>,
}

#[derive(Clone)]
struct FakeTelegram {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Bumped whenever an update is added: wakes held polls.
    arrived: watch::Sender<u64>,
}

impl FakeTelegram {
    async fn start() -> FakeTelegram {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeTelegram {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                next_update_id: 500,
                ..State::default()
            })),
            arrived: watch::channel(0).0,
        };
        let this = fake.clone();
        let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
            let this = this.clone();
            async move { this.handle(uri, body).await }
        });
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    fn config(&self, dir: &std::path::Path, extra: &str) -> kefu::config::Config {
        config(
            dir,
            &format!(
                "[channels.tg]\nkind = \"telegram\"\ntoken = \"{TOKEN}\"\nbase_url = \"http://{}\"\npoll_ms = 200\n{extra}",
                self.addr
            ),
        )
    }

    async fn handle(&self, uri: Uri, body: Bytes) -> Response {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, answer) = match uri.path().strip_prefix(&format!("/bot{TOKEN}/")) {
            Some("getUpdates") => self.get_updates(body).await,
            Some("sendMessage") => self.send_message(body),
            Some(_) => (
                StatusCode::NOT_FOUND,
                json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            ),
            None => (
                StatusCode::UNAUTHORIZED,
                json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            ),
        };
        (status, axum::Json(answer)).into_response()
    }

    async fn get_updates(&self, body: Value) -> (StatusCode, Value) {
        let mut arrived = self.arrived.subscribe();
        let scripted = {
            let mut state = self.state.lock().unwrap();
            let answer = state.poll_script.pop_front();
            state.polls.push(Call {
                at: Instant::now(),
                body: body.clone(),
                status: answer.as_ref().map_or(StatusCode::OK, |a| a.0),
            });
            answer
        };
        if let Some(answer) = scripted {
            return answer;
        }
        let offset = body["offset"].as_i64().unwrap_or(0);
        let hold = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            arrived.borrow_and_update();
            let due: Vec<Value> = self
                .state
                .lock()
                .unwrap()
                .updates
                .iter()
                .filter(|u| u["update_id"].as_i64().unwrap() >= offset)
                .cloned()
                .collect();
            if !due.is_empty() {
                return (StatusCode::OK, json!({"ok": true, "result": due}));
            }
            match tokio::time::timeout_at(deadline, arrived.changed()).await {
                Ok(Ok(())) => continue,
                _ => return (StatusCode::OK, json!({"ok": true, "result": []})),
            }
        }
    }

    fn send_message(&self, body: Value) -> (StatusCode, Value) {
        let mut state = self.state.lock().unwrap();
        let (status, answer) = state.send_script.pop_front().unwrap_or_else(|| {
            (
                StatusCode::OK,
                json!({"ok": true, "result": {"message_id": 1, "chat": {"id": body["chat_id"]}, "text": body["text"]}}),
            )
        });
        state.sends.push(Call {
            at: Instant::now(),
            body,
            status,
        });
        (status, answer)
    }

    /// Queues a message update; returns its update_id.
    fn push(&self, chat: i64, from: Value, text: &str) -> i64 {
        let id = {
            let mut state = self.state.lock().unwrap();
            let id = state.next_update_id;
            state.next_update_id += 1;
            state.updates.push(json!({
                "update_id": id,
                "message": {
                    "message_id": id * 10,
                    "date": 1_795_341_600,
                    "chat": {"id": chat, "type": "private"},
                    "from": from,
                    "text": text,
                }
            }));
            id
        };
        self.arrived.send_modify(|n| *n += 1);
        id
    }

    fn polls(&self) -> Vec<Call> {
        self.state.lock().unwrap().polls.clone()
    }

    fn sends(&self) -> Vec<Call> {
        self.state.lock().unwrap().sends.clone()
    }

    /// Waits (generously) until `n` sendMessage calls arrived.
    async fn wait_for_sends(&self, n: usize) -> Vec<Call> {
        wait_until(&format!("{n} sendMessage calls"), || {
            let sends = self.sends();
            (sends.len() >= n).then_some(sends)
        })
        .await
    }

    /// Waits until a poll asked for `offset`.
    async fn wait_for_poll_at(&self, offset: i64) -> Call {
        wait_until(&format!("a poll at offset {offset}"), || {
            self.polls()
                .into_iter()
                .find(|p| p.body["offset"].as_i64() == Some(offset))
        })
        .await
    }
}

async fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(found) = check() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn buyer(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": "Ana", "last_name": "Lima", "language_code": "en"})
}

fn a_bot(id: i64) -> Value {
    json!({"id": id, "is_bot": true, "first_name": "OtherShopBot", "username": "other_shop_bot"})
}

async fn metrics(kefu: &Kefu) -> String {
    reqwest::get(kefu.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn open_store(dir: &std::path::Path) -> kefu::store::Store {
    kefu::store::Store::open(&format!("sqlite://{}", dir.join("kefu.db").display()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_message_is_answered_in_its_chat() {
    let dir = temp_dir();
    let tg = FakeTelegram::start().await;
    let update = tg.push(
        1001,
        buyer(1001),
        &format!("where is my package {TRACKING}?"),
    );
    let kefu = Kefu::start(tg.config(dir.path(), "")).await;

    let sends = tg.wait_for_sends(1).await;
    assert_eq!(sends[0].body["chat_id"], json!(1001));
    let text = sends[0].body["text"].as_str().unwrap();
    assert!(text.contains(TRACKING), "{text}");

    // Long polling for messages only, and the next poll confirms the update.
    let first = &tg.polls()[0];
    assert_eq!(first.body["timeout"], json!(25));
    assert_eq!(first.body["allowed_updates"], json!(["message"]));
    assert_eq!(
        first.body.get("offset"),
        None,
        "no offset before any update"
    );
    tg.wait_for_poll_at(update + 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tg.sends().len(), 1, "answered once");
    kefu.stop().await;

    // What the buyer told Telegram about themselves was kept.
    let store = open_store(dir.path()).await;
    let id = store
        .find_conversation("tg", "1001")
        .await
        .unwrap()
        .unwrap();
    let conversation = store.conversation(id).await.unwrap().unwrap();
    assert_eq!(conversation.buyer_id.as_deref(), Some("1001"));
    assert_eq!(conversation.buyer_name.as_deref(), Some("Ana Lima"));
    assert_eq!(conversation.buyer_locale.as_deref(), Some("en"));
    assert_eq!(
        store.cursor("telegram:tg").await.unwrap(),
        Some((update + 1).to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_at_the_persisted_offset() {
    let dir = temp_dir();
    let tg = FakeTelegram::start().await;
    let old = tg.push(
        2001,
        buyer(2001),
        &format!("where is my package {TRACKING}?"),
    );
    let kefu = Kefu::start(tg.config(dir.path(), "")).await;
    tg.wait_for_sends(1).await;
    // kefu now holds a 25 s long poll open; stopping must not wait for it.
    tg.wait_for_poll_at(old + 1).await;
    tokio::time::timeout(Duration::from_secs(10), kefu.stop())
        .await
        .expect("stops without waiting out the long poll");

    let polls_before = tg.polls().len();
    let kefu = Kefu::start(tg.config(dir.path(), "")).await;
    let resumed = wait_until("a poll after the restart", || {
        tg.polls().get(polls_before).cloned()
    })
    .await;
    assert_eq!(
        resumed.body["offset"],
        json!(old + 1),
        "the first poll after the restart asks for what follows the last accepted update"
    );

    let new = tg.push(2002, buyer(2002), "do you ship to Brazil?");
    let sends = tg.wait_for_sends(2).await;
    assert_eq!(sends[1].body["chat_id"], json!(2002));
    tg.wait_for_poll_at(new + 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let chats: Vec<Value> = tg
        .sends()
        .iter()
        .map(|s| s.body["chat_id"].clone())
        .collect();
    assert_eq!(
        chats,
        vec![json!(2001), json!(2002)],
        "the old update was not answered again"
    );
    assert!(
        tg.polls()[polls_before..]
            .iter()
            .all(|p| p.body["offset"].as_i64() > Some(old)),
        "the old update was never asked for again"
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_control_on_send_is_waited_out_and_the_reply_sent_once() {
    let dir = temp_dir();
    let tg = FakeTelegram::start().await;
    tg.state.lock().unwrap().send_script.push_back((
        StatusCode::TOO_MANY_REQUESTS,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
    ));
    tg.push(
        3001,
        buyer(3001),
        &format!("where is my package {TRACKING}?"),
    );
    let kefu = Kefu::start(tg.config(dir.path(), "")).await;

    let sends = tg.wait_for_sends(2).await;
    assert_eq!(sends[0].status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sends[1].status, StatusCode::OK);
    assert_eq!(sends[0].body, sends[1].body, "the same reply, retried");
    // The outbox's own retry delay in tests is 20–200 ms; only Telegram's
    // retry_after explains a pause of a second.
    let pause = sends[1].at - sends[0].at;
    assert!(
        pause >= Duration::from_millis(950),
        "retried after {pause:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sends = tg.sends();
    assert_eq!(sends.len(), 2, "no attempt after the one that succeeded");
    assert!(
        metrics(&kefu)
            .await
            .contains("kefu_messages_out_total{channel=\"tg\"} 1")
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_bots_are_ignored() {
    let dir = temp_dir();
    let tg = FakeTelegram::start().await;
    tg.push(
        4001,
        a_bot(4001),
        &format!("where is my package {TRACKING}?"),
    );
    tg.push(4002, a_bot(4099), "hello!");
    let human = tg.push(
        4003,
        buyer(4003),
        &format!("where is my package {TRACKING}?"),
    );
    let kefu = Kefu::start(tg.config(dir.path(), "")).await;

    let sends = tg.wait_for_sends(1).await;
    assert_eq!(sends[0].body["chat_id"], json!(4003));
    // Bot updates come first, so they were dealt with before the human's.
    tg.wait_for_poll_at(human + 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tg.sends().len(), 1, "only the human was answered");
    let metrics = metrics(&kefu).await;
    assert!(
        metrics.contains("kefu_messages_in_total{channel=\"tg\",outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    kefu.stop().await;
    let store = open_store(dir.path()).await;
    assert_eq!(store.find_conversation("tg", "4001").await.unwrap(), None);
    assert_eq!(store.find_conversation("tg", "4002").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_errors_back_off_and_flood_control_is_waited_out() {
    let dir = temp_dir();
    let tg = FakeTelegram::start().await;
    tg.state.lock().unwrap().poll_script.extend([
        (
            StatusCode::BAD_GATEWAY,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        ),
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
        ),
    ]);
    tg.push(
        5001,
        buyer(5001),
        &format!("where is my package {TRACKING}?"),
    );
    let kefu = Kefu::start(tg.config(dir.path(), "")).await;

    let sends = tg.wait_for_sends(1).await;
    assert_eq!(sends[0].body["chat_id"], json!(5001));
    let polls = tg.polls();
    assert_eq!(polls[0].status, StatusCode::BAD_GATEWAY);
    assert_eq!(polls[1].status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(polls[2].status, StatusCode::OK);
    let pause = polls[2].at - polls[1].at;
    assert!(
        pause >= Duration::from_millis(950),
        "polled again after {pause:?}, before retry_after"
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_bot_gives_up_at_once_and_hands_over() {
    let dir = temp_dir();
    let tg = FakeTelegram::start().await;
    tg.state.lock().unwrap().send_script.push_back((
        StatusCode::FORBIDDEN,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    ));
    tg.push(
        6001,
        buyer(6001),
        &format!("where is my package {TRACKING}?"),
    );
    let kefu = Kefu::start(tg.config(dir.path(), "")).await;
    tg.wait_for_sends(1).await;
    let mut handed_over = false;
    for _ in 0..500 {
        if metrics(&kefu)
            .await
            .contains("kefu_escalations_total{reason=\"delivery_failed\"} 1")
        {
            handed_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(handed_over, "{}", metrics(&kefu).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(tg.sends().len(), 1, "a permanent refusal is not retried");
    kefu.stop().await;

    let store = open_store(dir.path()).await;
    let id = store
        .find_conversation("tg", "6001")
        .await
        .unwrap()
        .unwrap();
    let escalations = store.escalations(id).await.unwrap();
    let detail = escalations[0].1.clone().unwrap_or_default();
    assert_eq!(escalations[0].0, "delivery_failed");
    assert!(detail.contains("blocked by the user"), "{detail}");
    assert!(!detail.contains(TOKEN), "{detail}");
}
