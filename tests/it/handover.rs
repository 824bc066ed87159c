//! Human handover end to end over HTTP: a buyer asks for a person, the
//! ticket appears in the agent API, agents race to claim it, the holder
//! replies (the reply reaches the buyer's channel), the bot stays silent
//! until the agent hands back, and transcripts can be searched and
//! exported. Auth: 401 without a token, 403 for the wrong role.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Fake, Kefu, config, temp_dir};

struct Team {
    alice: String,
    bob: String,
    boss: String,
}

/// Three agents in the settings (alice and bob agents, boss a supervisor)
/// and their tokens; a webhook channel replying to `sink`.
fn settings(sink: &Fake) -> (String, Team) {
    let alice = kefu::agents::token::generate("alice");
    let bob = kefu::agents::token::generate("bob");
    let boss = kefu::agents::token::generate("boss");
    let toml = format!(
        "[channels.shop]\nkind = \"webhook\"\ncallback_url = \"{}\"\n\
         [agents.alice]\nname = \"Alice\"\nrole = \"agent\"\ntoken_hash = \"{}\"\n\
         [agents.bob]\nname = \"Bob\"\nrole = \"agent\"\ntoken_hash = \"{}\"\n\
         [agents.boss]\nname = \"Boss\"\nrole = \"supervisor\"\ntoken_hash = \"{}\"\n",
        sink.url("/replies"),
        kefu::agents::token::hash(&alice),
        kefu::agents::token::hash(&bob),
        kefu::agents::token::hash(&boss),
    );
    (toml, Team { alice, bob, boss })
}

fn buyer(id: &str, text: &str) -> String {
    json!({"message_id": id, "conversation_id": "ana-1", "text": text,
           "buyer": {"id": "ana", "name": "Ana", "locale": "en-US", "country": "US"}})
    .to_string()
}

struct Api<'a> {
    kefu: &'a Kefu,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn get(&self, token: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.http.get(self.kefu.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.kefu.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, token: &str, path: &str) -> Value {
        let response = self.get(Some(token), path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// Waits until the queue shows `n` active tickets.
    async fn wait_tickets(&self, token: &str, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let list = self.json(token, "/v1/tickets").await;
            let tickets = list["tickets"].as_array().unwrap().clone();
            if tickets.len() >= n {
                return tickets;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {n} active tickets");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_takes_over_answers_and_hands_back() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let (toml, team) = settings(&sink);
    let kefu = Kefu::start(config(dir.path(), &toml)).await;
    let api = Api {
        kefu: &kefu,
        http: reqwest::Client::new(),
    };

    // No token, a bad token: 401 with a hint; the API says who is who.
    let response = api.get(None, "/v1/tickets").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer"
    );
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unauthorized");
    let response = api.get(Some("kefu_alice_nope"), "/v1/tickets").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let me = api.json(&team.alice, "/v1/agent/me").await;
    assert_eq!(me, json!({"id": "alice", "name": "Alice", "role": "agent"}));

    // The buyer asks for a person: the bot tells them someone will answer
    // and a ticket opens.
    let accepted = kefu
        .post(
            "/v1/channels/shop/messages",
            &buyer("m1", "I want to talk to a real person"),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let handover = sink.wait_for("/replies", 1).await;
    assert!(!handover[0].json()["text"].as_str().unwrap().is_empty());
    let tickets = api.wait_tickets(&team.alice, 1).await;
    let ticket = &tickets[0];
    let id = ticket["id"].as_i64().unwrap();
    assert_eq!(ticket["state"], "open");
    assert_eq!(ticket["reason"], "needs_person");
    assert_eq!(ticket["last_text"], "I want to talk to a real person");
    assert_eq!(ticket["lang"], "en");
    assert_eq!(ticket["channel"], "shop");

    let detail = api.json(&team.bob, &format!("/v1/tickets/{id}")).await;
    assert_eq!(detail["conversation"]["state"], "human");
    assert_eq!(detail["conversation"]["buyer"]["name"], "Ana");
    let transcript = detail["transcript"].as_array().unwrap();
    assert_eq!(transcript[0]["author"], "buyer");
    assert_eq!(transcript[1]["author"], "bot");
    assert!(
        transcript[0]["intents"]
            .as_array()
            .unwrap()
            .contains(&json!("human")),
        "{transcript:?}"
    );
    assert!(
        detail["escalations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("human"),
        "{detail}"
    );

    // An agent may not assign; replying needs the claim first.
    let response = api
        .post(
            &team.alice,
            &format!("/v1/tickets/{id}/assign"),
            json!({"agent": "bob"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "forbidden");
    let response = api
        .post(
            &team.alice,
            &format!("/v1/tickets/{id}/reply"),
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);

    // Alice and Bob claim at the same moment: one wins, one gets 409.
    let claim = format!("/v1/tickets/{id}/claim");
    let (a, b) = tokio::join!(
        api.post(&team.alice, &claim, json!({})),
        api.post(&team.bob, &claim, json!({}))
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (winner, loser) = if a.status() == StatusCode::OK {
        (&team.alice, b)
    } else {
        (&team.bob, a)
    };
    let error: Value = loser.json().await.unwrap();
    assert_eq!(error["error"]["code"], "already_claimed");

    // The supervisor gives it to Alice whoever won.
    let response = api
        .post(
            &team.boss,
            &format!("/v1/tickets/{id}/assign"),
            json!({"agent": "alice"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let _ = winner;
    let response = api
        .post(
            &team.boss,
            &format!("/v1/tickets/{id}/assign"),
            json!({"agent": "nobody"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Quick phrases come in the buyer's language.
    let phrases = api
        .json(&team.alice, &format!("/v1/tickets/{id}/phrases"))
        .await;
    assert_eq!(phrases["lang"], "en");
    assert!(
        phrases["phrases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["intent"] == "shipping_time" && p["text"].as_str().unwrap().contains("2–4")),
        "{phrases}"
    );

    // Alice replies: the buyer's channel receives it.
    let response = api
        .post(
            &team.alice,
            &format!("/v1/tickets/{id}/reply"),
            json!({"text": "Hi Ana, this is Alice. How can I help?"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let replies = sink.wait_for("/replies", 2).await;
    assert_eq!(
        replies[1].json()["text"],
        "Hi Ana, this is Alice. How can I help?"
    );
    assert_eq!(replies[1].json()["conversation_id"], "ana-1");
    let response = api
        .post(
            &team.alice,
            &format!("/v1/tickets/{id}/notes"),
            json!({"text": "VIP buyer"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);

    // The buyer's next message goes to Alice, not the bot.
    kefu.post(
        "/v1/channels/shop/messages",
        &buyer("m2", "when will my order ship?"),
    )
    .await;
    let mut recorded = false;
    for _ in 0..100 {
        let detail = api.json(&team.alice, &format!("/v1/tickets/{id}")).await;
        // Stored at once; handled (a reply now owed) after the
        // coalescing window.
        if detail["ticket"]["last_text"] == "when will my order ship?"
            && detail["ticket"]["reply_due_at"].is_i64()
        {
            recorded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        recorded,
        "the buyer's message reached the ticket and a reply is owed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.received().len(),
        2,
        "the bot stays silent while a person holds the conversation"
    );

    // Search and export find the conversation.
    let found = api
        .json(&team.bob, "/v1/conversations?q=ORDER%20SHIP")
        .await;
    assert_eq!(found["conversations"][0]["external_id"], "ana-1");
    let found = api.json(&team.bob, "/v1/conversations?buyer=ana").await;
    assert_eq!(found["conversations"].as_array().unwrap().len(), 1);
    let none = api.json(&team.bob, "/v1/conversations?q=refund").await;
    assert!(none["conversations"].as_array().unwrap().is_empty());
    let bad = api
        .get(Some(&team.bob), "/v1/conversations?from=yesterday")
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let conversation_id = detail["conversation"]["id"].as_i64().unwrap();
    let csv = api
        .get(
            Some(&team.bob),
            &format!("/v1/export?conversation={conversation_id}&format=csv"),
        )
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("conversation_id,channel,conversation,"),
        "{csv}"
    );
    assert_eq!(
        lines.len(),
        1 + 4,
        "header + buyer, bot, agent, buyer: {csv}"
    );
    assert!(csv.contains("Hi Ana, this is Alice."), "{csv}");
    let jsonl = api
        .get(
            Some(&team.bob),
            &format!("/v1/export?conversation={conversation_id}&format=jsonl"),
        )
        .await
        .text()
        .await
        .unwrap();
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows.iter()
            .map(|r| r["author"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["buyer", "bot", "agent", "buyer"]
    );
    assert_eq!(rows[2]["agent_id"], "alice");

    // Bob cannot hand back Alice's ticket; Alice can, and the bot answers
    // again.
    let response = api
        .post(&team.bob, &format!("/v1/tickets/{id}/handback"), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = api
        .post(
            &team.alice,
            &format!("/v1/tickets/{id}/handback"),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let settled: Value = response.json().await.unwrap();
    assert_eq!(settled["ticket"]["state"], "resolved");
    assert_eq!(settled["ticket"]["resolution"], "handed_back");
    kefu.post(
        "/v1/channels/shop/messages",
        &buyer("m3", "how long does shipping take?"),
    )
    .await;
    let replies = sink.wait_for("/replies", 3).await;
    assert!(
        replies[2].json()["text"]
            .as_str()
            .unwrap()
            .contains("25–60"),
        "{:?}",
        replies[2].json()
    );
    assert!(api.wait_tickets(&team.alice, 0).await.is_empty());
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_ticket_reopens_when_the_buyer_writes_again_soon() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let (toml, team) = settings(&sink);
    let kefu = Kefu::start(config(dir.path(), &toml)).await;
    let api = Api {
        kefu: &kefu,
        http: reqwest::Client::new(),
    };
    kefu.post(
        "/v1/channels/shop/messages",
        &buyer("r1", "I want to speak to a human"),
    )
    .await;
    let id = api.wait_tickets(&team.bob, 1).await[0]["id"]
        .as_i64()
        .unwrap();
    // An unclaimed ticket may be resolved by anyone.
    let response = api
        .post(&team.bob, &format!("/v1/tickets/{id}/resolve"), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(api.wait_tickets(&team.bob, 0).await.is_empty());
    let response = api
        .post(&team.bob, &format!("/v1/tickets/{id}/resolve"), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);

    kefu.post("/v1/channels/shop/messages", &buyer("r2", "still there?"))
        .await;
    let tickets = api.wait_tickets(&team.bob, 1).await;
    assert_eq!(tickets[0]["id"], id, "the same ticket, reopened");
    assert_eq!(tickets[0]["state"], "open");
    assert_eq!(tickets[0]["reopened"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.received().len(),
        1,
        "only the first handover message: the reopened ticket is for people"
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_covers_the_agent_api() {
    let dir = temp_dir();
    let kefu = Kefu::start(config(dir.path(), "")).await;
    let spec: Value = reqwest::get(kefu.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/tickets",
        "/v1/tickets/{id}/claim",
        "/v1/tickets/{id}/reply",
        "/v1/export",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_escalation_is_announced_to_the_team_chat() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let slack = Fake::start().await;
    let (toml, _team) = settings(&sink);
    let toml = format!(
        "{toml}[notify]\nconsole_url = \"http://kefu.example/console\"\n\
         [notify.targets.team]\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.url("/hooks/team")
    );
    let kefu = Kefu::start(config(dir.path(), &toml)).await;
    kefu.post(
        "/v1/channels/shop/messages",
        &json!({"message_id": "n1", "conversation_id": "c-n", "text": "I want to talk to a real person, my email is ana@example.com",
                "buyer": {"name": "Ana Lima"}})
        .to_string(),
    )
    .await;
    let notices = slack.wait_for("/hooks/team", 1).await;
    let text = notices[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("http://kefu.example/console#ticket="),
        "{text}"
    );
    assert!(!text.contains("ana@example.com"), "no buyer data: {text}");
    assert!(!text.contains("Ana Lima"), "no buyer data: {text}");
    kefu.stop().await;
}
