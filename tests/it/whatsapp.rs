//! The WhatsApp channel end to end: Meta's handshake and signed
//! notifications into `kefu serve`, replies out to a fake Graph API (a real
//! HTTP server on 127.0.0.1 that records what it receives).

use std::time::Duration;

use axum::http::StatusCode;
use kefu::Inbound;
use kefu::channel::signature::sign_hub;
use kefu::channel::whatsapp::OutgoingText;
use kefu::lang::Lang;
use kefu::policy::Decision;
use kefu::reply::Style;
use serde_json::{Value, json};

use crate::support::{Fake, Kefu, Recorded, config, engine, temp_dir};

const MESSAGES_PATH: &str = "/v21.0/1098765/messages";
const BUYER: &str = "5511987654321";

/// The channel of the brief, pointed at `graph`.
fn wa(graph: &Fake, extra: &str) -> String {
    format!(
        "[channels.wa]\nkind = \"whatsapp\"\ntoken = \"EAAtest\"\nsecret = \"appsecret\"\nverify_token = \"verify-me\"\nphone_number_id = \"1098765\"\nbase_url = \"{}\"\n{extra}",
        graph.url("/v21.0")
    )
}

/// A `messages` notification as Meta documents it, with these messages.
fn notification(messages: Value) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": "1098765" },
                    "contacts": [{ "profile": { "name": "João" }, "wa_id": BUYER }],
                    "messages": messages,
                },
            }],
        }],
    })
    .to_string()
}

fn text(id: &str, from: &str, body: &str) -> Value {
    json!({ "from": from, "id": id, "timestamp": "1795341600", "type": "text", "text": { "body": body } })
}

async fn post_signed(kefu: &Kefu, channel: &str, body: &str) -> reqwest::Response {
    post_with(
        kefu,
        channel,
        body,
        Some(sign_hub(b"appsecret", body.as_bytes())),
    )
    .await
}

async fn post_with(
    kefu: &Kefu,
    channel: &str,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(kefu.url(&format!("/v1/channels/{channel}/whatsapp")))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.unwrap()
}

/// The replies the fake Graph API received, decoded.
fn sent(graph: &Fake) -> Vec<OutgoingText> {
    graph
        .received()
        .iter()
        .filter(|r| r.path == MESSAGES_PATH)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// Proves earlier requests left nothing to answer: a good message from
/// another buyer is answered, then a generous pause lets any stray reply
/// arrive before the caller counts.
async fn barrier(kefu: &Kefu, graph: &Fake, id: &str) -> Vec<OutgoingText> {
    let before = sent(graph).len();
    let ok = post_signed(
        kefu,
        "wa",
        &notification(json!([text(id, "4915112345678", "hello")])),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    graph.wait_for(MESSAGES_PATH, before + 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sent(graph)
}

async fn metrics(kefu: &Kefu) -> String {
    reqwest::get(kefu.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
    let dir = temp_dir();
    let graph = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &wa(&graph, ""))).await;
    let client = reqwest::Client::new();
    let get = |channel: &str, query: &str| {
        client
            .get(kefu.url(&format!("/v1/channels/{channel}/whatsapp?{query}")))
            .send()
    };

    let ok = get(
        "wa",
        "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(ok.text().await.unwrap(), "1158201444");

    let refused = [
        (
            "wa",
            "hub.mode=subscribe&hub.verify_token=verify-you&hub.challenge=1",
            "verify_token",
        ),
        (
            "wa",
            "hub.mode=subscribe&hub.verify_token=verify-m&hub.challenge=1",
            "verify_token",
        ),
        ("wa", "hub.mode=subscribe&hub.challenge=1", "verify_token"),
        (
            "wa",
            "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
            "hub.mode",
        ),
        (
            "nope",
            "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1",
            "no WhatsApp channel",
        ),
        // The built-in webhook channel is no WhatsApp channel.
        (
            "demo",
            "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1",
            "no WhatsApp channel",
        ),
    ];
    for (channel, query, says) in refused {
        let response = get(channel, query).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{channel} {query}"
        );
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"]["code"], "forbidden");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_message_is_answered_through_the_graph_api_in_the_buyers_language() {
    let dir = temp_dir();
    let graph = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &wa(&graph, ""))).await;
    let question = "Quanto custa o frete para o Brasil?";

    let response = post_signed(
        &kefu,
        "wa",
        &notification(json!([text("wamid.pt1", BUYER, question)])),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["accepted"], 1, "{v}");

    let got: Vec<Recorded> = graph.wait_for(MESSAGES_PATH, 1).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("authorization"), Some("Bearer EAAtest"));
    let reply: OutgoingText = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(reply.to, BUYER);
    assert_eq!(
        (
            reply.messaging_product.as_str(),
            reply.recipient_type.as_str(),
            reply.kind.as_str()
        ),
        ("whatsapp", "individual", "text")
    );
    assert!(!reply.text.preview_url);
    // What kefu's engine answers this buyer (chat style, name from the
    // contact), which must be a Portuguese answer, not a handover.
    let expected = engine().respond(&Inbound {
        text: question,
        locale: None,
        last_lang: None,
        buyer_name: Some("João"),
        style: Style::Chat,
    });
    assert_eq!(expected.lang, Lang::Pt);
    assert!(
        matches!(expected.decision, Decision::Answer { .. }),
        "{:?}",
        expected.decision
    );
    assert_eq!(reply.text.body, expected.reply);
    assert!(reply.text.body.contains("frete"), "{}", reply.text.body);

    let metrics = metrics(&kefu).await;
    assert!(
        metrics.contains("kefu_messages_in_total{channel=\"wa\",outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("kefu_messages_out_total{channel=\"wa\"} 1"));
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_before_anything_is_read() {
    let dir = temp_dir();
    let graph = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &wa(&graph, ""))).await;
    let body = notification(json!([text(
        "wamid.forged",
        BUYER,
        "Quanto custa o frete?"
    )]));
    let cases = [
        ("unsigned", None, "missing X-Hub-Signature-256"),
        (
            "another secret",
            Some(sign_hub(b"not-the-app-secret", body.as_bytes())),
            "does not match",
        ),
        (
            "another body",
            Some(sign_hub(b"appsecret", b"{}")),
            "does not match",
        ),
        ("not hex", Some("sha256=zz".to_string()), "sha256="),
        (
            "wrong scheme",
            Some(sign_hub(b"appsecret", body.as_bytes()).replace("sha256=", "sha1=")),
            "sha256=",
        ),
    ];
    for (name, signature, says) in cases {
        let response = post_with(&kefu, "wa", &body, signature).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"]["code"], "bad_signature", "{name}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
    }
    // A forged body that is not even JSON is refused the same way (401, not
    // 400): it was never parsed.
    let junk = post_with(&kefu, "wa", "{junk", Some("sha256=00".into())).await;
    assert_eq!(junk.status(), StatusCode::UNAUTHORIZED);

    let answered = barrier(&kefu, &graph, "wamid.barrier").await;
    assert_eq!(answered.len(), 1, "only the barrier is answered");
    assert_eq!(answered[0].to, "4915112345678");
    assert!(
        metrics(&kefu)
            .await
            .contains("kefu_messages_in_total{channel=\"wa\",outcome=\"rejected\"} 6")
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_message_id_is_answered_once() {
    let dir = temp_dir();
    let graph = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &wa(&graph, ""))).await;
    let body = notification(json!([text(
        "wamid.again",
        BUYER,
        "Quanto custa o frete para o Brasil?"
    )]));

    let first = post_signed(&kefu, "wa", &body).await;
    assert_eq!(first.status(), StatusCode::OK);
    // Meta redelivers a notification it thinks failed.
    let again = post_signed(&kefu, "wa", &body).await;
    assert_eq!(again.status(), StatusCode::OK, "a repeat is acknowledged");
    let v: Value = again.json().await.unwrap();
    assert_eq!(
        (v["accepted"].clone(), v["duplicate"].clone()),
        (json!(0), json!(1))
    );

    let answered = barrier(&kefu, &graph, "wamid.barrier").await;
    let to_buyer = answered.iter().filter(|r| r.to == BUYER).count();
    assert_eq!(to_buyer, 1, "{answered:?}");
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_without_buyer_messages_are_acknowledged_and_not_answered() {
    let dir = temp_dir();
    let graph = Fake::start().await;
    let kefu = Kefu::start(config(
        dir.path(),
        &wa(&graph, "self_id = \"5511900000000\"\n"),
    ))
    .await;
    let statuses = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": "1098765" },
            "statuses": [
                { "id": "wamid.out1", "status": "sent", "timestamp": "1795341601", "recipient_id": BUYER },
                { "id": "wamid.out1", "status": "delivered", "timestamp": "1795341602", "recipient_id": BUYER },
            ],
        } }] }],
    })
    .to_string();
    let reaction = notification(json!([{
        "from": BUYER, "id": "wamid.r1", "timestamp": "1795341603", "type": "reaction",
        "reaction": { "message_id": "wamid.out1", "emoji": "👍" },
    }]));
    let from_display_number = notification(json!([text("wamid.own1", "15550783881", "teste")]));
    let from_self_id = notification(json!([text("wamid.own2", "5511900000000", "teste")]));
    let template_review = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": "message_template_status_update",
            "value": { "event": "APPROVED", "message_template_name": "hello" } }] }],
    })
    .to_string();
    for (name, body) in [
        ("statuses", statuses),
        ("reaction", reaction),
        ("the business's own number", from_display_number),
        ("self_id", from_self_id),
        ("another field", template_review),
    ] {
        let response = post_signed(&kefu, "wa", &body).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["accepted"], 0, "{name}: {v}");
    }
    let answered = barrier(&kefu, &graph, "wamid.barrier").await;
    assert_eq!(
        answered.len(),
        1,
        "only the barrier is answered: {answered:?}"
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_notifications_get_clear_errors() {
    let dir = temp_dir();
    let graph = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &wa(&graph, ""))).await;
    let cases = [
        (
            "wa",
            "{not json".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "wa",
            json!({ "object": "page", "entry": [] }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "wa",
            notification(json!([{ "from": BUYER, "type": "text", "text": { "body": "x" } }])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
        ),
        (
            "nope",
            notification(json!([text("wamid.x", BUYER, "oi")])),
            StatusCode::NOT_FOUND,
            "unknown_channel",
        ),
        (
            "demo",
            notification(json!([text("wamid.x", BUYER, "oi")])),
            StatusCode::NOT_FOUND,
            "unknown_channel",
        ),
    ];
    for (channel, body, status, code) in cases {
        let response = post_signed(&kefu, channel, &body).await;
        assert_eq!(response.status(), status, "{channel} {body}");
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // Two messages, the second malformed: neither is stored, so Meta's
    // retry of a fixed payload is not half a duplicate.
    let half = notification(json!([
        text("wamid.h1", BUYER, "oi"),
        { "from": BUYER, "id": "wamid.h2", "timestamp": "soon", "type": "text", "text": { "body": "x" } },
    ]));
    let response = post_signed(&kefu, "wa", &half).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let answered = barrier(&kefu, &graph, "wamid.barrier").await;
    assert_eq!(answered.len(), 1, "{answered:?}");
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_replies_are_retried_and_rejected_ones_are_not() {
    let dir = temp_dir();
    let graph = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &wa(&graph, ""))).await;
    let graph_error = |code: u32| {
        json!({ "error": { "message": format!("(#{code})"), "type": "OAuthException", "code": code, "fbtrace_id": "x" } })
            .to_string()
    };
    // 429, then Meta's throttling code on a 400, then a 5xx: all retried.
    graph.script([
        (StatusCode::TOO_MANY_REQUESTS, graph_error(4)),
        (StatusCode::BAD_REQUEST, graph_error(130429)),
        (StatusCode::INTERNAL_SERVER_ERROR, graph_error(131000)),
    ]);
    let ok = post_signed(
        &kefu,
        "wa",
        &notification(json!([text("wamid.t1", BUYER, "Quanto custa o frete?")])),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let got = graph.wait_for(MESSAGES_PATH, 4).await;
    assert!(got.iter().all(|r| r.body == got[0].body), "the same reply");

    // Outside the 24-hour window: Meta will not take it however often asked.
    graph.script([(StatusCode::BAD_REQUEST, graph_error(131047))]);
    let ok = post_signed(
        &kefu,
        "wa",
        &notification(json!([text("wamid.t2", "4915112345678", "hello")])),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let dead = "kefu_delivery_attempts_total{channel=\"wa\",outcome=\"dead\"} 1";
    let mut metrics_text = String::new();
    for _ in 0..500 {
        metrics_text = metrics(&kefu).await;
        if metrics_text.contains(dead) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metrics_text.contains(dead), "{metrics_text}");
    assert_eq!(sent(&graph).len(), 5, "tried once");
    kefu.stop().await;
}
