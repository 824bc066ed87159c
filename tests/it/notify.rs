//! Ticket notices: the SLA watcher under paused tokio time, two replicas
//! scanning at once, and delivery to fake chat webhooks with retries, error
//! codes in 200 answers, signatures and dead letters.
//!
//! Tickets are written with plain SQL as the ticket code writes them (state,
//! opened_at, sla_level 0, sla_next_at = opened_at, reply_due_at), so these
//! tests need nothing but the schema.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use kefu::channel::signature;
use kefu::config::Config;
use kefu::metrics::Metrics;
use kefu::notify::send::{dingtalk_sign, feishu_sign};
use kefu::notify::{Clock, Notifier, Progress, SlaWatcher};
use kefu::store::{NotificationRow, Store};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection, Executor, Row};
use tokio::sync::{Notify, watch};

use crate::store::PgDb;
use crate::support::{Fake, config, temp_dir};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// A second connection to kefu's database, for writing tickets as the
/// ticket code does and reading them back.
async fn raw(url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    if url.starts_with("sqlite:") {
        conn.execute("PRAGMA busy_timeout = 10000").await.unwrap();
    }
    conn
}

/// An open ticket, as the ticket code opens one. The conversation carries a
/// buyer name and the transcript an e-mail address: neither may reach a
/// notice.
async fn open_ticket(
    db: &mut AnyConnection,
    conversation: &str,
    opened_at: i64,
    reply_due_at: i64,
) -> i64 {
    let conversation_id: i64 = sqlx::query(
        "INSERT INTO conversations (channel, external_id, buyer_name, lang, created_at, updated_at)
         VALUES ('shop', $1, 'Ana Silva', 'pt', $2, $2) RETURNING id",
    )
    .bind(conversation)
    .bind(opened_at)
    .fetch_one(&mut *db)
    .await
    .unwrap()
    .get(0);
    sqlx::query(
        "INSERT INTO messages (conversation_id, channel, external_id, author, text, created_at)
         VALUES ($1, 'shop', $2, 'buyer', 'I will open a chargeback! ana.silva@example.com', $3)",
    )
    .bind(conversation_id)
    .bind(format!("{conversation}-m1"))
    .bind(opened_at)
    .execute(&mut *db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tickets (conversation_id, state, priority, reason, detail, opened_at,
                              last_buyer_at, reply_due_at, sla_level, sla_next_at, created_at, updated_at)
         VALUES ($1, 'open', 0, 'dispute', 'the buyer mentions `chargeback` (dispute risk)', $2,
                 $2, $3, 0, $2, $2, $2)
         RETURNING id",
    )
    .bind(conversation_id)
    .bind(opened_at)
    .bind(reply_due_at)
    .fetch_one(&mut *db)
    .await
    .unwrap()
    .get(0)
}

/// (state, sla_level, sla_next_at, deadline_notified)
async fn timers(db: &mut AnyConnection, ticket: i64) -> (String, i64, Option<i64>, i64) {
    let row = sqlx::query(
        "SELECT state, sla_level, sla_next_at, deadline_notified FROM tickets WHERE id = $1",
    )
    .bind(ticket)
    .fetch_one(&mut *db)
    .await
    .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// (ticket, event, target) of every notification, in order.
async fn notices(store: &Store) -> Vec<(i64, String, String)> {
    store
        .notifications()
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.ticket_id.unwrap(), n.event, n.target))
        .collect()
}

fn n(ticket: i64, event: &str, target: &str) -> (i64, String, String) {
    (ticket, event.to_string(), target.to_string())
}

async fn wait_passes(progress: &mut watch::Receiver<Progress>, passes: u64) -> Progress {
    *tokio::time::timeout(
        Duration::from_secs(20),
        progress.wait_for(|p| p.passes >= passes),
    )
    .await
    .expect("the watcher scans")
    .unwrap()
}

/// Moves tokio's clock on while the watcher sleeps. The clock runs again
/// before the watcher touches the database: with paused time tokio jumps to
/// the next timer whenever it idles, and sqlx's pool guards every query
/// with a timer (its acquire timeout), which would fire at once.
async fn advance(by_ms: i64) {
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(by_ms as u64)).await;
    tokio::time::resume();
}

const TARGETS: &str = r#"
[notify]
console_url = "https://kefu.example.com/console"
[notify.targets.team]
kind = "slack"
url = "http://127.0.0.1:9/team"
[notify.targets.boss]
kind = "generic"
url = "http://127.0.0.1:9/boss"
events = ["sla_supervisor"]
"#;

/// The unclaimed track and the reply deadline, driven by tokio's clock:
/// escalation at once, reminder after 10 min, supervisor after 30 min,
/// nothing for a claimed ticket, one reply-deadline notice 2 h before the
/// 24 h deadline, and a reopened ticket announced anew.
#[tokio::test]
async fn sla_timers_under_paused_time() {
    let dir = temp_dir();
    let config = config(dir.path(), TARGETS);
    let url = config.database_url();
    let store = Store::open(&url).await.unwrap();
    let mut db = raw(&url).await;
    let clock = Clock::tokio();
    let t0 = clock.now_ms();
    let waiting = open_ticket(&mut db, "c-waiting", t0, t0 + 24 * HOUR).await;
    let claimed = open_ticket(&mut db, "c-claimed", t0, t0 + 24 * HOUR).await;

    let deliver = Arc::new(Notify::new());
    let watcher = SlaWatcher::new(store.clone(), &config, clock, deliver.clone());
    let mut progress = watcher.progress();
    let opened = Arc::new(Notify::new());
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(watcher.run(opened.clone(), stop));

    // At once: both tickets are announced to the team.
    let p = wait_passes(&mut progress, 1).await;
    assert_eq!(
        notices(&store).await,
        [
            n(waiting, "escalation", "team"),
            n(claimed, "escalation", "team")
        ]
    );
    assert_eq!(p.next_due_at, Some(t0 + 10 * MIN));
    assert_eq!(
        timers(&mut db, waiting).await,
        ("open".into(), 1, Some(t0 + 10 * MIN), 0)
    );
    tokio::time::timeout(Duration::from_secs(5), deliver.notified())
        .await
        .expect("the notifier is woken");

    // An agent claims one (the ticket code clears sla_next_at).
    sqlx::query(
        "UPDATE tickets SET state = 'claimed', agent_id = 'alice', claimed_at = $1, sla_next_at = NULL WHERE id = $2",
    )
    .bind(t0 + MIN)
    .bind(claimed)
    .execute(&mut db)
    .await
    .unwrap();

    // 10 min: a reminder for the waiting one only.
    advance(10 * MIN + 1000).await;
    let p = wait_passes(&mut progress, 2).await;
    assert_eq!(notices(&store).await.len(), 3);
    assert_eq!(notices(&store).await[2], n(waiting, "sla_reminder", "team"));
    assert_eq!(p.next_due_at, Some(t0 + 30 * MIN));
    assert_eq!(timers(&mut db, waiting).await.1, 2);
    assert_eq!(
        timers(&mut db, claimed).await,
        ("claimed".into(), 1, None, 0)
    );

    // 30 min: the supervisor's target hears, the team's does not.
    advance(20 * MIN).await;
    let p = wait_passes(&mut progress, 3).await;
    let all = store.notifications().await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        (
            all[3].ticket_id,
            all[3].event.as_str(),
            all[3].target.as_str()
        ),
        (Some(waiting), "sla_supervisor", "boss")
    );
    assert_eq!(
        all[3].idempotency_key,
        format!("kefu-notify-{waiting}-{t0}-sla_supervisor-boss")
    );
    let body: Value = serde_json::from_str(&all[3].body).unwrap();
    assert_eq!(body["event"], "sla_supervisor");
    assert_eq!(body["ticket"]["id"], waiting);
    assert_eq!(body["ticket"]["waiting_seconds"], 30 * 60 + 1);
    assert_eq!(
        body["console_url"],
        format!("https://kefu.example.com/console#ticket={waiting}")
    );
    assert_eq!(
        timers(&mut db, waiting).await,
        ("open".into(), 3, None, 0),
        "nothing more on the unclaimed track"
    );
    assert_eq!(
        p.next_due_at,
        Some(t0 + 22 * HOUR),
        "next: the deadline warning"
    );

    // 22 h: 2 h before the deadline, both tickets (claimed too) warn once.
    advance(22 * HOUR - 30 * MIN).await;
    wait_passes(&mut progress, 4).await;
    let events = notices(&store).await;
    assert_eq!(
        events[4..],
        [
            n(waiting, "reply_deadline", "team"),
            n(claimed, "reply_deadline", "team")
        ]
    );
    assert_eq!(timers(&mut db, claimed).await.3, 1);
    advance(3 * HOUR).await;
    let p = wait_passes(&mut progress, 5).await;
    assert_eq!(notices(&store).await.len(), 6, "the warning goes out once");
    assert_eq!(p.next_due_at, None);

    // Resolved and reopened (as the ticket code does it): a new round,
    // with new idempotency keys.
    let reopened_at = clock.now_ms();
    sqlx::query(
        "UPDATE tickets SET state = 'open', opened_at = $1, sla_level = 0, sla_next_at = $1,
                deadline_notified = 0, reply_due_at = $2, reopened = reopened + 1
         WHERE id = $3",
    )
    .bind(reopened_at)
    .bind(reopened_at + 24 * HOUR)
    .bind(waiting)
    .execute(&mut db)
    .await
    .unwrap();
    opened.notify_one();
    wait_passes(&mut progress, 6).await;
    let all = store.notifications().await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[6].event, "escalation");
    assert_eq!(
        all[6].idempotency_key,
        format!("kefu-notify-{waiting}-{reopened_at}-escalation-team")
    );

    // Red line: no notice carries the buyer's name, words or address.
    for row in &all {
        for secret in ["Ana", "Silva", "ana.silva@", "I will open"] {
            assert!(!row.body.contains(secret), "{secret} in {}", row.body);
        }
    }

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the watcher stops")
        .unwrap();
}

/// Two replicas scanning the same tickets at the same moment store each
/// notice once.
async fn two_watchers(url: &str, config: &Config) {
    let store = Store::open(url).await.unwrap();
    let other = Store::open(url).await.unwrap();
    let mut db = raw(url).await;
    let now = kefu::model::now_ms();
    let mut tickets = Vec::new();
    for i in 0..8 {
        tickets.push(open_ticket(&mut db, &format!("c{i}"), now - 5 * MIN, now + 24 * HOUR).await);
    }
    let a = SlaWatcher::new(store.clone(), config, Clock::Wall, Arc::new(Notify::new()));
    let b = SlaWatcher::new(other.clone(), config, Clock::Wall, Arc::new(Notify::new()));
    for _ in 0..3 {
        let (x, y) = tokio::join!(a.pass(), b.pass());
        x.unwrap();
        y.unwrap();
    }
    let rows = notices(&store).await;
    assert_eq!(rows.len(), tickets.len(), "{rows:?}");
    for t in tickets {
        assert!(rows.contains(&n(t, "escalation", "team")));
        assert_eq!(timers(&mut db, t).await.1, 1);
    }
    store.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_double_notify_on_sqlite() {
    let dir = temp_dir();
    let config = config(dir.path(), TARGETS);
    two_watchers(&config.database_url(), &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_double_notify_on_postgres() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let dir = temp_dir();
    let config = config(dir.path(), TARGETS);
    two_watchers(&db.url, &config).await;
    db.drop_db().await;
}

/// kefu with one ticket announced to `targets`, and a running notifier.
struct Delivery {
    store: Store,
    metrics: Arc<Metrics>,
    ticket: i64,
    opened_at: i64,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Delivery {
    async fn start(config: &Config) -> Delivery {
        let url = config.database_url();
        let store = Store::open(&url).await.unwrap();
        let mut db = raw(&url).await;
        let now = kefu::model::now_ms();
        let ticket = open_ticket(&mut db, "c1", now, now + 24 * HOUR).await;
        let metrics = Arc::new(Metrics::new());
        let http = reqwest::Client::new();
        let notifier = Notifier::new(store.clone(), http, config, metrics.clone(), Clock::Wall);
        let watcher = SlaWatcher::new(store.clone(), config, Clock::Wall, notifier.waker());
        assert!(watcher.pass().await.unwrap() > 0, "a notice is stored");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(notifier.run(stopped));
        Delivery {
            store,
            metrics,
            ticket,
            opened_at: now,
            stop,
            task,
        }
    }

    /// Waits until no notification is pending; returns them all.
    async fn settled(&self) -> Vec<NotificationRow> {
        for _ in 0..500 {
            let rows = self.store.notifications().await.unwrap();
            if rows.iter().all(|r| r.state != "pending") {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "notifications still pending: {:?}",
            self.store.notifications().await.unwrap()
        );
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        self.store.close().await;
    }
}

fn ok(body: Value) -> (StatusCode, String) {
    (StatusCode::OK, body.to_string())
}

/// DingTalk fails twice (HTTP 503, then "send too fast" in a 200), then
/// takes the notice: delivered exactly once, every attempt with the same
/// idempotency key, a fresh signature and the stored body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_retried_until_delivered_once() {
    let fake = Fake::start().await;
    fake.set_default(ok(json!({"errcode": 0, "errmsg": "ok"})));
    fake.script([
        (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string()),
        ok(json!({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})),
    ]);
    let dir = temp_dir();
    let config = config(
        dir.path(),
        &format!(
            "[notify.targets.ding]\nkind = \"dingtalk\"\nurl = \"{}\"\nsecret = \"SECabc\"\nmention = [\"13800000000\"]\n",
            fake.url("/robot/send?access_token=tok")
        ),
    );
    let kefu = Delivery::start(&config).await;
    let got = fake.wait_for("/robot/send", 3).await;
    let rows = kefu.settled().await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (row.state.as_str(), row.attempts, row.last_error.as_deref()),
        ("delivered", 3, None)
    );
    assert_eq!(
        row.idempotency_key,
        format!(
            "kefu-notify-{}-{}-escalation-ding",
            kefu.ticket, kefu.opened_at
        )
    );
    let body: Value = serde_json::from_str(&row.body).unwrap();
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["at"]["atMobiles"], json!(["13800000000"]));
    for request in &got {
        assert_eq!(
            request.header("idempotency-key"),
            Some(row.idempotency_key.as_str())
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            request.body,
            row.body.as_bytes(),
            "the stored body is posted"
        );
        let url = reqwest::Url::parse(&format!("http://x/?{}", request.query)).unwrap();
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| {
            query
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{k} in {query:?}"))
        };
        assert_eq!(get("access_token"), "tok");
        let ts: i64 = get("timestamp").parse().unwrap();
        assert!((kefu::model::now_ms() - ts).abs() < 60_000);
        assert_eq!(get("sign"), dingtalk_sign("SECabc", ts));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.received().len(), 3, "delivered exactly once");
    let metrics = kefu.metrics.render();
    assert!(
        metrics.contains("kefu_notifications_total{target=\"ding\",outcome=\"retry\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("kefu_notifications_total{target=\"ding\",outcome=\"delivered\"} 1"));
    kefu.stop().await;
}

/// DingTalk's HTTP 200 with errcode 310000 (the robot's security settings
/// refused it) is a failure no retry can fix: dead at once, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_code_in_a_200_answer_is_a_failure() {
    let fake = Fake::start().await;
    fake.set_default(ok(
        json!({"errcode": 310000, "errmsg": "keywords not in content"}),
    ));
    let dir = temp_dir();
    let config = config(
        dir.path(),
        &format!(
            "[notify.targets.ding]\nkind = \"dingtalk\"\nurl = \"{}\"\n",
            fake.url("/robot/send?access_token=tok")
        ),
    );
    let kefu = Delivery::start(&config).await;
    let rows = kefu.settled().await;
    assert_eq!(rows[0].state, "dead");
    assert_eq!(rows[0].attempts, 1);
    let error = rows[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("errcode 310000 (keywords not in content)"),
        "{error}"
    );
    assert_eq!(fake.received().len(), 1);
    assert!(
        kefu.metrics
            .render()
            .contains("kefu_notifications_total{target=\"ding\",outcome=\"dead\"} 1")
    );
    kefu.stop().await;
}

/// A receiver that keeps failing: `outbox.max_attempts` signed attempts,
/// then the notice is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_dead_after_max_attempts() {
    let fake = Fake::start().await;
    fake.set_default((StatusCode::INTERNAL_SERVER_ERROR, "down".to_string()));
    let dir = temp_dir();
    let config = config(
        dir.path(),
        &format!(
            "[outbox]\nmax_attempts = 3\n[notify.targets.ops]\nkind = \"generic\"\nurl = \"{}\"\nsecret = \"s3cret\"\n",
            fake.url("/hook")
        ),
    );
    let kefu = Delivery::start(&config).await;
    let rows = kefu.settled().await;
    assert_eq!(
        (rows[0].state.as_str(), rows[0].attempts),
        ("dead", 3),
        "{rows:?}"
    );
    assert!(rows[0].last_error.as_deref().unwrap().contains("HTTP 500"));
    let got = fake.received();
    assert_eq!(got.len(), 3);
    for request in &got {
        let now = kefu::model::now_ms() / 1000;
        signature::verify(
            b"s3cret",
            request.header(signature::TIMESTAMP_HEADER),
            request.header(signature::SIGNATURE_HEADER),
            &request.body,
            now,
        )
        .expect("signed like webhook callbacks");
        let body = request.json();
        assert_eq!(body["event"], "escalation");
        assert_eq!(body["ticket"]["id"], kefu.ticket);
        assert_eq!(body["ticket"]["reason"], "dispute");
        assert_eq!(
            body["console_url"],
            Value::Null,
            "no console_url configured"
        );
    }
    kefu.stop().await;
}

/// Feishu's signature travels in the body: the stored body plus a fresh
/// `timestamp` and `sign`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feishu_notices_carry_their_signature_in_the_body() {
    let fake = Fake::start().await;
    fake.set_default(ok(json!({"code": 0, "msg": "success", "data": {}})));
    let dir = temp_dir();
    let config = config(
        dir.path(),
        &format!(
            "[notify.targets.fs]\nkind = \"feishu\"\nurl = \"{}\"\nsecret = \"fs-secret\"\n",
            fake.url("/open-apis/bot/v2/hook/abc")
        ),
    );
    let kefu = Delivery::start(&config).await;
    let rows = kefu.settled().await;
    assert_eq!(rows[0].state, "delivered");
    let got = fake.wait_for("/open-apis/bot/v2/hook/abc", 1).await;
    let mut posted = got[0].json();
    let ts: i64 = posted["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(posted["sign"], feishu_sign("fs-secret", ts));
    let map = posted.as_object_mut().unwrap();
    map.remove("timestamp");
    map.remove("sign");
    let stored: Value = serde_json::from_str(&rows[0].body).unwrap();
    assert_eq!(posted, stored);
    assert_eq!(stored["msg_type"], "text");
    assert!(
        stored["content"]["text"]
            .as_str()
            .unwrap()
            .starts_with("kefu: new ticket")
    );
    kefu.stop().await;
}
