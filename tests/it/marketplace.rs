//! The marketplace channel against a fake station-message API: a small axum
//! app on 127.0.0.1:0 that serves pages keyed by cursor, can fail on
//! request, and records every poll and every reply.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kefu::channel::marketplace::Reply;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::{Kefu, config, temp_dir};

/// One `GET /messages` the fake received.
#[derive(Debug, Clone)]
struct Poll {
    at: Instant,
    cursor: Option<String>,
    auth: Option<String>,
}

/// One `POST /messages` the fake received, and how it answered.
#[derive(Debug, Clone)]
struct Posted {
    auth: Option<String>,
    key: Option<String>,
    reply: Reply,
    status: StatusCode,
}

#[derive(Default)]
struct Market {
    /// Pages by cursor; `""` is the first poll (no cursor). Unknown cursors
    /// get an empty page that keeps the cursor.
    pages: HashMap<String, Value>,
    /// Answers to the next polls before any page: status, `Retry-After`.
    poll_failures: VecDeque<(StatusCode, Option<u64>)>,
    /// Answers to the next replies before they succeed.
    post_failures: VecDeque<StatusCode>,
    polls: Vec<Poll>,
    posts: Vec<Posted>,
}

#[derive(Clone)]
struct FakeMarket {
    addr: SocketAddr,
    state: Arc<Mutex<Market>>,
}

impl FakeMarket {
    async fn start() -> FakeMarket {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<Market>> = Arc::default();
        let app = Router::new()
            .route("/api/messages", get(serve_page).post(take_reply))
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeMarket { addr, state }
    }

    /// The channel's settings for kefu.
    fn channel(&self, poll_ms: u64) -> String {
        format!(
            "[channels.mp]\nkind = \"marketplace\"\nbase_url = \"http://{}/api\"\ntoken = \"t0k\"\npoll_ms = {poll_ms}\n",
            self.addr
        )
    }

    fn page(&self, cursor: &str, messages: &[(&str, &str, &str)], next: &str) {
        let messages: Vec<Value> = messages
            .iter()
            .map(|(id, conversation, text)| {
                json!({
                    "message_id": id,
                    "conversation_id": conversation,
                    "text": text,
                    "buyer": { "id": format!("b-{conversation}"), "name": "Sam", "locale": "en-CA", "country": "CA" },
                    "sent_at": 1_795_341_600,
                })
            })
            .collect();
        self.state.lock().unwrap().pages.insert(
            cursor.to_string(),
            json!({ "messages": messages, "next_cursor": next }),
        );
    }

    fn fail_polls(&self, answers: &[(StatusCode, Option<u64>)]) {
        self.state
            .lock()
            .unwrap()
            .poll_failures
            .extend(answers.iter().copied());
    }

    fn fail_posts(&self, answers: &[StatusCode]) {
        self.state
            .lock()
            .unwrap()
            .post_failures
            .extend(answers.iter().copied());
    }

    fn polls(&self) -> Vec<Poll> {
        self.state.lock().unwrap().polls.clone()
    }

    fn posts(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posts.clone()
    }

    /// Replies the fake accepted (2xx) for a conversation.
    fn delivered(&self, conversation: &str) -> Vec<Posted> {
        self.posts()
            .into_iter()
            .filter(|p| p.status.is_success() && p.reply.conversation_id == conversation)
            .collect()
    }

    /// Waits (generously) until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&FakeMarket) -> bool) {
        for _ in 0..1000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{what}: not within 10 s; polls {:?}, posts {:?}",
            self.polls(),
            self.posts()
        );
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn serve_page(
    State(state): State<Arc<Mutex<Market>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut market = state.lock().unwrap();
    let cursor = query.get("cursor").cloned();
    market.polls.push(Poll {
        at: Instant::now(),
        cursor: cursor.clone(),
        auth: header(&headers, "authorization"),
    });
    if let Some((status, after)) = market.poll_failures.pop_front() {
        let mut response = (status, "{\"error\":\"scripted failure\"}").into_response();
        if let Some(after) = after {
            response
                .headers_mut()
                .insert("retry-after", after.to_string().parse().unwrap());
        }
        return response;
    }
    let key = cursor.clone().unwrap_or_default();
    let page = market
        .pages
        .get(&key)
        .cloned()
        .unwrap_or_else(|| json!({ "messages": [], "next_cursor": cursor }));
    axum::Json(page).into_response()
}

async fn take_reply(
    State(state): State<Arc<Mutex<Market>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut market = state.lock().unwrap();
    let status = market.post_failures.pop_front().unwrap_or(StatusCode::OK);
    let reply: Reply = serde_json::from_slice(&body).expect("reply body");
    market.posts.push(Posted {
        auth: header(&headers, "authorization"),
        key: header(&headers, "idempotency-key"),
        reply,
        status,
    });
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_messages_are_answered_through_the_api() {
    let dir = temp_dir();
    let market = FakeMarket::start().await;
    market.page(
        "",
        &[
            ("m-1", "c-1", "how long does shipping to Canada take?"),
            ("m-2", "c-2", "where is my order?"),
        ],
        "p1",
    );
    let kefu = Kefu::start(config(dir.path(), &market.channel(100))).await;

    market
        .until("both replies", |m| {
            !m.delivered("c-1").is_empty() && !m.delivered("c-2").is_empty()
        })
        .await;
    let shipping = &market.delivered("c-1")[0];
    assert!(
        shipping.reply.text.contains("25–60"),
        "{}",
        shipping.reply.text
    );
    let mut keys = Vec::new();
    for post in market.posts() {
        assert_eq!(post.auth.as_deref(), Some("Bearer t0k"));
        assert!(!post.reply.idempotency_key.is_empty());
        assert_eq!(
            post.key.as_deref(),
            Some(post.reply.idempotency_key.as_str())
        );
        assert!(!post.reply.text.is_empty());
        keys.push(post.reply.idempotency_key);
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 2, "one key per reply");

    // The next poll continues from the page's cursor.
    market
        .until("a poll with cursor p1", |m| {
            m.polls().iter().any(|p| p.cursor.as_deref() == Some("p1"))
        })
        .await;
    let polls = market.polls();
    assert_eq!(polls[0].cursor, None, "the first poll has no cursor");
    assert!(
        polls
            .iter()
            .all(|p| p.auth.as_deref() == Some("Bearer t0k"))
    );
    kefu.stop().await;
    assert_eq!(market.posts().len(), 2, "exactly one reply per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_survives_a_restart() {
    let dir = temp_dir();
    let market = FakeMarket::start().await;
    market.page("", &[("m-1", "c-1", "hello, do you ship to Canada?")], "p1");
    let kefu = Kefu::start(config(dir.path(), &market.channel(100))).await;
    market
        .until("the first reply", |m| !m.delivered("c-1").is_empty())
        .await;
    // The cursor is stored before the poll that uses it.
    market
        .until("a poll with cursor p1", |m| {
            m.polls().iter().any(|p| p.cursor.as_deref() == Some("p1"))
        })
        .await;
    kefu.stop().await;

    let before = market.polls().len();
    market.page("p1", &[("m-2", "c-2", "where is my order?")], "p2");
    let kefu = Kefu::start(config(dir.path(), &market.channel(100))).await;
    market
        .until("the reply after the restart", |m| {
            !m.delivered("c-2").is_empty()
        })
        .await;
    let after: Vec<Poll> = market.polls().split_off(before);
    assert_eq!(
        after[0].cursor.as_deref(),
        Some("p1"),
        "the restart continues where the last run stopped"
    );
    assert!(
        after.iter().all(|p| p.cursor.is_some()),
        "never back to the first page: {after:?}"
    );
    kefu.stop().await;
    assert_eq!(market.delivered("c-1").len(), 1, "no repeat of m-1");
    assert_eq!(market.delivered("c-2").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_served_again_is_not_answered_twice() {
    // As after a crash between storing a page and saving its cursor: the
    // platform serves a message kefu already has.
    let dir = temp_dir();
    let market = FakeMarket::start().await;
    market.page("", &[("m-1", "c-1", "hello")], "p1");
    market.page(
        "p1",
        &[
            ("m-1", "c-1", "hello"),
            ("m-2", "c-2", "where is my order?"),
        ],
        "p2",
    );
    let kefu = Kefu::start(config(dir.path(), &market.channel(100))).await;
    market
        .until("the reply to m-2", |m| !m.delivered("c-2").is_empty())
        .await;
    // m-1's repeat came before m-2 on the page; give a reply to it time to
    // show up if one was (wrongly) made.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kefu.stop().await;
    assert_eq!(market.delivered("c-1").len(), 1);
    assert_eq!(market.delivered("c-2").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_polls_back_off_then_messages_flow() {
    let dir = temp_dir();
    let market = FakeMarket::start().await;
    let error = StatusCode::INTERNAL_SERVER_ERROR;
    market.fail_polls(&[
        (error, None),
        (error, None),
        (error, None),
        (StatusCode::TOO_MANY_REQUESTS, Some(1)),
    ]);
    market.page("", &[("m-1", "c-1", "where is my order?")], "p1");
    let kefu = Kefu::start(config(dir.path(), &market.channel(100))).await;
    market
        .until("the reply after the failures", |m| {
            !m.delivered("c-1").is_empty()
        })
        .await;
    let polls = market.polls();
    assert!(polls.len() >= 5, "{polls:?}");
    // Lower bounds only (a sleep never ends early): the backoff from
    // poll_ms = 100 with jitter ∈ [0.5, 1] is at least 50, 100, 200 ms, and
    // the 429's Retry-After of 1 s beats the fourth step (≤ 800 ms).
    let minimum = [50, 100, 200, 1000];
    for (i, ms) in minimum.into_iter().enumerate() {
        let gap = polls[i + 1].at - polls[i].at;
        assert!(
            gap >= Duration::from_millis(ms),
            "pause after failure {}: {gap:?} < {ms} ms",
            i + 1
        );
    }
    kefu.stop().await;
    assert_eq!(market.delivered("c-1").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_reply_is_retried_and_arrives_once() {
    let dir = temp_dir();
    let market = FakeMarket::start().await;
    market.fail_posts(&[StatusCode::SERVICE_UNAVAILABLE]);
    market.page("", &[("m-1", "c-1", "where is my order?")], "p1");
    let kefu = Kefu::start(config(dir.path(), &market.channel(100))).await;
    market
        .until("the retried reply", |m| !m.delivered("c-1").is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kefu.stop().await;
    let posts = market.posts();
    let statuses: Vec<StatusCode> = posts.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        [StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK],
        "{posts:?}"
    );
    assert_eq!(
        posts[0].reply, posts[1].reply,
        "the retry is the same reply with the same idempotency key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_reply_is_not_retried() {
    let dir = temp_dir();
    let market = FakeMarket::start().await;
    market.fail_posts(&[StatusCode::BAD_REQUEST]);
    market.page("", &[("m-1", "c-1", "where is my order?")], "p1");
    let kefu = Kefu::start(config(dir.path(), &market.channel(100))).await;
    market
        .until("the first attempt", |m| !m.posts().is_empty())
        .await;
    // Retries start after 20 ms in the test settings; half a second would
    // show several.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kefu.stop().await;
    assert_eq!(market.posts().len(), 1, "a 400 is permanent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_does_not_wait_out_the_poll_pause() {
    let dir = temp_dir();
    let market = FakeMarket::start().await;
    // Ten minutes between polls; Kefu::stop allows 20 s.
    let kefu = Kefu::start(config(dir.path(), &market.channel(600_000))).await;
    market
        .until("the first poll", |m| !m.polls().is_empty())
        .await;
    kefu.stop().await;
}
