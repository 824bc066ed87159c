//! POSTing one notice: each kind's signing, and reading each answer.
//!
//! Signatures are made per attempt, because the receivers reject old ones:
//!
//! - generic: `X-Kefu-Timestamp` and `X-Kefu-Signature: sha256=<hex>` over
//!   `"<timestamp>.<body>"`, exactly like webhook channel callbacks
//!   ([`crate::channel::signature`]).
//! - DingTalk 加签: `timestamp` (ms) and `sign` = base64(HMAC-SHA256(key =
//!   secret, `"<timestamp>\n<secret>"`)) appended to the URL's query.
//! - Feishu/Lark 签名校验: `timestamp` (s) and `sign` = base64(HMAC-SHA256(key
//!   = `"<timestamp>\n<secret>"`, empty message)) added to the JSON body; so
//!   a signed Feishu body is the stored body plus those two fields.
//!
//! A webhook URL is a secret (Slack's path, DingTalk's `access_token`,
//! WeCom's `key`): no error built here carries it.
//!
//! Feishu, DingTalk and WeCom answer HTTP 200 with an error code in the
//! body; a code other than 0 is a failed delivery. Codes that retrying
//! cannot fix (the bot's security settings refused the message, the webhook
//! is gone, the message is malformed) make it permanent; rate limits and
//! unknown codes are retried.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::channel::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::channel::{DeliveryError, retry_after};
use crate::config::{NotifyTarget, TargetKind};

type HmacSha256 = Hmac<Sha256>;

/// DingTalk's `sign` for `timestamp_ms` (before URL encoding).
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Feishu's `sign` for `timestamp_secs`.
pub fn feishu_sign(secret: &str, timestamp_secs: i64) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    let mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Sends `body` to `target` once. `now_ms` is wall-clock time for the
/// signatures.
pub async fn send(
    http: &reqwest::Client,
    target: &NotifyTarget,
    body: &str,
    idempotency_key: &str,
    now_ms: i64,
) -> Result<(), DeliveryError> {
    let permanent = |message: String| DeliveryError {
        message,
        retry_after: None,
        permanent: true,
    };
    let mut url = reqwest::Url::parse(&target.url)
        .map_err(|e| permanent(format!("the target's url is not a URL: {e}")))?;
    let mut body = body.to_string();
    let signed = !target.secret.is_empty();
    match target.kind {
        TargetKind::Dingtalk if signed => {
            url.query_pairs_mut()
                .append_pair("timestamp", &now_ms.to_string())
                .append_pair("sign", &dingtalk_sign(&target.secret, now_ms));
        }
        TargetKind::Feishu if signed => {
            let mut value: serde_json::Map<String, Value> = serde_json::from_str(&body)
                .map_err(|e| permanent(format!("stored body is not a JSON object: {e}")))?;
            let secs = now_ms / 1000;
            value.insert("timestamp".into(), Value::String(secs.to_string()));
            value.insert(
                "sign".into(),
                Value::String(feishu_sign(&target.secret, secs)),
            );
            body = Value::Object(value).to_string();
        }
        _ => {}
    }
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", idempotency_key);
    if target.kind == TargetKind::Generic && signed {
        let secs = now_ms / 1000;
        request = request.header(TIMESTAMP_HEADER, secs.to_string()).header(
            SIGNATURE_HEADER,
            sign(target.secret.as_bytes(), secs, body.as_bytes()),
        );
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| DeliveryError::from_reqwest(e.without_url()))?;
    let status = response.status();
    let after = retry_after(response.headers());
    let answer = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(DeliveryError::from_status(status, after, &answer));
    }
    check_answer(target.kind, &answer)
}

/// Reads a 2xx answer: Feishu, DingTalk and WeCom put their verdict in the
/// body.
pub fn check_answer(kind: TargetKind, answer: &str) -> Result<(), DeliveryError> {
    let (code_field, message_field) = match kind {
        TargetKind::Generic | TargetKind::Slack => return Ok(()),
        TargetKind::Feishu => ("code", "msg"),
        TargetKind::Dingtalk | TargetKind::Wecom => ("errcode", "errmsg"),
    };
    let snippet: String = answer.chars().take(200).collect();
    let Ok(value) = serde_json::from_str::<Value>(answer) else {
        return Err(DeliveryError::transient(format!(
            "{kind:?} answered 200 without its JSON verdict: {snippet}"
        )));
    };
    // Feishu's older answer: {"StatusCode":0,"StatusMessage":"success"}.
    let code = value
        .get(code_field)
        .or_else(|| value.get("StatusCode"))
        .and_then(Value::as_i64);
    let Some(code) = code else {
        return Err(DeliveryError::transient(format!(
            "{kind:?} answered 200 without `{code_field}`: {snippet}"
        )));
    };
    if code == 0 {
        return Ok(());
    }
    let message = value
        .get(message_field)
        .or_else(|| value.get("StatusMessage"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let hint = match (kind, code) {
        (TargetKind::Dingtalk, 310000) | (TargetKind::Feishu, 19021 | 19022 | 19024) => Some(
            "the bot's security settings refused the notice: check the target's secret, the keyword (every notice contains \"kefu\") and the IP allowlist",
        ),
        (TargetKind::Wecom, 93000) => {
            Some("the webhook key is wrong or the robot was removed: copy the URL again")
        }
        (TargetKind::Feishu, 9499) | (TargetKind::Wecom, 40008 | 44004) => {
            Some("the chat tool rejected the message itself")
        }
        _ => None,
    };
    Err(DeliveryError {
        message: match hint {
            Some(hint) => format!("{kind:?} answered {code_field} {code} ({message}): {hint}"),
            None => format!("{kind:?} answered {code_field} {code} ({message})"),
        },
        retry_after: None,
        permanent: hint.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with Python's hmac/base64, following the
    /// vendors' published sample code.
    #[test]
    fn vendor_signatures() {
        assert_eq!(
            dingtalk_sign("SECtest", 1_700_000_000_000),
            "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
        );
        assert_eq!(
            feishu_sign("test", 1_700_000_000),
            "eSJQnOl8XqPTMPHWz9e5IzeHS/tqoc68g2967ekIPmg="
        );
    }

    #[tokio::test]
    async fn errors_do_not_reveal_the_webhook_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let target = NotifyTarget {
            kind: TargetKind::Wecom,
            url: format!("http://127.0.0.1:{port}/cgi-bin/webhook/send?key=SECRET-KEY"),
            secret: String::new(),
            events: vec![],
            mention: vec![],
        };
        let err = send(&reqwest::Client::new(), &target, "{}", "k", 0)
            .await
            .unwrap_err();
        assert!(!err.permanent, "a receiver that is down may come back");
        assert!(err.message.starts_with("request failed"), "{err}");
        assert!(!err.message.contains("SECRET-KEY"), "{err}");
    }

    #[test]
    fn answers_with_error_codes_fail() {
        use TargetKind::*;
        // (kind, body, ok, permanent)
        let cases = [
            (Slack, "ok", true, false),
            (Generic, "", true, false),
            (Dingtalk, r#"{"errcode":0,"errmsg":"ok"}"#, true, false),
            (
                Dingtalk,
                r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
                false,
                true,
            ),
            (
                Dingtalk,
                r#"{"errcode":130101,"errmsg":"send too fast"}"#,
                false,
                false,
            ),
            (Wecom, r#"{"errcode":0,"errmsg":"ok"}"#, true, false),
            (
                Wecom,
                r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
                false,
                false,
            ),
            (
                Wecom,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
                false,
                true,
            ),
            (
                Feishu,
                r#"{"code":0,"msg":"success","data":{}}"#,
                true,
                false,
            ),
            (
                Feishu,
                r#"{"StatusCode":0,"StatusMessage":"success"}"#,
                true,
                false,
            ),
            (
                Feishu,
                r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
                false,
                true,
            ),
            (
                Feishu,
                r#"{"code":11232,"msg":"frequency limited"}"#,
                false,
                false,
            ),
            (Feishu, "<html>proxy</html>", false, false),
            (Dingtalk, r#"{"ok":true}"#, false, false),
        ];
        for (kind, body, ok, permanent) in cases {
            let got = check_answer(kind, body);
            assert_eq!(got.is_ok(), ok, "{kind:?} {body}");
            if let Err(e) = got {
                assert_eq!(e.permanent, permanent, "{kind:?} {body}: {e}");
            }
        }
        let err = check_answer(
            Dingtalk,
            r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("310000"), "{err}");
        assert!(err.message.contains("keywords not in content"), "{err}");
        assert!(err.message.contains("security settings"), "{err}");
    }
}
