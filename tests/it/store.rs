//! The store on a real SQLite file, and on a real PostgreSQL when
//! `KEFU_TEST_DATABASE_URL` names one (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); each PostgreSQL test
//! creates its own database and drops it afterwards.

use kefu::model::{Accepted, BotReply, Buyer, InboundMessage};
use kefu::store::{Outcome, Store};
use sqlx::Connection;

use crate::support::{Fake, Kefu, config, temp_dir};

/// A fresh PostgreSQL database for one test, dropped on `drop_db`.
pub struct PgDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> Option<PgDb> {
        let Ok(admin_url) = std::env::var("KEFU_TEST_DATABASE_URL") else {
            eprintln!(
                "SKIPPED: PostgreSQL test (set KEFU_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run it)"
            );
            return None;
        };
        let name = format!("kefu_test_{}_{}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to KEFU_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        Some(PgDb {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        })
    }

    pub async fn drop_db(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await;
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

fn inbound(id: &str, conversation: &str) -> InboundMessage {
    InboundMessage {
        channel: "shop".into(),
        message_id: id.into(),
        conversation_id: conversation.into(),
        text: format!("message {id}"),
        buyer: Buyer {
            id: Some("b1".into()),
            name: Some("Ana".into()),
            locale: Some("pt-BR".into()),
            country: None,
        },
        sent_at: Some(1),
        attachments: vec![serde_json::json!({"type": "photo"})],
    }
}

/// The same checks on any backend.
async fn exercise(store: &Store) {
    let first = store.accept_inbound(&inbound("m1", "c1")).await.unwrap();
    let Accepted::New {
        conversation_id,
        message_id,
    } = first
    else {
        panic!("new")
    };
    assert_eq!(
        store.accept_inbound(&inbound("m1", "c1")).await.unwrap(),
        Accepted::Duplicate
    );
    store.accept_inbound(&inbound("m2", "c1")).await.unwrap();
    let pending = store.pending_messages(conversation_id).await.unwrap();
    assert_eq!(
        pending.iter().map(|m| m.id).collect::<Vec<_>>().first(),
        Some(&message_id)
    );
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].attachments, 1);
    assert_eq!(store.unprocessed().await.unwrap().len(), 2);

    let reply = BotReply {
        text: "olá".into(),
        lang: "pt".into(),
        intents: "[]".into(),
        decision: "{}".into(),
    };
    let ids: Vec<i64> = pending.iter().map(|m| m.id).collect();
    let outbox = store
        .record_outcome(Outcome {
            conversation_id,
            channel: "shop",
            answered: &ids,
            reply: Some(&reply),
            lang: Some("pt"),
            escalation: Some(("bot_escalated", Some("why"))),
        })
        .await
        .unwrap()
        .expect("outbox row");
    assert!(
        store.unprocessed().await.unwrap().is_empty(),
        "answered messages are handled"
    );
    assert_eq!(
        store
            .conversation(conversation_id)
            .await
            .unwrap()
            .unwrap()
            .lang
            .as_deref(),
        Some("pt")
    );

    let now = kefu::model::now_ms();
    let due = store.due_deliveries(now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].outbox_id, outbox);
    assert_eq!(due[0].buyer_id.as_deref(), Some("b1"));
    assert!(
        store
            .claim_delivery(outbox, now, now + 10_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_delivery(outbox, now, now + 10_000)
            .await
            .unwrap(),
        "a reserved delivery cannot be claimed twice"
    );
    assert!(store.due_deliveries(now, 10).await.unwrap().is_empty());
    store.retry_later(outbox, 1, now - 1, "503").await.unwrap();
    let again = store.due_deliveries(now, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    store.delivered(outbox).await.unwrap();
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        vec![("delivered".to_string(), 1)]
    );

    assert_eq!(store.cursor("telegram:x").await.unwrap(), None);
    store.set_cursor("telegram:x", "41").await.unwrap();
    store.set_cursor("telegram:x", "42").await.unwrap();
    assert_eq!(
        store.cursor("telegram:x").await.unwrap().as_deref(),
        Some("42")
    );
    let transcript = store.transcript(conversation_id).await.unwrap();
    assert_eq!(
        transcript
            .iter()
            .map(|l| l.author.as_str())
            .collect::<Vec<_>>(),
        ["buyer", "buyer", "bot"]
    );
    assert_eq!(
        store.escalations(conversation_id).await.unwrap()[0].0,
        "bot_escalated"
    );
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir = temp_dir();
    let store = Store::open(&format!(
        "sqlite://{}/sub/kefu.db?mode=rwc",
        dir.path().display()
    ))
    .await
    .unwrap();
    exercise(&store).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let store = Store::open(&format!(
        "sqlite://{}/sub/kefu.db?mode=rwc",
        dir.path().display()
    ))
    .await
    .unwrap();
    assert_eq!(
        store.cursor("telegram:x").await.unwrap().as_deref(),
        Some("42")
    );
}

#[tokio::test]
async fn store_on_postgres() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let store = Store::open(&db.url).await.unwrap();
    exercise(&store).await;
    store.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_round_trip_on_postgres() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let dir = temp_dir();
    let sink = Fake::start().await;
    let settings = format!(
        "[database]\nurl = \"{}\"\n[channels.shop]\nkind = \"webhook\"\ncallback_url = \"{}\"\n",
        db.url,
        sink.url("/replies")
    );
    let kefu = Kefu::start(config(dir.path(), &settings)).await;
    let body = serde_json::json!({"message_id": "pg1", "conversation_id": "c", "text": "wie hoch sind die Versandkosten?"}).to_string();
    assert_eq!(
        kefu.post("/v1/channels/shop/messages", &body)
            .await
            .status(),
        202
    );
    let got = sink.wait_for("/replies", 1).await;
    assert!(got[0].json()["text"].as_str().unwrap().contains("US$30"));
    kefu.stop().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_bad_database_url_is_explained() {
    let err = Store::open("mysql://x").await.err().unwrap().to_string();
    assert!(err.contains("use sqlite://PATH or postgres://"), "{err}");
}
