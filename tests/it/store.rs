//! The store on a real SQLite file, and on a real PostgreSQL when
//! `KEFU_TEST_DATABASE_URL` names one (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); each PostgreSQL test
//! creates its own database and drops it afterwards.

use kefu::model::{Accepted, BotReply, Buyer, InboundMessage};
use kefu::store::{Claim, Escalation, Outcome, Refusal, Search, Store, TicketChange, TicketFilter};
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
            ticket: TicketChange::Escalate(Escalation {
                kind: "no_match",
                detail: Some("why"),
                priority: 2,
                reply_deadline_ms: 60_000,
            }),
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
        "no_match"
    );
}

/// Answers a conversation's pending messages with `ticket` and no reply.
async fn handle(store: &Store, conversation_id: i64, ticket: TicketChange<'_>) {
    let ids: Vec<i64> = store
        .pending_messages(conversation_id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    store
        .record_outcome(Outcome {
            conversation_id,
            channel: "shop",
            answered: &ids,
            reply: None,
            lang: Some("en"),
            ticket,
        })
        .await
        .unwrap();
}

/// A ticket's whole life: opened by an escalation, a more urgent reason
/// raising it, claimed by one of two racing agents, answered, resolved,
/// reopened by the buyer, handed back; plus search and export.
async fn exercise_tickets(store: &Store) {
    let Accepted::New {
        conversation_id, ..
    } = store
        .accept_inbound(&inbound("t1", "dispute-case"))
        .await
        .unwrap()
    else {
        panic!("new message")
    };
    let escalate = |kind, priority| {
        TicketChange::Escalate(Escalation {
            kind,
            detail: Some("needs a person"),
            priority,
            reply_deadline_ms: 3_600_000,
        })
    };
    handle(store, conversation_id, escalate("needs_person", 2)).await;
    let queue = store.tickets(TicketFilter::Active, None, 50).await.unwrap();
    let ticket = queue
        .iter()
        .find(|t| t.conversation_id == conversation_id)
        .expect("a ticket is open")
        .clone();
    assert_eq!(ticket.state, "open");
    assert_eq!(ticket.priority, 2);
    assert_eq!(ticket.last_text.as_deref(), Some("message t1"));
    assert!(ticket.reply_due_at.is_some());
    let conversation = store.conversation(conversation_id).await.unwrap().unwrap();
    assert_eq!(conversation.state, "human", "people hold it now");

    // A second escalation while open raises the same ticket, not a new one.
    store
        .accept_inbound(&inbound("t2", "dispute-case"))
        .await
        .unwrap();
    handle(store, conversation_id, escalate("dispute", 0)).await;
    let tickets = store.conversation_tickets(conversation_id).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(
        (tickets[0].priority, tickets[0].reason.as_str()),
        (0, "dispute")
    );
    assert_eq!(tickets[0].priority_label, "urgent");

    // Two agents claim at once: exactly one wins.
    let (a, b) = tokio::join!(
        store.claim_ticket(ticket.id, "alice"),
        store.claim_ticket(ticket.id, "bob")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (winner, loser) = match (&a, &b) {
        (Claim::Claimed(_), Claim::HeldBy(holder)) => ("alice", holder.clone()),
        (Claim::HeldBy(holder), Claim::Claimed(_)) => ("bob", holder.clone()),
        other => panic!("one claim must win and one lose: {other:?}"),
    };
    assert_eq!(loser, winner, "the loser is told who holds it");
    let other = if winner == "alice" { "bob" } else { "alice" };
    assert!(matches!(
        store.claim_ticket(ticket.id, winner).await.unwrap(),
        Claim::Claimed(_)
    ));
    assert_eq!(
        store.claim_ticket(999_999, winner).await.unwrap(),
        Claim::NotFound
    );

    // Only the holder replies; the reply goes to the outbox.
    assert_eq!(
        store
            .agent_reply(ticket.id, other, "hi")
            .await
            .unwrap()
            .unwrap_err(),
        Refusal::NotYours(Some(winner.to_string()))
    );
    let message = store
        .agent_reply(ticket.id, winner, "Hello, I am looking into it.")
        .await
        .unwrap()
        .unwrap();
    let due = store
        .due_deliveries(kefu::model::now_ms() + 1, 100)
        .await
        .unwrap();
    assert!(
        due.iter()
            .any(|d| d.text == "Hello, I am looking into it."
                && d.conversation_id == conversation_id),
        "{due:?}"
    );
    let transcript = store.transcript(conversation_id).await.unwrap();
    let line = transcript.iter().find(|l| l.id == message).unwrap();
    assert_eq!(
        (line.author.as_str(), line.agent_id.as_deref()),
        ("agent", Some(winner))
    );
    assert_eq!(
        store.ticket(ticket.id).await.unwrap().unwrap().reply_due_at,
        None,
        "answered: no reply owed"
    );

    // The buyer writes while people hold it: a reply is owed again.
    store
        .accept_inbound(&inbound("t3", "dispute-case"))
        .await
        .unwrap();
    handle(
        store,
        conversation_id,
        TicketChange::BuyerWrote {
            reply_deadline_ms: 3_600_000,
        },
    )
    .await;
    assert!(
        store
            .ticket(ticket.id)
            .await
            .unwrap()
            .unwrap()
            .reply_due_at
            .is_some()
    );

    let note = store
        .add_note(ticket.id, winner, "asked for photos")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.notes(ticket.id).await.unwrap(), vec![note]);
    assert_eq!(store.add_note(999_999, winner, "x").await.unwrap(), None);

    // Settling: not by another agent; by the holder.
    assert!(
        store
            .settle_ticket(ticket.id, other, false, "resolved")
            .await
            .unwrap()
            .is_err()
    );
    let resolved = store
        .settle_ticket(ticket.id, winner, false, "resolved")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.state, "resolved");
    assert_eq!(
        store
            .conversation(conversation_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        "bot"
    );
    assert_eq!(
        store
            .settle_ticket(ticket.id, winner, false, "resolved")
            .await
            .unwrap()
            .unwrap_err(),
        Refusal::Resolved
    );

    // Written again soon after: the same ticket reopens, unclaimed.
    let since = kefu::model::now_ms() - 60_000;
    assert_eq!(
        store
            .reopenable_ticket(conversation_id, since)
            .await
            .unwrap(),
        Some(ticket.id)
    );
    assert_eq!(
        store
            .reopenable_ticket(conversation_id, kefu::model::now_ms() + 60_000)
            .await
            .unwrap(),
        None,
        "too long ago"
    );
    store
        .accept_inbound(&inbound("t4", "dispute-case"))
        .await
        .unwrap();
    handle(
        store,
        conversation_id,
        TicketChange::Reopen {
            ticket_id: ticket.id,
            reply_deadline_ms: 3_600_000,
        },
    )
    .await;
    let reopened = store.ticket(ticket.id).await.unwrap().unwrap();
    assert_eq!(
        (
            reopened.state.as_str(),
            reopened.reopened,
            reopened.agent_id
        ),
        ("open", 1, None)
    );

    // A supervisor assigns it; the assignee hands it back to the bot, which
    // is not reopened by the next message.
    let assigned = store
        .assign_ticket(ticket.id, other)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (assigned.state.as_str(), assigned.agent_id.as_deref()),
        ("claimed", Some(other))
    );
    let back = store
        .settle_ticket(ticket.id, other, false, "handed_back")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.resolution.as_deref(), Some("handed_back"));
    assert_eq!(
        store
            .reopenable_ticket(conversation_id, since)
            .await
            .unwrap(),
        None
    );

    // Search and export find the conversation by text, buyer and date.
    let found = |search: Search| async move {
        store
            .search_conversations(&search, 10)
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == conversation_id)
    };
    assert!(
        found(Search {
            text: Some("MESSAGE t3".into()),
            ..Search::default()
        })
        .await
    );
    assert!(
        found(Search {
            buyer: Some("b1".into()),
            ..Search::default()
        })
        .await
    );
    assert!(
        found(Search {
            buyer: Some("dispute-case".into()),
            ..Search::default()
        })
        .await
    );
    assert!(
        !found(Search {
            text: Some("100%".into()),
            ..Search::default()
        })
        .await
    );
    assert!(
        !found(Search {
            from: Some(kefu::model::now_ms() + 60_000),
            ..Search::default()
        })
        .await
    );
    let rows = store
        .export(
            &Search {
                conversation: Some(conversation_id),
                ..Search::default()
            },
            1000,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), transcript.len() + 2, "t3 and t4 came after");
    assert!(rows.iter().all(|r| r.conversation.id == conversation_id));
    assert!(rows.iter().any(|r| r.line.author == "agent"));
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
    exercise_tickets(&store).await;
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
    exercise_tickets(&store).await;
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
