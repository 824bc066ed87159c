//! When a ticket's next notice is due (pure; times are Unix ms).
//!
//! Two independent tracks per ticket:
//!
//! - **Unclaimed** (state `open`): `sla_level` counts the notices sent since
//!   the ticket (re)opened and `sla_next_at` says when the next is due.
//!   Level 0 → "escalation" (the team hears of the ticket), then at
//!   `opened_at + remind_after` → "sla_reminder", then at
//!   `opened_at + supervisor_after` → "sla_supervisor", then nothing. When
//!   the reminder is due but the supervisor notice is due as well (kefu was
//!   down), the reminder is skipped: one louder notice, not two at once.
//! - **Reply deadline** (state `open` or `claimed`): once
//!   `reply_due_at - deadline_warning` has come and no person has replied
//!   (`reply_due_at` is still set) → "reply_deadline", once per deadline.
//!
//! Claiming a ticket clears `sla_next_at`; an agent's reply clears
//! `reply_due_at` (the ticket code does that), which stops each track.

use std::time::Duration;

use crate::config::SlaConfig;

use super::format::Event;

/// The last SLA level: the supervisor has been told.
pub const LAST_LEVEL: i64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    Open,
    Claimed,
    Resolved,
}

impl TicketState {
    pub fn from_db(state: &str) -> TicketState {
        match state {
            "open" => TicketState::Open,
            "claimed" => TicketState::Claimed,
            // Unknown states are treated as finished: no notices.
            _ => TicketState::Resolved,
        }
    }
}

/// A ticket's timer columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketTimes {
    pub state: TicketState,
    pub opened_at: i64,
    pub sla_level: i64,
    pub sla_next_at: Option<i64>,
    pub reply_due_at: Option<i64>,
    pub deadline_notified: bool,
}

/// Advance an unclaimed ticket from `from_level` to `to_level`, notifying
/// `event`; the level after that is due at `next_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub event: Event,
    pub from_level: i64,
    pub to_level: i64,
    pub next_at: Option<i64>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The unclaimed-track step due at `now`, if any.
pub fn next_step(t: &TicketTimes, now: i64, sla: &SlaConfig) -> Option<Step> {
    if t.state != TicketState::Open || t.sla_next_at? > now {
        return None;
    }
    let remind_at = t.opened_at.saturating_add(ms(sla.remind_after));
    let supervisor_at = t.opened_at.saturating_add(ms(sla.supervisor_after));
    let step = |event, to_level, next_at| Step {
        event,
        from_level: t.sla_level,
        to_level,
        next_at,
    };
    match t.sla_level {
        // Below 0 cannot happen; treated as 0 so such a row cannot stay due.
        ..=0 => Some(step(Event::Escalation, 1, Some(remind_at))),
        1 if now >= supervisor_at => Some(step(Event::SlaSupervisor, LAST_LEVEL, None)),
        1 => Some(step(Event::SlaReminder, 2, Some(supervisor_at))),
        2 => Some(step(Event::SlaSupervisor, LAST_LEVEL, None)),
        _ => None,
    }
}

/// When the reply-deadline warning is due, if it still is.
pub fn deadline_warning_at(t: &TicketTimes, sla: &SlaConfig) -> Option<i64> {
    if t.deadline_notified || !matches!(t.state, TicketState::Open | TicketState::Claimed) {
        return None;
    }
    Some(t.reply_due_at?.saturating_sub(ms(sla.deadline_warning)))
}

/// Whether the reply-deadline warning is due at `now`.
pub fn deadline_due(t: &TicketTimes, now: i64, sla: &SlaConfig) -> bool {
    deadline_warning_at(t, sla).is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_790_000_000_000;

    fn sla() -> SlaConfig {
        SlaConfig {
            remind_after: Duration::from_secs(10 * 60),
            supervisor_after: Duration::from_secs(30 * 60),
            deadline_warning: Duration::from_secs(2 * 3600),
        }
    }

    fn open(level: i64, next_at: Option<i64>) -> TicketTimes {
        TicketTimes {
            state: TicketState::Open,
            opened_at: T0,
            sla_level: level,
            sla_next_at: next_at,
            reply_due_at: Some(T0 + 24 * 60 * MIN),
            deadline_notified: false,
        }
    }

    #[test]
    fn unclaimed_track() {
        struct Case {
            name: &'static str,
            ticket: TicketTimes,
            now: i64,
            expect: Option<(Event, i64, Option<i64>)>,
        }
        let claimed = TicketTimes {
            state: TicketState::Claimed,
            ..open(1, None)
        };
        let resolved = TicketTimes {
            state: TicketState::Resolved,
            ..open(0, Some(T0))
        };
        let cases = [
            Case {
                name: "just opened: the team hears of it",
                ticket: open(0, Some(T0)),
                now: T0,
                expect: Some((Event::Escalation, 1, Some(T0 + 10 * MIN))),
            },
            Case {
                name: "not due yet",
                ticket: open(0, Some(T0 + 5)),
                now: T0,
                expect: None,
            },
            Case {
                name: "escalated, reminder not due",
                ticket: open(1, Some(T0 + 10 * MIN)),
                now: T0 + 9 * MIN,
                expect: None,
            },
            Case {
                name: "reminder due",
                ticket: open(1, Some(T0 + 10 * MIN)),
                now: T0 + 10 * MIN,
                expect: Some((Event::SlaReminder, 2, Some(T0 + 30 * MIN))),
            },
            Case {
                name: "supervisor due",
                ticket: open(2, Some(T0 + 30 * MIN)),
                now: T0 + 31 * MIN,
                expect: Some((Event::SlaSupervisor, 3, None)),
            },
            Case {
                name: "reminder overdue past the supervisor time: straight to the supervisor",
                ticket: open(1, Some(T0 + 10 * MIN)),
                now: T0 + 45 * MIN,
                expect: Some((Event::SlaSupervisor, 3, None)),
            },
            Case {
                name: "after a long outage a new ticket is still announced first",
                ticket: open(0, Some(T0)),
                now: T0 + 45 * MIN,
                expect: Some((Event::Escalation, 1, Some(T0 + 10 * MIN))),
            },
            Case {
                name: "supervisor told: nothing more",
                ticket: open(3, None),
                now: T0 + 90 * MIN,
                expect: None,
            },
            Case {
                name: "a stray next time after the last level is ignored",
                ticket: open(3, Some(T0)),
                now: T0 + 90 * MIN,
                expect: None,
            },
            Case {
                name: "claimed",
                ticket: claimed,
                now: T0 + 90 * MIN,
                expect: None,
            },
            Case {
                name: "claimed with a stale next time",
                ticket: TicketTimes {
                    sla_next_at: Some(T0),
                    ..claimed
                },
                now: T0 + 90 * MIN,
                expect: None,
            },
            Case {
                name: "resolved",
                ticket: resolved,
                now: T0 + 90 * MIN,
                expect: None,
            },
        ];
        for case in cases {
            let got = next_step(&case.ticket, case.now, &sla());
            let expect = case.expect.map(|(event, to_level, next_at)| Step {
                event,
                from_level: case.ticket.sla_level,
                to_level,
                next_at,
            });
            assert_eq!(got, expect, "{}", case.name);
        }
    }

    #[test]
    fn deadline_track() {
        let due = T0 + 24 * 60 * MIN;
        let warn_at = due - 120 * MIN;
        let cases = [
            ("long before", open(1, None), warn_at - 1, false),
            ("warning time", open(1, None), warn_at, true),
            ("past the deadline", open(1, None), due + MIN, true),
            (
                "claimed, no reply yet",
                TicketTimes {
                    state: TicketState::Claimed,
                    ..open(1, None)
                },
                warn_at,
                true,
            ),
            (
                "already warned",
                TicketTimes {
                    deadline_notified: true,
                    ..open(1, None)
                },
                due,
                false,
            ),
            (
                "an agent replied",
                TicketTimes {
                    reply_due_at: None,
                    ..open(1, None)
                },
                due,
                false,
            ),
            (
                "resolved",
                TicketTimes {
                    state: TicketState::Resolved,
                    ..open(1, None)
                },
                due,
                false,
            ),
        ];
        for (name, ticket, now, expect) in cases {
            assert_eq!(deadline_due(&ticket, now, &sla()), expect, "{name}");
        }
        assert_eq!(deadline_warning_at(&open(0, None), &sla()), Some(warn_at));
    }

    #[test]
    fn states_from_the_database() {
        assert_eq!(TicketState::from_db("open"), TicketState::Open);
        assert_eq!(TicketState::from_db("claimed"), TicketState::Claimed);
        assert_eq!(TicketState::from_db("resolved"), TicketState::Resolved);
        assert_eq!(TicketState::from_db("???"), TicketState::Resolved);
    }
}
