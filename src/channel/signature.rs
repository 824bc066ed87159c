//! HMAC-SHA256 request signatures: kefu checks them on inbound webhooks and
//! puts them on the callbacks it sends, so receivers can check kefu.
//!
//! The signed text is `"{timestamp}.{raw body}"`; headers
//! `X-Kefu-Timestamp: <unix seconds>` and `X-Kefu-Signature: sha256=<hex>`.
//! A timestamp more than [`MAX_SKEW_SECS`] away from now is a replay.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-kefu-timestamp";
pub const SIGNATURE_HEADER: &str = "x-kefu-signature";
pub const MAX_SKEW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused; the message is safe to return to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header: this channel requires signed requests")]
    Missing(&'static str),
    #[error("{TIMESTAMP_HEADER} is not a Unix time in seconds")]
    BadTimestamp,
    #[error("timestamp is more than {MAX_SKEW_SECS} s away from now: replayed or clock skew")]
    Stale,
    #[error("{SIGNATURE_HEADER} must look like sha256=<64 hex digits>")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

/// `sha256=<hex>` for a body sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature in constant time (`verify_slice`), and the age.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now_secs - ts).abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    let hex_part = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Meta's `X-Hub-Signature-256: sha256=<hex>` over the raw body (WhatsApp).
pub fn verify_hub(
    secret: &[u8],
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing("x-hub-signature-256"))?;
    let hex_part = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// `sha256=<hex>` as Meta computes it (for tests and fakes).
pub fn sign_hub(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_table() {
        let secret = b"s3cret";
        let body = br#"{"text":"hi"}"#;
        let now = 1_700_000_000;
        let good = sign(secret, now, body);
        type Case<'a> = (
            &'a str,
            Option<String>,
            Option<String>,
            &'a [u8],
            Result<(), SignatureError>,
        );
        let cases: Vec<Case> = vec![
            (
                "valid",
                Some(now.to_string()),
                Some(good.clone()),
                body,
                Ok(()),
            ),
            (
                "body changed",
                Some(now.to_string()),
                Some(good.clone()),
                br#"{"text":"ho"}"#,
                Err(SignatureError::Mismatch),
            ),
            (
                "timestamp changed",
                Some((now - 1).to_string()),
                Some(good.clone()),
                body,
                Err(SignatureError::Mismatch),
            ),
            (
                "replayed",
                Some((now - 301).to_string()),
                Some(sign(secret, now - 301, body)),
                body,
                Err(SignatureError::Stale),
            ),
            (
                "no timestamp",
                None,
                Some(good.clone()),
                body,
                Err(SignatureError::Missing(TIMESTAMP_HEADER)),
            ),
            (
                "no signature",
                Some(now.to_string()),
                None,
                body,
                Err(SignatureError::Missing(SIGNATURE_HEADER)),
            ),
            (
                "not hex",
                Some(now.to_string()),
                Some("sha256=zz".into()),
                body,
                Err(SignatureError::Malformed),
            ),
            (
                "wrong scheme",
                Some(now.to_string()),
                Some(good.replace("sha256=", "md5=")),
                body,
                Err(SignatureError::Malformed),
            ),
            (
                "bad timestamp",
                Some("yesterday".into()),
                Some(good.clone()),
                body,
                Err(SignatureError::BadTimestamp),
            ),
        ];
        for (name, ts, sig, body, expect) in cases {
            assert_eq!(
                verify(secret, ts.as_deref(), sig.as_deref(), body, now),
                expect,
                "{name}"
            );
        }
    }

    #[test]
    fn hub_signatures() {
        let sig = sign_hub(b"app", b"payload");
        assert_eq!(verify_hub(b"app", Some(&sig), b"payload"), Ok(()));
        assert_eq!(
            verify_hub(b"app", Some(&sig), b"other"),
            Err(SignatureError::Mismatch)
        );
    }
}
