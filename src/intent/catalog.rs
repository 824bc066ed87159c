//! The intent catalog: the `intents/*.toml` packs read and validated (pure).
//!
//! See `intents/README.md` for the file format. Every problem in every file is
//! collected with its `file:line:column` before kefu gives up, so a store
//! operator fixes a broken pack in one round.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use toml::de::DeValue;

use crate::lang::Lang;
use crate::normalize::normalize;
use crate::packs::{PackError, PackErrors, PackFile, TomlDoc};

/// Weight of a keyword: one is enough to detect its intent.
pub const KEYWORD_WEIGHT: f32 = 1.0;
/// Weight of a hint: two hints, or a hint and a keyword, are needed.
pub const HINT_WEIGHT: f32 = 0.5;
/// Score at which an intent counts as detected.
pub const DETECTION_THRESHOLD: f32 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhraseKind {
    Keyword,
    Hint,
    Exclude,
}

impl PhraseKind {
    pub fn weight(self) -> f32 {
        match self {
            PhraseKind::Keyword => KEYWORD_WEIGHT,
            PhraseKind::Hint => HINT_WEIGHT,
            PhraseKind::Exclude => 0.0,
        }
    }
}

/// Where a phrase or pattern was written, for `kefu check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

/// One keyword, hint or exclusion as the pack wrote it.
#[derive(Debug, Clone)]
pub struct Phrase {
    pub kind: PhraseKind,
    pub lang: Lang,
    /// As written in the pack, `*` included; shown in explanations.
    pub written: String,
    /// Normalized, without the `*` markers.
    pub normalized: String,
    /// `*` at the start: may begin inside a longer word.
    pub open_start: bool,
    /// `*` at the end: may end inside a longer word (inflections).
    pub open_end: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct PatternDef {
    pub regex: String,
    pub weight: f32,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct IntentDef {
    pub id: String,
    pub description: String,
    /// Breaks ties between intents with equal scores; higher wins.
    pub priority: i32,
    /// Always hand this intent to a person.
    pub escalate: bool,
    /// Small talk (greetings, thanks): answered only when the message asks
    /// nothing else.
    pub social: bool,
    pub phrases: Vec<Phrase>,
    pub patterns: Vec<PatternDef>,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub intents: Vec<IntentDef>,
}

impl Catalog {
    pub fn get(&self, id: &str) -> Option<&IntentDef> {
        self.intents.iter().find(|i| i.id == id)
    }

    /// Reads every intent file; returns all problems found in all of them.
    pub fn load(files: &[PackFile]) -> Result<Catalog, PackErrors> {
        let mut errors = Vec::new();
        let mut intents: Vec<IntentDef> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for file in files {
            if let Some(intent) = load_file(file, &mut errors) {
                if !seen.insert(intent.id.clone()) {
                    errors.push(PackError::file(
                        file.name.clone(),
                        format!(
                            "intent `{}` is defined twice; keep one file per intent",
                            intent.id
                        ),
                    ));
                    continue;
                }
                intents.push(intent);
            }
        }
        if intents.is_empty() && errors.is_empty() {
            errors.push(PackError::file(
                "intents/".to_string(),
                "no intent files; kefu needs at least one intents/<id>.toml".to_string(),
            ));
        }
        if errors.is_empty() {
            intents.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(Catalog { intents })
        } else {
            Err(PackErrors(errors))
        }
    }
}

const INTENT_KEYS: &[&str] = &[
    "id",
    "description",
    "priority",
    "escalate",
    "social",
    "patterns",
    "en",
    "zh",
    "es",
    "ru",
    "fr",
    "pt",
    "de",
];
const LANG_KEYS: &[&str] = &["keywords", "hints", "exclude"];

fn load_file(file: &PackFile, errors: &mut Vec<PackError>) -> Option<IntentDef> {
    let before = errors.len();
    let stem = Path::new(&file.name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (root, mut doc) = TomlDoc::parse(file, errors);
    let root = root.get_ref();
    doc.deny_unknown(root, INTENT_KEYS, "an intent file");

    let id = match doc.str_field(root, "id") {
        Some(id) if id.get_ref() != &stem => {
            doc.error(
                id.span(),
                format!(
                    "id `{}` does not match the file name; rename the file to `{}.toml` or set id = \"{stem}\"",
                    id.get_ref(),
                    id.get_ref()
                ),
            );
            stem.clone()
        }
        _ => stem.clone(),
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        doc.error(
            0..0,
            format!("intent id `{id}` must be lower-case letters, digits and _ (the file name is the id)"),
        );
    }
    let description = doc
        .str_field(root, "description")
        .map(|s| s.into_inner())
        .unwrap_or_default();
    let priority = match doc.int_field(root, "priority") {
        Some(p) if !(0..=1000).contains(&p) => {
            let span = root.get("priority").map(|v| v.span()).unwrap_or(0..0);
            doc.error(span, format!("priority {p} is out of range; use 0 to 1000"));
            0
        }
        Some(p) => p as i32,
        None => 50,
    };
    let escalate = doc.bool_field(root, "escalate").unwrap_or(false);
    let social = doc.bool_field(root, "social").unwrap_or(false);

    let mut phrases = Vec::new();
    for lang in Lang::ALL {
        let Some(value) = root.get(lang.code()) else {
            continue;
        };
        let Some(table) = doc.table(value, &format!("[{}]", lang.code())) else {
            continue;
        };
        doc.deny_unknown(table, LANG_KEYS, &format!("[{}]", lang.code()));
        for (key, kind) in [
            ("keywords", PhraseKind::Keyword),
            ("hints", PhraseKind::Hint),
            ("exclude", PhraseKind::Exclude),
        ] {
            for written in doc.str_list(table, key) {
                if let Some(phrase) =
                    parse_phrase(&mut doc, kind, lang, written.get_ref(), written.span())
                {
                    phrases.push(phrase);
                }
            }
        }
    }

    let mut patterns = Vec::new();
    if let Some(value) = root.get("patterns") {
        match value.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    let Some(table) = doc.table(item, "each [[patterns]] entry") else {
                        continue;
                    };
                    doc.deny_unknown(table, &["regex", "weight"], "[[patterns]]");
                    let weight = doc.float_field(table, "weight").unwrap_or(1.0) as f32;
                    if !(weight > 0.0 && weight <= 10.0) {
                        doc.error(item.span(), format!("pattern weight {weight} is out of range; use a number above 0 and at most 10"));
                    }
                    match doc.str_field(table, "regex") {
                        Some(regex) => {
                            if let Err(err) = regex::Regex::new(regex.get_ref()) {
                                let message = format!(
                                    "invalid regular expression: {}",
                                    err.to_string().lines().last().unwrap_or_default().trim()
                                );
                                doc.error(regex.span(), message);
                            }
                            let line = line_of(file, regex.span());
                            patterns.push(PatternDef {
                                regex: regex.into_inner(),
                                weight,
                                origin: Origin {
                                    file: file.name.clone(),
                                    line,
                                },
                            });
                        }
                        None => doc.error(item.span(), "a [[patterns]] entry needs regex = '…'"),
                    }
                }
            }
            other => doc.error(
                value.span(),
                format!(
                    "`patterns` must be a list of [[patterns]] tables, found {}",
                    other.type_str()
                ),
            ),
        }
    }

    let fires = phrases.iter().any(|p| p.kind != PhraseKind::Exclude) || !patterns.is_empty();
    if !fires && errors.len() == before {
        errors.push(PackError::file(
            file.name.clone(),
            "this intent has no keywords, hints or patterns, so it can never be detected; add keywords under [en] (or another language)".to_string(),
        ));
    }
    errors[before..].sort_by_key(|e| (e.line, e.column));
    if errors.len() > before {
        return None;
    }
    Some(IntentDef {
        id,
        description,
        priority,
        escalate,
        social,
        phrases,
        patterns,
    })
}

fn line_of(file: &PackFile, span: Range<usize>) -> usize {
    PackError::at(file, span, String::new()).line
}

fn parse_phrase(
    doc: &mut TomlDoc<'_>,
    kind: PhraseKind,
    lang: Lang,
    written: &str,
    span: Range<usize>,
) -> Option<Phrase> {
    let trimmed = written.trim();
    let open_start = trimmed.starts_with('*');
    let open_end = trimmed.ends_with('*') && trimmed.len() > 1;
    let core = trimmed.trim_start_matches('*').trim_end_matches('*');
    if core.contains('*') {
        doc.error(
            span,
            format!("`{written}`: `*` may only stand at the start or the end of a keyword"),
        );
        return None;
    }
    let normalized = normalize(core);
    if normalized.is_empty() {
        doc.error(
            span,
            format!("`{written}` has no letters or digits, so it can never match; remove it"),
        );
        return None;
    }
    if (open_start || open_end) && normalized.chars().count() < 3 {
        doc.error(
            span,
            format!("`{written}` is too short to use `*`: it would fire inside unrelated words; write the whole word"),
        );
        return None;
    }
    let file = doc.file;
    Some(Phrase {
        kind,
        lang,
        written: trimmed.to_string(),
        normalized,
        open_start,
        open_end,
        origin: Origin {
            file: file.name.clone(),
            line: line_of(file, span),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PackFile {
        PackFile {
            name: name.to_string(),
            text: text.to_string(),
        }
    }

    #[test]
    fn a_good_file_loads() {
        let catalog = Catalog::load(&[file(
            "intents/refund.toml",
            r#"
id = "refund"
priority = 60
[en]
keywords = ["refund", "money back"]
hints = ["Refund*"]
[zh]
keywords = ["退款"]
[[patterns]]
regex = 'give me my money'
"#,
        )])
        .unwrap();
        let refund = catalog.get("refund").unwrap();
        assert_eq!(refund.priority, 60);
        assert_eq!(refund.phrases.len(), 4);
        let stem = &refund.phrases[2];
        assert!(stem.open_end && !stem.open_start);
        assert_eq!(stem.normalized, "refund");
        assert_eq!(refund.patterns[0].weight, 1.0);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let err = Catalog::load(&[
            file(
                "intents/refund.toml",
                "id = \"refnd\"\npriority = \"high\"\n[en]\nkeywords = [\"ok\", \"?!\", 3]\nhint = [\"x\"]\n[[patterns]]\nregex = '(unclosed'\n",
            ),
            file("intents/empty.toml", "description = \"nothing\"\n"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for expected in [
            "intents/refund.toml:1:6: id `refnd` does not match the file name",
            "intents/refund.toml:2:12: `priority` must be a whole number",
            "intents/refund.toml:4:19: `?!` has no letters or digits",
            "intents/refund.toml:4:25: every item of `keywords` must be a string",
            "intents/refund.toml:5:1: unknown key `hint` in [en]",
            "intents/refund.toml:7:9: invalid regular expression",
            "intents/empty.toml: this intent has no keywords",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn star_rules() {
        let err = Catalog::load(&[file(
            "intents/x.toml",
            "[en]\nkeywords = [\"re*fund\", \"ab*\"]\n",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("may only stand at the start or the end"),
            "{err}"
        );
        assert!(err.contains("too short to use `*`"), "{err}");
    }
}
