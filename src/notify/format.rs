//! What a notice says and how each chat tool wants it posted (pure).
//!
//! One plain-text message for the team (ticket, priority, reason, channel,
//! language, waiting time, console link) wrapped in the body each webhook
//! documents: kefu's generic JSON, a Slack incoming webhook, a Feishu/Lark
//! custom bot, a DingTalk custom robot, a WeCom group robot.
//!
//! Red line: a notice never carries the buyer's name, contact data or
//! words. A message snippet could hold an address even after
//! [`redact`](crate::entity::redact), so there is none: the console shows
//! the conversation to the people allowed to see it. The ticket's `detail`
//! is kefu's own sentence; it is redacted and shortened all the same.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::TargetKind;
use crate::entity::redact;

/// Why a notice is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Event {
    /// A ticket opened (or reopened) and waits for a person.
    Escalation,
    /// Still unclaimed `sla.remind_after` after opening.
    SlaReminder,
    /// Still unclaimed `sla.supervisor_after` after opening.
    SlaSupervisor,
    /// The platform's reply deadline is `sla.deadline_warning` away and no
    /// person has answered.
    ReplyDeadline,
}

impl Event {
    /// The name in `notifications.event`, in config and in the generic body.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Escalation => "escalation",
            Event::SlaReminder => "sla_reminder",
            Event::SlaSupervisor => "sla_supervisor",
            Event::ReplyDeadline => "reply_deadline",
        }
    }
}

impl TryFrom<String> for Event {
    type Error = String;

    fn try_from(name: String) -> Result<Event, String> {
        Ok(match name.as_str() {
            "escalation" => Event::Escalation,
            "sla_reminder" => Event::SlaReminder,
            "sla_supervisor" => Event::SlaSupervisor,
            "reply_deadline" => Event::ReplyDeadline,
            _ => {
                return Err(format!(
                    "unknown notice event {name:?}; use escalation, sla_reminder, sla_supervisor or reply_deadline"
                ));
            }
        })
    }
}

/// What a notice may tell about a ticket: nothing about the buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: i64,
    /// 0 urgent, 1 high, 2 normal.
    pub priority: i64,
    /// The reason's kind: dispute, needs_person, no_match …
    pub reason: String,
    /// kefu's sentence for the agent.
    pub detail: Option<String>,
    pub channel: String,
    pub lang: Option<String>,
    /// Who holds it, when claimed.
    pub agent_id: Option<String>,
    /// When it was (re)opened, Unix ms.
    pub opened_at: i64,
    /// The platform's reply deadline, Unix ms.
    pub reply_due_at: Option<i64>,
}

/// One notice about one ticket, as of `now` (Unix ms).
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub event: Event,
    pub ticket: &'a TicketFacts,
    pub now: i64,
    /// `<console_url>#ticket=<id>`, when a console URL is configured.
    pub link: Option<&'a str>,
}

/// Longest `detail` a notice repeats, in characters.
const DETAIL_CHARS: usize = 200;

pub use crate::store::priority_label;

/// "45 s", "12 min", "2 h 5 min", "1 d 3 h": how people say a wait.
pub fn human_duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{m} min"),
        3600..86_400 if m == 0 => format!("{h} h"),
        3600..86_400 => format!("{h} h {m} min"),
        _ if h == 0 => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// The ticket's detail as a notice may show it: contact data redacted,
/// one line, at most [`DETAIL_CHARS`] characters.
fn safe_detail(detail: &str) -> String {
    let one_line = redact(detail)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if one_line.chars().count() <= DETAIL_CHARS {
        return one_line;
    }
    let mut short: String = one_line.chars().take(DETAIL_CHARS - 1).collect();
    short.push('…');
    short
}

/// The message the team reads. It starts with "kefu" so that chat bots with
/// a keyword rule (DingTalk, Feishu) accept it with the keyword "kefu".
pub fn text(n: &Notice) -> String {
    let t = n.ticket;
    let waiting = human_duration(n.now - t.opened_at);
    let priority = priority_label(t.priority);
    let headline = match n.event {
        Event::Escalation => format!("kefu: new ticket #{} waits for a person ({priority})", t.id),
        Event::SlaReminder => {
            format!(
                "kefu: ticket #{} still unclaimed after {waiting} ({priority})",
                t.id
            )
        }
        Event::SlaSupervisor => format!(
            "kefu: supervisor needed: ticket #{} unclaimed for {waiting} ({priority})",
            t.id
        ),
        Event::ReplyDeadline => match t.reply_due_at {
            Some(due) if due > n.now => format!(
                "kefu: ticket #{} must be answered within {} ({priority})",
                t.id,
                human_duration(due - n.now)
            ),
            Some(due) => format!(
                "kefu: ticket #{} missed its reply deadline {} ago ({priority})",
                t.id,
                human_duration(n.now - due)
            ),
            None => format!("kefu: ticket #{} reply deadline ({priority})", t.id),
        },
    };
    let mut lines = vec![headline];
    match t.detail.as_deref().map(safe_detail) {
        Some(detail) if !detail.is_empty() => {
            lines.push(format!("Reason: {} ({detail})", t.reason))
        }
        _ => lines.push(format!("Reason: {}", t.reason)),
    }
    lines.push(format!(
        "Channel: {} · Language: {} · Waiting: {waiting}",
        t.channel,
        t.lang.as_deref().unwrap_or("unknown")
    ));
    if let Some(agent) = &t.agent_id {
        lines.push(format!("Held by: {agent}"));
    }
    if let Some(link) = n.link {
        lines.push(format!("Open: {link}"));
    }
    lines.join("\n")
}

/// The body to POST to a target of `kind`, as JSON text. `mention` (dingtalk,
/// wecom): "all" or mobile numbers.
pub fn body(kind: TargetKind, n: &Notice, mention: &[String]) -> String {
    let text = text(n);
    let all = mention.iter().any(|m| m == "all");
    let mobiles: Vec<&str> = mention
        .iter()
        .filter(|m| *m != "all")
        .map(String::as_str)
        .collect();
    let value = match kind {
        TargetKind::Generic => generic(n, &text),
        // Slack reads &, < and > as markup; these three must be escaped.
        TargetKind::Slack => json!({
            "text": text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
        }),
        TargetKind::Feishu => json!({
            "msg_type": "text",
            "content": { "text": text },
        }),
        TargetKind::Dingtalk => {
            // DingTalk highlights a mobile mention only when the text
            // contains "@<mobile>".
            let mut content = text;
            for m in &mobiles {
                content.push_str(&format!(" @{m}"));
            }
            json!({
                "msgtype": "text",
                "text": { "content": content },
                "at": { "atMobiles": mobiles, "isAtAll": all },
            })
        }
        TargetKind::Wecom => {
            let mut inner = json!({ "content": text });
            if all {
                inner["mentioned_list"] = json!(["@all"]);
            }
            if !mobiles.is_empty() {
                inner["mentioned_mobile_list"] = json!(mobiles);
            }
            json!({ "msgtype": "text", "text": inner })
        }
    };
    value.to_string()
}

fn generic(n: &Notice, text: &str) -> Value {
    let t = n.ticket;
    json!({
        "event": n.event.as_str(),
        "ticket": {
            "id": t.id,
            "priority": t.priority,
            "priority_label": priority_label(t.priority),
            "reason": t.reason,
            "detail": t.detail.as_deref().map(safe_detail),
            "channel": t.channel,
            "lang": t.lang,
            "agent_id": t.agent_id,
            "opened_at": t.opened_at,
            "waiting_seconds": (n.now - t.opened_at).max(0) / 1000,
            "reply_due_at": t.reply_due_at,
        },
        "text": text,
        "console_url": n.link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENED: i64 = 1_790_000_000_000;

    fn ticket() -> TicketFacts {
        TicketFacts {
            id: 42,
            priority: 0,
            reason: "dispute".into(),
            detail: Some("the buyer mentions `chargeback` (dispute risk)".into()),
            channel: "shop".into(),
            lang: Some("es".into()),
            agent_id: None,
            opened_at: OPENED,
            reply_due_at: Some(OPENED + 24 * 3_600_000),
        }
    }

    fn notice<'a>(event: Event, t: &'a TicketFacts, waited_ms: i64) -> Notice<'a> {
        Notice {
            event,
            ticket: t,
            now: t.opened_at + waited_ms,
            link: Some("https://kefu.example.com/console#ticket=42"),
        }
    }

    #[test]
    fn durations_read_like_people_say_them() {
        let cases = [
            (0, "0 s"),
            (59_999, "59 s"),
            (60_000, "1 min"),
            (3_599_000, "59 min"),
            (3_600_000, "1 h"),
            (3_900_000, "1 h 5 min"),
            (86_400_000, "1 d"),
            (97_200_000, "1 d 3 h"),
            (-5, "0 s"),
        ];
        for (ms, expect) in cases {
            assert_eq!(human_duration(ms), expect, "{ms} ms");
        }
    }

    #[test]
    fn texts_per_event() {
        struct Case {
            name: &'static str,
            event: Event,
            waited_ms: i64,
            agent: Option<&'static str>,
            expect_first_line: &'static str,
        }
        let cases = [
            Case {
                name: "new ticket",
                event: Event::Escalation,
                waited_ms: 2_000,
                agent: None,
                expect_first_line: "kefu: new ticket #42 waits for a person (urgent)",
            },
            Case {
                name: "reminder",
                event: Event::SlaReminder,
                waited_ms: 600_000,
                agent: None,
                expect_first_line: "kefu: ticket #42 still unclaimed after 10 min (urgent)",
            },
            Case {
                name: "supervisor",
                event: Event::SlaSupervisor,
                waited_ms: 1_800_000,
                agent: None,
                expect_first_line: "kefu: supervisor needed: ticket #42 unclaimed for 30 min (urgent)",
            },
            Case {
                name: "deadline ahead",
                event: Event::ReplyDeadline,
                waited_ms: 22 * 3_600_000,
                agent: Some("alice"),
                expect_first_line: "kefu: ticket #42 must be answered within 2 h (urgent)",
            },
            Case {
                name: "deadline passed",
                event: Event::ReplyDeadline,
                waited_ms: 24 * 3_600_000 + 300_000,
                agent: None,
                expect_first_line: "kefu: ticket #42 missed its reply deadline 5 min ago (urgent)",
            },
        ];
        for case in cases {
            let mut t = ticket();
            t.agent_id = case.agent.map(String::from);
            let text = text(&notice(case.event, &t, case.waited_ms));
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines[0], case.expect_first_line, "{}", case.name);
            assert_eq!(
                lines[1], "Reason: dispute (the buyer mentions `chargeback` (dispute risk))",
                "{}",
                case.name
            );
            assert!(lines[2].starts_with("Channel: shop · Language: es · Waiting: "));
            assert_eq!(
                lines.contains(&"Held by: alice"),
                case.agent.is_some(),
                "{}",
                case.name
            );
            assert_eq!(
                *lines.last().unwrap(),
                "Open: https://kefu.example.com/console#ticket=42"
            );
        }
    }

    #[test]
    fn details_are_redacted_shortened_and_kept_on_one_line() {
        let mut t = ticket();
        t.detail = Some(format!(
            "delivery failed: HTTP 400 for ana@example.com\nphone +49 151 2345 6789 {}",
            "x".repeat(400)
        ));
        t.lang = None;
        t.priority = 2;
        let n = Notice {
            event: Event::Escalation,
            ticket: &t,
            now: OPENED,
            link: None,
        };
        let text = text(&n);
        assert!(!text.contains("ana@example.com"), "{text}");
        assert!(!text.contains("2345"), "{text}");
        assert!(
            text.contains("[email]") && text.contains("[phone]"),
            "{text}"
        );
        assert!(text.contains("Language: unknown"));
        assert!(text.contains("(normal)"));
        assert!(!text.contains("Open:"), "no console_url, no link");
        let reason = text.lines().nth(1).unwrap();
        assert!(reason.chars().count() < DETAIL_CHARS + 20, "{reason}");
        assert!(reason.ends_with("…)"), "{reason}");
    }

    /// Each kind against the shape its webhook documents.
    #[test]
    fn bodies_per_kind() {
        let t = ticket();
        let n = notice(Event::SlaReminder, &t, 600_000);
        let plain = text(&n);
        let none: Vec<String> = vec![];
        let all = vec!["all".to_string()];
        let mobiles = vec!["13800000000".to_string(), "+8613900000000".to_string()];
        struct Case<'a> {
            kind: TargetKind,
            mention: &'a [String],
            expect: Value,
        }
        let cases = [
            Case {
                kind: TargetKind::Generic,
                mention: &none,
                expect: json!({
                    "event": "sla_reminder",
                    "ticket": {
                        "id": 42, "priority": 0, "priority_label": "urgent",
                        "reason": "dispute",
                        "detail": "the buyer mentions `chargeback` (dispute risk)",
                        "channel": "shop", "lang": "es", "agent_id": null,
                        "opened_at": OPENED, "waiting_seconds": 600,
                        "reply_due_at": OPENED + 86_400_000,
                    },
                    "text": plain,
                    "console_url": "https://kefu.example.com/console#ticket=42",
                }),
            },
            Case {
                kind: TargetKind::Slack,
                mention: &none,
                expect: json!({ "text": plain }),
            },
            Case {
                kind: TargetKind::Feishu,
                mention: &none,
                expect: json!({ "msg_type": "text", "content": { "text": plain } }),
            },
            Case {
                kind: TargetKind::Dingtalk,
                mention: &none,
                expect: json!({
                    "msgtype": "text",
                    "text": { "content": plain },
                    "at": { "atMobiles": [], "isAtAll": false },
                }),
            },
            Case {
                kind: TargetKind::Dingtalk,
                mention: &mobiles,
                expect: json!({
                    "msgtype": "text",
                    "text": { "content": format!("{plain} @13800000000 @+8613900000000") },
                    "at": { "atMobiles": ["13800000000", "+8613900000000"], "isAtAll": false },
                }),
            },
            Case {
                kind: TargetKind::Dingtalk,
                mention: &all,
                expect: json!({
                    "msgtype": "text",
                    "text": { "content": plain },
                    "at": { "atMobiles": [], "isAtAll": true },
                }),
            },
            Case {
                kind: TargetKind::Wecom,
                mention: &none,
                expect: json!({ "msgtype": "text", "text": { "content": plain } }),
            },
            Case {
                kind: TargetKind::Wecom,
                mention: &all,
                expect: json!({
                    "msgtype": "text",
                    "text": { "content": plain, "mentioned_list": ["@all"] },
                }),
            },
            Case {
                kind: TargetKind::Wecom,
                mention: &mobiles,
                expect: json!({
                    "msgtype": "text",
                    "text": {
                        "content": plain,
                        "mentioned_mobile_list": ["13800000000", "+8613900000000"],
                    },
                }),
            },
        ];
        for case in cases {
            let got: Value = serde_json::from_str(&body(case.kind, &n, case.mention)).unwrap();
            assert_eq!(got, case.expect, "{:?} {:?}", case.kind, case.mention);
        }
    }

    #[test]
    fn slack_markup_characters_are_escaped() {
        let mut t = ticket();
        t.detail = Some("a <b> & c".into());
        let n = notice(Event::Escalation, &t, 0);
        let got: Value = serde_json::from_str(&body(TargetKind::Slack, &n, &[])).unwrap();
        let text = got["text"].as_str().unwrap();
        assert!(text.contains("a &lt;b&gt; &amp; c"), "{text}");
    }

    #[test]
    fn event_names_match_the_schema_and_config() {
        for event in [
            Event::Escalation,
            Event::SlaReminder,
            Event::SlaSupervisor,
            Event::ReplyDeadline,
        ] {
            let parsed: Event = serde_json::from_value(json!(event.as_str())).unwrap();
            assert_eq!(parsed, event);
        }
    }
}
