//! `kefu serve` end to end over HTTP: a real SQLite file, a real callback
//! receiver on 127.0.0.1, kefu started in-process on 127.0.0.1:0.

use std::time::Duration;

use axum::http::StatusCode;
use kefu::channel::signature::sign;
use kefu::channel::webhook::Callback;
use kefu::model::now_ms;

use crate::support::{Fake, Kefu, config, temp_dir};

fn shop(callback: &Fake, extra: &str) -> String {
    format!(
        "[channels.shop]\nkind = \"webhook\"\ncallback_url = \"{}\"\n{extra}",
        callback.url("/replies")
    )
}

fn message(id: &str, conversation: &str, text: &str) -> String {
    serde_json::json!({ "message_id": id, "conversation_id": conversation, "text": text })
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_stored_answered_and_delivered_once() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &shop(&sink, ""))).await;

    let body = serde_json::json!({
        "message_id": "m-1",
        "conversation_id": "buyer-7",
        "text": "¿cuánto tarda el envío a México?",
        "buyer": { "id": "b7", "name": "Lucía", "locale": "es-MX", "country": "MX" },
        "sent_at": 1_795_341_600,
    })
    .to_string();
    let first = kefu.post("/v1/channels/shop/messages", &body).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let again = kefu.post("/v1/channels/shop/messages", &body).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a repeated message id changes nothing"
    );
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["status"],
        "duplicate"
    );

    let got = sink.wait_for("/replies", 1).await;
    let callback: Callback = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(callback.conversation_id, "buyer-7");
    assert_eq!(callback.buyer_id.as_deref(), Some("b7"));
    assert!(callback.text.contains("25–60"), "{}", callback.text);
    assert_eq!(
        got[0].header("idempotency-key"),
        Some(callback.idempotency_key.as_str())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1, "exactly one reply");

    let metrics = reqwest::get(kefu.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kefu_messages_in_total{channel=\"shop\",outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("kefu_messages_in_total{channel=\"shop\",outcome=\"duplicate\"} 1"));
    assert!(metrics.contains("kefu_messages_out_total{channel=\"shop\"} 1"));
    assert!(metrics.contains("kefu_intents_total{intent=\"shipping_time\"} 1"));
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_and_nothing_is_stored() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let kefu = Kefu::start(config(
        dir.path(),
        &shop(&sink, "[server]\nbody_limit_bytes = 2048\n"),
    ))
    .await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "/v1/channels/nope/messages",
            message("a", "c", "hi").into_bytes(),
            StatusCode::NOT_FOUND,
            "unknown_channel",
        ),
        (
            "/v1/channels/shop/messages",
            b"{not json".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            "/v1/channels/shop/messages",
            b"\xff\xfe".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            "/v1/channels/shop/messages",
            br#"{"message_id":"a","text":"hi"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            "/v1/channels/shop/messages",
            message("a", "c", &"x".repeat(4000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ];
    let client = reqwest::Client::new();
    for (path, body, status, code) in cases {
        let response = client.post(kefu.url(path)).body(body).send().await.unwrap();
        assert_eq!(response.status(), status, "{path} {code}");
        if !code.is_empty() {
            let v: serde_json::Value = response.json().await.unwrap();
            assert_eq!(v["error"]["code"], code);
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    // The service kept running and stored nothing.
    let ok = kefu
        .post("/v1/channels/shop/messages", &message("b", "c", "hello"))
        .await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    sink.wait_for("/replies", 1).await;
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_channels_refuse_bad_and_replayed_signatures() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &shop(&sink, "secret = \"s3cret\"\n"))).await;
    let body = message("m1", "c1", "hi");
    let client = reqwest::Client::new();
    let send = |ts: i64, sig: String| {
        client
            .post(kefu.url("/v1/channels/shop/messages"))
            .header("x-kefu-timestamp", ts.to_string())
            .header("x-kefu-signature", sig)
            .body(body.clone())
            .send()
    };
    let now = now_ms() / 1000;
    let unsigned = client
        .post(kefu.url("/v1/channels/shop/messages"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let wrong = send(now, sign(b"other", now, body.as_bytes()))
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let old = now - 600;
    let replay = send(old, sign(b"s3cret", old, body.as_bytes()))
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert!(replay.text().await.unwrap().contains("more than 300 s"));
    let good = send(now, sign(b"s3cret", now, body.as_bytes()))
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::ACCEPTED);

    // The callback is signed with the same secret.
    let got = sink.wait_for("/replies", 1).await;
    let ts: i64 = got[0].header("x-kefu-timestamp").unwrap().parse().unwrap();
    assert_eq!(
        got[0].header("x-kefu-signature").unwrap(),
        sign(b"s3cret", ts, &got[0].body)
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conversation_in_order_and_a_burst_gets_one_answer() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let kefu = Kefu::start(config(
        dir.path(),
        &format!("{}\n[pipeline]\ncoalesce_ms = 400\n", shop(&sink, "")),
    ))
    .await;
    // Three lines in quick succession: one answer covering them.
    for (i, text) in [
        "hello",
        "how much is shipping to Canada?",
        "and will I pay customs?",
    ]
    .iter()
    .enumerate()
    {
        let r = kefu
            .post(
                "/v1/channels/shop/messages",
                &message(&format!("b{i}"), "burst", text),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let got = sink.wait_for("/replies", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let burst: Vec<_> = sink
        .received()
        .into_iter()
        .filter(|r| r.json()["conversation_id"] == "burst")
        .collect();
    assert_eq!(burst.len(), 1, "one answer for the burst");
    let text = got[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("US$30") && text.to_lowercase().contains("customs"),
        "{text}"
    );

    // Separate questions, spaced beyond the window, answered in order.
    for (i, text) in [
        "how do I pay?",
        "can I return it?",
        "do you have an invoice?",
    ]
    .iter()
    .enumerate()
    {
        let r = kefu
            .post(
                "/v1/channels/shop/messages",
                &message(&format!("o{i}"), "ordered", text),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    sink.wait_for("/replies", 4).await;
    let ordered: Vec<String> = sink
        .received()
        .into_iter()
        .filter(|r| r.json()["conversation_id"] == "ordered")
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ordered.len(), 3);
    assert!(ordered[0].contains("Visa"), "{}", ordered[0]);
    assert!(
        ordered[1].to_lowercase().contains("return"),
        "{}",
        ordered[1]
    );
    assert!(
        ordered[2].to_lowercase().contains("invoice"),
        "{}",
        ordered[2]
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_then_dead_lettered_and_escalated() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    // Two failures, then success.
    sink.script([
        (StatusCode::SERVICE_UNAVAILABLE, "down".to_string()),
        (StatusCode::TOO_MANY_REQUESTS, "slow down".to_string()),
    ]);
    let kefu = Kefu::start(config(
        dir.path(),
        &format!(
            "{}\n[outbox]\nmax_attempts = 4\nretry_base_ms = 20\nretry_max_ms = 100\n",
            shop(&sink, "")
        ),
    ))
    .await;
    kefu.post(
        "/v1/channels/shop/messages",
        &message("r1", "retry", "refund please"),
    )
    .await;
    let got = sink.wait_for("/replies", 3).await;
    let keys: Vec<_> = got
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "same idempotency key on every attempt"
    );

    // A receiver that always fails: after max_attempts the conversation is
    // escalated, not dropped.
    sink.set_default((StatusCode::INTERNAL_SERVER_ERROR, "broken".to_string()));
    kefu.post(
        "/v1/channels/shop/messages",
        &message("d1", "dead", "how do I pay?"),
    )
    .await;
    sink.wait_for("/replies", 3 + 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 7, "no attempts after the last");
    let metrics = reqwest::get(kefu.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kefu_delivery_attempts_total{channel=\"shop\",outcome=\"dead\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kefu_escalations_total{reason=\"delivery_failed\"} 1"),
        "{metrics}"
    );
    kefu.stop().await;

    let store = kefu::store::Store::open(&format!(
        "sqlite://{}",
        dir.path().join("kefu.db").display()
    ))
    .await
    .unwrap();
    let conversation = store
        .find_conversation("shop", "dead")
        .await
        .unwrap()
        .unwrap();
    let escalations = store.escalations(conversation).await.unwrap();
    assert_eq!(escalations[0].0, "delivery_failed");
    assert!(escalations[0].1.as_deref().unwrap().contains("500"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_delivery_loses_nothing_and_repeats_nothing() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    // The receiver is down while kefu runs the first time.
    sink.set_default((StatusCode::SERVICE_UNAVAILABLE, "down".to_string()));
    let settings = format!(
        "{}\n[outbox]\nretry_base_ms = 5000\nretry_max_ms = 5000\nlease_ms = 300\n",
        shop(&sink, "")
    );
    let kefu = Kefu::start(config(dir.path(), &settings)).await;
    for i in 0..5 {
        let r = kefu
            .post(
                "/v1/channels/shop/messages",
                &message(
                    &format!("k{i}"),
                    &format!("conv{i}"),
                    "how long is delivery?",
                ),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    sink.wait_for("/replies", 5).await;
    kefu.kill().await;

    // Restart with the receiver back: every reply arrives exactly once (the
    // sink drops repeats by idempotency key, as receivers should).
    sink.set_default((StatusCode::OK, "{}".to_string()));
    let before = sink.received().len();
    let settings = format!(
        "{}\n[outbox]\nretry_base_ms = 20\nretry_max_ms = 50\nlease_ms = 300\n",
        shop(&sink, "")
    );
    let kefu = Kefu::start(config(dir.path(), &settings)).await;
    sink.wait_for("/replies", before + 5).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered: std::collections::BTreeSet<String> = sink.received()[before..]
        .iter()
        .map(|r| r.json()["conversation_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered.len(), 5, "every conversation got its reply");
    assert_eq!(sink.received().len() - before, 5, "and only one each");
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_accepted_before_a_crash_are_answered_after_restart() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    // A long coalescing window: the crash comes before any answer.
    let slow = format!("{}\n[pipeline]\ncoalesce_ms = 60000\n", shop(&sink, ""));
    let kefu = Kefu::start(config(dir.path(), &slow)).await;
    let r = kefu
        .post(
            "/v1/channels/shop/messages",
            &message("p1", "pending", "can I pay with PayPal?"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    kefu.kill().await;
    let kefu = Kefu::start(config(dir.path(), &shop(&sink, ""))).await;
    let got = sink.wait_for("/replies", 1).await;
    assert!(got[0].json()["text"].as_str().unwrap().contains("Visa"));
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_echoes_are_never_answered_and_bot_loops_are_capped() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let settings = format!(
        "{}\n[pipeline]\ncoalesce_ms = 10\nmax_bot_replies_per_minute = 3\n",
        shop(&sink, "self_id = \"store-bot\"\n")
    );
    let kefu = Kefu::start(config(dir.path(), &settings)).await;
    let echo = serde_json::json!({"message_id": "e1", "conversation_id": "loop", "text": "hello", "buyer": {"id": "store-bot"}}).to_string();
    let r = kefu.post("/v1/channels/shop/messages", &echo).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["status"],
        "ignored_own_message"
    );
    // Another bot answering every reply: after the cap kefu goes quiet.
    for i in 0..6 {
        kefu.post(
            "/v1/channels/shop/messages",
            &message(&format!("l{i}"), "loop", "hello!"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 3, "capped at 3 replies a minute");
    let metrics = reqwest::get(kefu.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kefu_escalations_total{reason=\"bot_reply_cap\"}"),
        "{metrics}"
    );
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_documents_the_webhook() {
    let dir = temp_dir();
    let kefu = Kefu::start(config(dir.path(), "")).await;
    let spec: serde_json::Value = reqwest::get(kefu.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let post = &spec["paths"]["/v1/channels/{channel}/messages"]["post"];
    for status in ["200", "202", "401", "404", "422", "503"] {
        assert!(post["responses"][status].is_object(), "{status} documented");
    }
    let required = &spec["components"]["schemas"]["WebhookMessage"]["required"];
    for field in ["message_id", "conversation_id", "text"] {
        assert!(
            required.as_array().unwrap().iter().any(|f| f == field),
            "{field} required"
        );
    }
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_without_text_goes_to_a_person_with_the_reason() {
    let dir = temp_dir();
    let sink = Fake::start().await;
    let kefu = Kefu::start(config(dir.path(), &shop(&sink, ""))).await;
    let body = serde_json::json!({
        "message_id": "ph1", "conversation_id": "photo", "text": "",
        "attachments": [{"type": "image", "url": "https://example.invalid/broken.jpg"}],
    })
    .to_string();
    assert_eq!(
        kefu.post("/v1/channels/shop/messages", &body)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    sink.wait_for("/replies", 1).await;
    kefu.stop().await;
    let store = kefu::store::Store::open(&format!(
        "sqlite://{}",
        dir.path().join("kefu.db").display()
    ))
    .await
    .unwrap();
    let conversation = store
        .find_conversation("shop", "photo")
        .await
        .unwrap()
        .unwrap();
    let escalations = store.escalations(conversation).await.unwrap();
    assert_eq!(escalations[0].0, "no_match");
    assert!(
        escalations[0]
            .1
            .as_deref()
            .unwrap()
            .contains("1 attachment(s) and no text"),
        "{escalations:?}"
    );
}
