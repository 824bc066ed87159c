//! The understanding engine: packs compiled once, then message in → reading,
//! decision and reply out (pure, synchronous, shareable behind `Arc`).
//!
//! Wires [`intent`](crate::intent), [`lang`](crate::lang),
//! [`entity`](crate::entity), [`policy`](crate::policy) and
//! [`reply`](crate::reply) together. The service and the command line both
//! call [`Engine::respond`].

use std::collections::HashMap;

use serde::Serialize;

use crate::entity::{self, Entity, EntityKind};
use crate::intent::{Catalog, Classification, Fired, Matcher, Scratch, overlap};
use crate::lang::{Lang, LangSource};
use crate::packs::{PackError, PackErrors, PackSource};
use crate::policy::{self, Decision};
use crate::reply::{Facts, RenderContext, ReplyBook, Style, Topic};

pub struct Engine {
    catalog: Catalog,
    matcher: Matcher,
    replies: ReplyBook,
    facts: Facts,
    default_lang: Lang,
}

/// A buyer's message and what the channel knows around it.
#[derive(Debug, Clone, Default)]
pub struct Inbound<'a> {
    pub text: &'a str,
    /// The channel's locale for the buyer (`pt-BR`); wins when supported.
    pub locale: Option<&'a str>,
    /// The conversation's last language, for short follow-ups like "ok".
    pub last_lang: Option<Lang>,
    pub buyer_name: Option<&'a str>,
    pub style: Style,
}

/// What kefu makes of a message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub classification: Classification,
    pub entities: Vec<Entity>,
    pub decision: Decision,
    pub confidence: f32,
    /// The language of the reply.
    pub lang: Lang,
    /// What the buyer receives: the answer, or the handover message.
    pub reply: String,
}

impl Outcome {
    /// The machine-readable form `kefu classify` prints.
    pub fn report(&self) -> Report<'_> {
        let c = &self.classification;
        let matched = c
            .detected
            .iter()
            .chain(&c.weak)
            .flat_map(|s| {
                s.matched.iter().map(move |f| MatchedReport {
                    intent: &s.intent,
                    fired: f,
                })
            })
            .collect();
        Report {
            intent: c.best().map(|s| &*s.intent),
            intents: c.detected.iter().map(|s| &*s.intent).collect(),
            lang: self.lang,
            lang_source: c.lang.source,
            confidence: self.confidence,
            action: if self.decision.is_answer() {
                "answer"
            } else {
                "escalate"
            },
            reason: self.decision.reason().map(|r| r.to_string()),
            matched,
            vetoed: c
                .vetoed
                .iter()
                .map(|v| (&*v.intent, &*v.exclusion))
                .collect(),
            entities: &self.entities,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub intent: Option<&'a str>,
    pub intents: Vec<&'a str>,
    pub lang: Lang,
    pub lang_source: LangSource,
    pub confidence: f32,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub matched: Vec<MatchedReport<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vetoed: Vec<(&'a str, &'a str)>,
    #[serde(skip_serializing_if = "<[Entity]>::is_empty")]
    pub entities: &'a [Entity],
}

#[derive(Debug, Serialize)]
pub struct MatchedReport<'a> {
    pub intent: &'a str,
    #[serde(flatten)]
    pub fired: &'a Fired,
}

impl Engine {
    /// Loads and validates the packs against the store's facts. Every
    /// problem in every file is returned at once.
    pub fn load(
        source: &PackSource,
        facts: Facts,
        default_lang: Lang,
    ) -> Result<Engine, PackErrors> {
        let catalog = Catalog::load(&source.intents);
        let ids: Vec<String> = match &catalog {
            Ok(c) => c.intents.iter().map(|i| i.id.clone()).collect(),
            // Check the replies against the intent files that exist, so reply
            // problems are reported together with the intent problems.
            Err(_) => source
                .intents
                .iter()
                .filter_map(|f| std::path::Path::new(&f.name).file_stem())
                .map(|s| s.to_string_lossy().into_owned())
                .collect(),
        };
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let replies = ReplyBook::load(&source.replies, &id_refs, &facts);
        let (catalog, replies) = match (catalog, replies) {
            (Ok(c), Ok(r)) => (c, r),
            (c, r) => {
                let mut errors = Vec::new();
                errors.extend(c.err().map(|e| e.0).unwrap_or_default());
                errors.extend(r.err().map(|e| e.0).unwrap_or_default());
                return Err(PackErrors(errors));
            }
        };
        let matcher = Matcher::new(&catalog)
            .map_err(|e| PackErrors(vec![PackError::file(source.origin.clone(), e)]))?;
        Ok(Engine {
            catalog,
            matcher,
            replies,
            facts,
            default_lang,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn replies(&self) -> &ReplyBook {
        &self.replies
    }

    pub fn default_lang(&self) -> Lang {
        self.default_lang
    }

    /// Keywords two intents compete for (for `kefu check`).
    pub fn overlaps(&self) -> Vec<overlap::Overlap> {
        overlap::find_overlaps(&self.catalog)
    }

    /// Quick phrases for agents: each intent's reply in `lang`, filled with
    /// the store's facts (and the buyer's name where a variant uses it).
    pub fn phrases(
        &self,
        lang: Lang,
        style: Style,
        buyer_name: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut values: HashMap<&str, &str> = HashMap::new();
        if let Some(name) = buyer_name.filter(|n| !n.trim().is_empty()) {
            values.insert("buyer_name", name);
        }
        let ctx = RenderContext {
            lang,
            style,
            facts: &self.facts,
            values,
        };
        self.catalog
            .intents
            .iter()
            .map(|intent| {
                let text = self.replies.render(&[Topic::Intent(&intent.id)], &ctx);
                (intent.id.clone(), text)
            })
            .filter(|(_, text)| !text.trim().is_empty())
            .collect()
    }

    pub fn respond(&self, msg: &Inbound<'_>) -> Outcome {
        self.respond_with(&mut Scratch::default(), msg)
    }

    /// [`Engine::respond`] reusing buffers across a stream of messages.
    pub fn respond_with(&self, scratch: &mut Scratch, msg: &Inbound<'_>) -> Outcome {
        let outcome = self.understand_with(scratch, msg);
        let reply = self.render(&outcome, msg);
        Outcome { reply, ..outcome }
    }

    /// Classifies and decides, without rendering a reply (what `kefu
    /// classify` and `kefu eval` need).
    pub fn understand_with(&self, scratch: &mut Scratch, msg: &Inbound<'_>) -> Outcome {
        let hint = msg.locale.and_then(Lang::from_locale);
        let fallback = msg.last_lang.unwrap_or(self.default_lang);
        let classification = self
            .matcher
            .classify_with(scratch, msg.text, hint, fallback);
        let entities = entity::extract(msg.text);
        let decision = policy::decide(&classification);
        let confidence = policy::confidence(&classification);
        Outcome {
            lang: classification.lang.lang,
            classification,
            entities,
            decision,
            confidence,
            reply: String::new(),
        }
    }

    fn render(&self, outcome: &Outcome, msg: &Inbound<'_>) -> String {
        let mut values: HashMap<&str, &str> = HashMap::new();
        for kind in [EntityKind::OrderId, EntityKind::TrackingNumber] {
            if let Some(value) = entity::first(&outcome.entities, kind) {
                values.insert(kind.placeholder(), value);
            }
        }
        if let Some(name) = msg.buyer_name.filter(|n| !n.trim().is_empty()) {
            values.insert("buyer_name", name);
        }
        let topics: Vec<Topic<'_>> = match &outcome.decision {
            Decision::Answer { intents } => intents.iter().map(|i| Topic::Intent(i)).collect(),
            Decision::Escalate { intents, .. } if !intents.is_empty() => {
                intents.iter().map(|i| Topic::Intent(i)).collect()
            }
            Decision::Escalate { .. } => vec![Topic::Handover],
        };
        let ctx = RenderContext {
            lang: outcome.lang,
            style: msg.style,
            facts: &self.facts,
            values,
        };
        self.replies.render(&topics, &ctx)
    }
}
