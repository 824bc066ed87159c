//! Things buyers paste into messages: order numbers, tracking numbers,
//! e-mail addresses and phone numbers (pure).
//!
//! Order and tracking numbers fill `{order_id}` and `{tracking_number}` in
//! replies. E-mail addresses and phone numbers are found so they can be
//! redacted ([`redact`]) before a message is logged: a buyer's contact data
//! must never reach the logs.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    OrderId,
    TrackingNumber,
    Email,
    Phone,
}

impl EntityKind {
    /// The placeholder a reply template uses for it.
    pub fn placeholder(self) -> &'static str {
        match self {
            EntityKind::OrderId => "order_id",
            EntityKind::TrackingNumber => "tracking_number",
            EntityKind::Email => "email",
            EntityKind::Phone => "phone",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    pub kind: EntityKind,
    /// Normalized: half-width, upper case for tracking numbers.
    pub value: String,
}

/// Tracking numbers of the common carriers, as whole tokens.
static TRACKING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        (?-u:\b)(?:
            [A-Z]{2}[0-9]{9}[A-Z]{2}          # UPU S10: RR123456789CN, LX…, UA…
          | 1Z[0-9A-Z]{16}                    # UPS
          | [A-Z]{2,4}[0-9]{10,20}[A-Z]{0,2}  # Cainiao LP…, YunExpress YT…, 4PX, Yanwen
          | 9[2-5][0-9]{18,24}                # USPS
        )(?-u:\b)",
    )
    .expect("tracking regex")
});

/// Digit runs near a tracking word are tracking numbers, not order ids.
static TRACKING_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:track|tracking|awb|трек|отслеж|运单|快递单|物流单|rastreio|rastreamento|seguimiento|suivi|sendungs?nummer|sendungsverfolgung)\D{0,20}$",
    )
    .expect("tracking context regex")
});

/// Order numbers: Amazon style 123-1234567-1234567, grouped 3012-5566-7788,
/// or a run of 6 to 20 digits.
static ORDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^0-9A-Za-z+-])([0-9]{3}-[0-9]{7}-[0-9]{7}|[0-9]{3,6}(?:-[0-9]{3,8}){1,3}|[0-9]{6,20})(?-u:\b)")
        .expect("order regex")
});

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+").expect("email regex"));

/// International numbers (+ or 00), Chinese mobiles, and numbers after a
/// phone word.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        (?:\+|(?-u:\b)00)[0-9][0-9\s().-]{6,18}[0-9]
      | (?-u:\b)1[3-9][0-9]{9}(?-u:\b)
      | (?:phone|tel|mobile|cell|whatsapp|телефон|тел|电话|手机|teléfono|telefone|celular|téléphone|portable|handy|telefon)
        \D{0,5}\d[\d\s().-]{5,18}\d
        ",
    )
    .expect("phone regex")
});

/// Finds order and tracking numbers (and contact data) in a buyer's message.
pub fn extract(text: &str) -> Vec<Entity> {
    let mut found = Vec::new();
    let has_digits = text.chars().filter(|c| c.is_numeric()).nth(5).is_some();
    if text.contains('@') {
        for m in EMAIL.find_iter(text) {
            push(&mut found, EntityKind::Email, m.as_str().to_string());
        }
    }
    if !has_digits {
        return found;
    }
    // Full-width digits and letters are common in Chinese input.
    let text: Cow<'_, str> = if text.is_ascii() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfkc().collect())
    };
    let mut phone_spans = Vec::new();
    for m in PHONE.find_iter(&text) {
        phone_spans.push(m.range());
        let digits: String = m
            .as_str()
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        push(&mut found, EntityKind::Phone, digits);
    }
    let mut taken = phone_spans;
    for m in TRACKING.find_iter(&text) {
        if !m.as_str().chars().any(|c| c.is_ascii_alphabetic())
            && !TRACKING_CONTEXT.is_match(&text[..m.start()])
        {
            continue;
        }
        taken.push(m.range());
        push(
            &mut found,
            EntityKind::TrackingNumber,
            m.as_str().to_ascii_uppercase(),
        );
    }
    for caps in ORDER.captures_iter(&text) {
        let m = caps.get(1).expect("group 1");
        if taken.iter().any(|r| r.start < m.end() && m.start() < r.end) {
            continue;
        }
        let kind = if TRACKING_CONTEXT.is_match(&text[..m.start()]) {
            EntityKind::TrackingNumber
        } else {
            EntityKind::OrderId
        };
        push(&mut found, kind, m.as_str().to_string());
    }
    found
}

fn push(found: &mut Vec<Entity>, kind: EntityKind, value: String) {
    if !found.iter().any(|e| e.kind == kind && e.value == value) {
        found.push(Entity { kind, value });
    }
}

/// The first entity of a kind.
pub fn first(entities: &[Entity], kind: EntityKind) -> Option<&str> {
    entities
        .iter()
        .find(|e| e.kind == kind)
        .map(|e| e.value.as_str())
}

/// The text with e-mail addresses and phone numbers replaced, for logs.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if text.contains('@') {
        if let Cow::Owned(s) = EMAIL.replace_all(&out, "[email]") {
            out = Cow::Owned(s);
        }
    }
    if text.chars().filter(|c| c.is_ascii_digit()).nth(6).is_some() {
        if let Cow::Owned(s) = PHONE.replace_all(&out, "[phone]") {
            out = Cow::Owned(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(EntityKind, String)> {
        extract(text)
            .into_iter()
            .map(|e| (e.kind, e.value))
            .collect()
    }

    #[test]
    fn extraction_table() {
        use EntityKind::*;
        let cases: &[(&str, &[(EntityKind, &str)])] = &[
            (
                "where is my package RR123456789CN?",
                &[(TrackingNumber, "RR123456789CN")],
            ),
            (
                "tracking lp00123456789012 pls",
                &[(TrackingNumber, "LP00123456789012")],
            ),
            (
                "UPS 1Z999AA10123456784",
                &[(TrackingNumber, "1Z999AA10123456784")],
            ),
            (
                "订单号８１２３４５６７８９０１２３４５什么时候发货",
                &[(OrderId, "8123456789012345")],
            ),
            (
                "order 3012-5566-7788 not here",
                &[(OrderId, "3012-5566-7788")],
            ),
            (
                "amazon 112-1234567-1234567",
                &[(OrderId, "112-1234567-1234567")],
            ),
            (
                "my tracking number is 123456789012",
                &[(TrackingNumber, "123456789012")],
            ),
            ("call me +49 151 2345 6789", &[(Phone, "+4915123456789")]),
            (
                "write to ana.silva@example.com",
                &[(Email, "ana.silva@example.com")],
            ),
            ("size 42 please, 2 pieces", &[]),
            (
                "手机13812345678 订单 99887766",
                &[(Phone, "13812345678"), (OrderId, "99887766")],
            ),
        ];
        for (text, expect) in cases {
            let expect: Vec<(EntityKind, String)> =
                expect.iter().map(|(k, v)| (*k, v.to_string())).collect();
            assert_eq!(kinds(text), expect, "{text}");
        }
    }

    #[test]
    fn redaction_hides_contact_data_only() {
        assert_eq!(
            redact("mail me at bob@example.org or +1 (212) 555-0100, order 81234567"),
            "mail me at [email] or [phone], order 81234567"
        );
        assert!(matches!(redact("no contact here"), Cow::Borrowed(_)));
    }
}
