//! Reply templates: `replies/<lang>.toml` read, validated and rendered (pure).
//!
//! See `replies/README.md` for the format. A template is text with
//! `{placeholders}` filled from the store's facts and, in a `with_<name>`
//! table, from what the message or channel told us (order id, tracking
//! number, buyer name). Whatever a language lacks falls back to English.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::de::DeValue;

use crate::lang::Lang;
use crate::packs::{PackError, PackErrors, PackFile, Table, TomlDoc};

/// Store facts by placeholder name: `handling_days` → `2–4`.
pub type Facts = BTreeMap<String, String>;

/// Values a `with_<name>` table may use, in order of preference.
pub const CONTEXT_VALUES: [&str; 3] = ["tracking_number", "order_id", "buyer_name"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Short answers for chat apps.
    #[default]
    Chat,
    /// A letter: salutation, body, closing (e-mail, station mail).
    Mail,
}

impl Style {
    fn field(self) -> &'static str {
        match self {
            Style::Chat => "chat",
            Style::Mail => "mail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &source[i + 1..];
                    let Some(close) = rest.find('}') else {
                        return Err(
                            "a `{` is never closed; write `{{` for a literal brace".to_string()
                        );
                    };
                    let name = &rest[..close];
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(format!(
                            "`{{{name}}}` is not a placeholder name (letters, digits and _); write `{{{{` for a literal brace"
                        ));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Slot(name.to_string()));
                    for _ in 0..=name.len() {
                        chars.next();
                    }
                }
                '}' => return Err("a `}` without `{`; write `}}` for a literal brace".to_string()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Slot(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    fn render_into(&self, out: &mut String, lookup: &dyn Fn(&str) -> Option<String>) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Slot(name) => match lookup(name) {
                    Some(value) => out.push_str(&value),
                    // Validation makes this unreachable for loaded packs; keep
                    // the marker visible rather than send a silent gap.
                    None => {
                        let _ = write!(out, "{{{name}}}");
                    }
                },
            }
        }
    }
}

/// One message table: its fields (`chat`, `mail`, or `salutation`,
/// `closing`), each with optional `with_<name>` variants.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// (field, with-variant, template)
    texts: Vec<(String, Option<String>, Template)>,
}

impl Entry {
    fn pick(
        &self,
        field: &str,
        context: &HashMap<&str, &str>,
    ) -> Option<(&Template, Option<&str>)> {
        for name in CONTEXT_VALUES {
            if !context.contains_key(name) {
                continue;
            }
            if let Some((_, w, t)) = self
                .texts
                .iter()
                .find(|(f, w, _)| f == field && w.as_deref() == Some(name))
            {
                return Some((t, w.as_deref()));
            }
        }
        self.texts
            .iter()
            .find(|(f, w, _)| f == field && w.is_none())
            .map(|(_, _, t)| (t, None))
    }

    fn has(&self, field: &str) -> bool {
        self.texts.iter().any(|(f, w, _)| f == field && w.is_none())
    }
}

#[derive(Debug, Clone, Default)]
struct LangBook {
    frame: Entry,
    handover: Entry,
    intents: HashMap<String, Entry>,
}

/// What a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    Intent(&'a str),
    /// The message kefu sends when it hands the conversation to a person.
    Handover,
}

/// Everything a reply is rendered from.
pub struct RenderContext<'a> {
    pub lang: Lang,
    pub style: Style,
    pub facts: &'a Facts,
    /// `order_id`, `tracking_number`, `buyer_name` when known.
    pub values: HashMap<&'a str, &'a str>,
}

/// All reply packs.
#[derive(Debug, Clone, Default)]
pub struct ReplyBook {
    langs: BTreeMap<Lang, LangBook>,
}

impl ReplyBook {
    /// Reads every reply file and checks it against the intents and the
    /// store's facts; returns all problems at once.
    pub fn load(
        files: &[PackFile],
        intent_ids: &[&str],
        facts: &Facts,
    ) -> Result<ReplyBook, PackErrors> {
        let mut errors = Vec::new();
        let mut langs = BTreeMap::new();
        for file in files {
            let stem = Path::new(&file.name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(lang) = Lang::ALL.into_iter().find(|l| l.code() == stem) else {
                errors.push(PackError::file(
                    file.name.clone(),
                    format!(
                        "kefu has no language `{stem}`; reply files are named after one of: {}",
                        Lang::ALL.map(Lang::code).join(", ")
                    ),
                ));
                continue;
            };
            let book = load_lang(file, intent_ids, facts, &mut errors);
            langs.insert(lang, book);
        }
        if !langs.contains_key(&Lang::En) {
            errors.push(PackError::file(
                "replies/en.toml".to_string(),
                "missing: English is every language's fallback, so replies/en.toml is required"
                    .to_string(),
            ));
        }
        if errors.is_empty() {
            Ok(ReplyBook { langs })
        } else {
            Err(PackErrors(errors))
        }
    }

    /// Languages that have their own reply file.
    pub fn languages(&self) -> impl Iterator<Item = Lang> + '_ {
        self.langs.keys().copied()
    }

    /// Renders one reply answering each topic once, in order.
    pub fn render(&self, topics: &[Topic<'_>], ctx: &RenderContext<'_>) -> String {
        let field = ctx.style.field();
        let lookup = |name: &str| -> Option<String> {
            ctx.values
                .get(name)
                .map(|v| v.to_string())
                .or_else(|| ctx.facts.get(name).cloned())
        };
        let mut bodies: Vec<String> = Vec::new();
        for topic in topics {
            if let Some((template, _)) = self.find(
                ctx.lang,
                |book| match topic {
                    Topic::Intent(id) => book.intents.get(*id),
                    Topic::Handover => Some(&book.handover),
                },
                field,
                &ctx.values,
            ) {
                let mut body = String::new();
                template.render_into(&mut body, &lookup);
                let body = body.trim().to_string();
                if !body.is_empty() && !bodies.contains(&body) {
                    bodies.push(body);
                }
            }
        }
        match ctx.style {
            Style::Chat => bodies.join("\n"),
            Style::Mail => {
                let mut out = String::new();
                if let Some((t, _)) =
                    self.find(ctx.lang, |b| Some(&b.frame), "salutation", &ctx.values)
                {
                    t.render_into(&mut out, &lookup);
                    out.push_str("\n\n");
                }
                out.push_str(&bodies.join("\n\n"));
                if let Some((t, _)) =
                    self.find(ctx.lang, |b| Some(&b.frame), "closing", &ctx.values)
                {
                    out.push_str("\n\n");
                    t.render_into(&mut out, &lookup);
                }
                out
            }
        }
    }

    /// The template for `field` in `lang`, else in English.
    fn find<'s>(
        &'s self,
        lang: Lang,
        entry: impl Fn(&'s LangBook) -> Option<&'s Entry>,
        field: &str,
        values: &HashMap<&str, &str>,
    ) -> Option<(&'s Template, Option<&'s str>)> {
        [lang, Lang::En]
            .iter()
            .filter_map(|l| self.langs.get(l))
            .filter_map(&entry)
            .find_map(|e| e.pick(field, values))
    }

    /// `with_<name>` variants English has and another language lacks: that
    /// language then answers with its plain text. For `kefu check`.
    pub fn variant_gaps(&self) -> Vec<String> {
        let Some(en) = self.langs.get(&Lang::En) else {
            return Vec::new();
        };
        let mut gaps = Vec::new();
        for (lang, book) in &self.langs {
            if *lang == Lang::En {
                continue;
            }
            let mut ids: Vec<&String> = en.intents.keys().collect();
            ids.sort();
            for id in ids {
                for (_, with, _) in &en.intents[id].texts {
                    let Some(with) = with else { continue };
                    let has = book.intents.get(id).is_some_and(|e| {
                        e.texts.iter().any(|(_, w, _)| w.as_deref() == Some(with))
                    });
                    let gap = format!(
                        "replies/{lang}.toml lacks [intent.{id}.with_{with}], which en has"
                    );
                    if !has && !gaps.contains(&gap) {
                        gaps.push(gap);
                    }
                }
            }
        }
        gaps
    }

    /// Languages that lack a reply file (answered in English), for `kefu check`.
    pub fn missing_languages(&self) -> Vec<Lang> {
        Lang::ALL
            .into_iter()
            .filter(|l| !self.langs.contains_key(l))
            .collect()
    }
}

fn load_lang(
    file: &PackFile,
    intent_ids: &[&str],
    facts: &Facts,
    errors: &mut Vec<PackError>,
) -> LangBook {
    let before = errors.len();
    let book = load_lang_tables(file, intent_ids, facts, errors);
    errors[before..].sort_by_key(|e| (e.line, e.column));
    book
}

fn load_lang_tables(
    file: &PackFile,
    intent_ids: &[&str],
    facts: &Facts,
    errors: &mut Vec<PackError>,
) -> LangBook {
    let (root, mut doc) = TomlDoc::parse(file, errors);
    let root = root.get_ref();
    doc.deny_unknown(root, &["frame", "handover", "intent"], "a reply file");
    let mut book = LangBook::default();
    let mut missing = Vec::new();

    match root.get("frame").and_then(|v| doc.table(v, "[frame]")) {
        Some(t) => {
            book.frame = load_entry(&mut doc, t, "[frame]", &["salutation", "closing"], facts);
            for field in ["salutation", "closing"] {
                if !book.frame.has(field) {
                    missing.push(format!("[frame] {field}"));
                }
            }
        }
        None => missing.push("[frame] with salutation and closing".to_string()),
    }
    match root
        .get("handover")
        .and_then(|v| doc.table(v, "[handover]"))
    {
        Some(t) => {
            book.handover = load_entry(&mut doc, t, "[handover]", &["chat", "mail"], facts);
            for field in ["chat", "mail"] {
                if !book.handover.has(field) {
                    missing.push(format!("[handover] {field}"));
                }
            }
        }
        None => missing.push("[handover] with chat and mail".to_string()),
    }
    let empty = Table::default();
    let intents = root
        .get("intent")
        .and_then(|v| doc.table(v, "[intent]"))
        .unwrap_or(&empty);
    for (key, value) in intents.iter() {
        let id = key.get_ref().to_string();
        if !intent_ids.contains(&id.as_str()) {
            doc.error(
                key.span(),
                format!("there is no intent `{id}` in the intent packs; remove [intent.{id}] or add intents/{id}.toml"),
            );
            continue;
        }
        let what = format!("[intent.{id}]");
        if let Some(t) = doc.table(value, &what) {
            let entry = load_entry(&mut doc, t, &what, &["chat", "mail"], facts);
            book.intents.insert(id, entry);
        }
    }
    for id in intent_ids {
        match book.intents.get(*id) {
            None => missing.push(format!("[intent.{id}]")),
            Some(entry) => {
                for field in ["chat", "mail"] {
                    if !entry.has(field) {
                        missing.push(format!("[intent.{id}] {field}"));
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        errors.push(PackError::file(
            file.name.clone(),
            format!(
                "missing replies: {}; add them (every intent needs chat and mail in every language file)",
                missing.join(", ")
            ),
        ));
    }
    book
}

fn load_entry(
    doc: &mut TomlDoc<'_>,
    table: &Table<'_>,
    what: &str,
    fields: &[&str],
    facts: &Facts,
) -> Entry {
    let mut entry = Entry::default();
    load_fields(doc, table, what, fields, None, facts, &mut entry);
    for (key, value) in table.iter() {
        let key = key.get_ref();
        let Some(name) = key.strip_prefix("with_") else {
            continue;
        };
        let sub_what = format!("{}.{key}]", what.trim_end_matches(']'));
        if !CONTEXT_VALUES.contains(&name) {
            doc.error(
                value.span(),
                format!(
                    "{sub_what}: kefu knows no value `{name}`; use with_{}",
                    CONTEXT_VALUES.join(", with_")
                ),
            );
            continue;
        }
        if let Some(t) = doc.table(value, &sub_what) {
            load_fields(doc, t, &sub_what, fields, Some(name), facts, &mut entry);
        }
    }
    entry
}

fn load_fields(
    doc: &mut TomlDoc<'_>,
    table: &Table<'_>,
    what: &str,
    fields: &[&str],
    with: Option<&str>,
    facts: &Facts,
    entry: &mut Entry,
) {
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        if with.is_none() && name.starts_with("with_") {
            continue;
        }
        if !fields.contains(&name) {
            doc.error(
                key.span(),
                format!(
                    "unknown key `{name}` in {what}; expected {}",
                    fields.join(" or ")
                ),
            );
            continue;
        }
        let DeValue::String(source) = value.get_ref() else {
            doc.error(value.span(), format!("`{name}` in {what} must be a string"));
            continue;
        };
        match Template::parse(source) {
            Ok(template) => {
                for slot in template.placeholders() {
                    if !facts.contains_key(slot) && Some(slot) != with {
                        let hint = if CONTEXT_VALUES.contains(&slot) {
                            format!("{{{slot}}} is only known inside a [..with_{slot}] table")
                        } else {
                            format!(
                                "add it under [facts] in kefu.toml, or use one of: {}",
                                facts
                                    .keys()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        doc.error(
                            value.span(),
                            format!("unknown placeholder {{{slot}}} in {what} {name}: {hint}"),
                        );
                    }
                }
                entry
                    .texts
                    .push((name.to_string(), with.map(str::to_string), template));
            }
            Err(message) => doc.error(value.span(), format!("{what} {name}: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        [("store_name", "Demo"), ("handling_days", "2–4")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const EN: &str = r#"
[frame]
salutation = "Hello,"
closing = "Regards,\n{store_name}"
[frame.with_buyer_name]
salutation = "Dear {buyer_name},"
[handover]
chat = "A colleague will reply."
mail = "A colleague will reply soon."
[intent.ship]
chat = "Ships in {handling_days} days."
mail = "Your order ships within {handling_days} working days."
[intent.track]
chat = "Send me your tracking number."
mail = "Please send your tracking number."
[intent.track.with_tracking_number]
chat = "Track {tracking_number} on the carrier site."
mail = "You can follow {tracking_number} online."
"#;

    fn book(es: &str) -> Result<ReplyBook, PackErrors> {
        let files = [
            PackFile {
                name: "replies/en.toml".into(),
                text: EN.into(),
            },
            PackFile {
                name: "replies/es.toml".into(),
                text: es.into(),
            },
        ];
        ReplyBook::load(&files, &["ship", "track"], &facts())
    }

    const ES: &str = r#"
[frame]
salutation = "Hola:"
closing = "Saludos,\n{store_name}"
[handover]
chat = "Un compañero le responderá."
mail = "Un compañero le responderá pronto."
[intent.ship]
chat = "Se envía en {handling_days} días."
mail = "Su pedido sale en {handling_days} días hábiles."
[intent.track]
chat = "Envíeme su número de seguimiento."
mail = "Por favor, envíe su número de seguimiento."
"#;

    #[test]
    fn renders_chat_and_mail_with_variants_and_fallback() {
        let book = book(ES).unwrap();
        let f = facts();
        let mut ctx = RenderContext {
            lang: Lang::Es,
            style: Style::Chat,
            facts: &f,
            values: HashMap::new(),
        };
        assert_eq!(
            book.render(&[Topic::Intent("ship"), Topic::Intent("track")], &ctx),
            "Se envía en 2–4 días.\nEnvíeme su número de seguimiento."
        );
        ctx.values.insert("tracking_number", "RR123456789CN");
        // Spanish lacks the tracking variant: the buyer still gets Spanish
        // (`kefu check` points out the gap), not an English reply.
        assert_eq!(
            book.render(&[Topic::Intent("track")], &ctx),
            "Envíeme su número de seguimiento."
        );
        assert_eq!(
            book.variant_gaps(),
            vec![
                "replies/es.toml lacks [intent.track.with_tracking_number], which en has"
                    .to_string()
            ]
        );
        ctx.lang = Lang::En;
        ctx.style = Style::Mail;
        ctx.values.insert("buyer_name", "Ana");
        assert_eq!(
            book.render(&[Topic::Intent("ship")], &ctx),
            "Dear Ana,\n\nYour order ships within 2–4 working days.\n\nRegards,\nDemo"
        );
        ctx.lang = Lang::Ru;
        assert!(
            book.render(&[Topic::Handover], &ctx)
                .contains("A colleague will reply soon.")
        );
    }

    #[test]
    fn problems_are_reported_with_lines() {
        let broken = ES
            .replace("{handling_days} días.\"", "{handling_dayz} días.\"")
            .replace("[intent.track]\n", "[intent.trak]\n")
            .replace("closing = ", "closin = ");
        let err = book(&broken).unwrap_err().to_string();
        for expected in [
            "replies/es.toml:9:8: unknown placeholder {handling_dayz}",
            "replies/es.toml:11:9: there is no intent `trak`",
            "replies/es.toml:4:1: unknown key `closin` in [frame]",
            "replies/es.toml: missing replies: [frame] closing, [intent.track]",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in\n{err}");
        }
    }

    #[test]
    fn template_syntax() {
        assert!(
            Template::parse("a {{literal}} b")
                .unwrap()
                .placeholders()
                .next()
                .is_none()
        );
        assert!(
            Template::parse("oops {unclosed")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(
            Template::parse("x } y")
                .unwrap_err()
                .contains("without `{`")
        );
        assert!(
            Template::parse("{bad name}")
                .unwrap_err()
                .contains("not a placeholder")
        );
    }
}
