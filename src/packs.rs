//! Where intent and reply packs come from, and how their errors are reported.
//!
//! A [`PackSource`] is a set of named TOML texts: the copies built into the
//! binary (see `build.rs`) or the `intents/` and `replies/` folders of a
//! store's own directory. Loading never stops at the first problem: every
//! loader pushes [`PackError`]s that name `file:line:column` into one list, so
//! an operator fixes a broken pack in one round. The [`TomlDoc`] helpers walk a
//! parsed TOML document with its spans and turn type mistakes and unknown keys
//! into such errors.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One pack file: the name shown in errors and its text.
#[derive(Debug, Clone)]
pub struct PackFile {
    /// Path as the operator knows it, e.g. `intents/refund.toml`.
    pub name: String,
    pub text: String,
}

/// All pack files kefu reads at start.
#[derive(Debug, Clone, Default)]
pub struct PackSource {
    pub intents: Vec<PackFile>,
    pub replies: Vec<PackFile>,
    /// Shown in messages: "built-in packs" or the directory.
    pub origin: String,
}

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_packs.rs"));
}

impl PackSource {
    /// The packs compiled into the binary from this repository's `intents/`
    /// and `replies/`, so kefu runs from any directory.
    pub fn builtin() -> PackSource {
        let to_files = |files: &[(&str, &str)]| {
            files
                .iter()
                .map(|(name, text)| PackFile {
                    name: (*name).to_string(),
                    text: (*text).to_string(),
                })
                .collect()
        };
        PackSource {
            intents: to_files(builtin::INTENTS),
            replies: to_files(builtin::REPLIES),
            origin: "built-in packs".to_string(),
        }
    }

    /// Reads `DIR/intents/*.toml` and `DIR/replies/*.toml`.
    pub fn from_dir(dir: &Path) -> Result<PackSource, PackErrors> {
        let mut errors = Vec::new();
        let intents = read_toml_files(dir, "intents", &mut errors);
        let replies = read_toml_files(dir, "replies", &mut errors);
        if errors.is_empty() {
            Ok(PackSource {
                intents,
                replies,
                origin: dir.display().to_string(),
            })
        } else {
            Err(PackErrors(errors))
        }
    }
}

fn read_toml_files(dir: &Path, sub: &str, errors: &mut Vec<PackError>) -> Vec<PackFile> {
    let folder: PathBuf = dir.join(sub);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(err) => {
            errors.push(PackError::file(
                folder.display().to_string(),
                format!(
                    "cannot read the folder: {err}; --packs must name a directory holding intents/ and replies/"
                ),
            ));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(PackFile {
                name: path.display().to_string(),
                text,
            }),
            Err(err) => errors.push(PackError::file(
                path.display().to_string(),
                format!("cannot read the file: {err} (pack files must be UTF-8 text)"),
            )),
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(PackError::file(
            folder.display().to_string(),
            "no .toml files here".to_string(),
        ));
    }
    files
}

/// A problem in a pack file, with the place it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackError {
    pub file: String,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl PackError {
    pub fn file(file: String, message: String) -> PackError {
        PackError {
            file,
            line: 0,
            column: 0,
            message,
        }
    }

    pub fn at(file: &PackFile, span: Range<usize>, message: String) -> PackError {
        let (line, column) = line_col(&file.text, span.start);
        PackError {
            file: file.name.clone(),
            line,
            column,
            message,
        }
    }
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found while loading packs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackErrors(pub Vec<PackError>);

impl fmt::Display for PackErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for err in &self.0 {
            writeln!(f, "{err}")?;
        }
        write!(
            f,
            "{} problem{} in the packs; fix them and run `kefu check`",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for PackErrors {}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// A parsed TOML pack file that records problems as it is read.
pub struct TomlDoc<'a> {
    pub file: &'a PackFile,
    pub errors: &'a mut Vec<PackError>,
}

pub type Table<'i> = DeTable<'i>;
pub type Value<'i> = Spanned<DeValue<'i>>;

impl<'a> TomlDoc<'a> {
    /// Parses the file; syntax errors are recorded and what could be parsed is
    /// returned, so the rest of the file is still checked.
    pub fn parse(file: &'a PackFile, errors: &'a mut Vec<PackError>) -> (Spanned<Table<'a>>, Self) {
        let (table, syntax) = DeTable::parse_recoverable(&file.text);
        for err in syntax {
            let span = err.span().unwrap_or(0..0);
            errors.push(PackError::at(
                file,
                span,
                format!("TOML syntax: {}", err.message().trim()),
            ));
        }
        (table, TomlDoc { file, errors })
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors
            .push(PackError::at(self.file, span, message.into()));
    }

    /// Reports keys of `table` that are not in `known`.
    pub fn deny_unknown(&mut self, table: &Table<'_>, known: &[&str], what: &str) {
        for (key, _) in table.iter() {
            if !known.contains(&key.get_ref().as_ref()) {
                let message = format!(
                    "unknown key `{}` in {what}; expected one of: {}",
                    key.get_ref(),
                    known.join(", ")
                );
                self.error(key.span(), message);
            }
        }
    }

    pub fn str_field(&mut self, table: &Table<'_>, key: &str) -> Option<Spanned<String>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Spanned::new(value.span(), s.to_string())),
            other => {
                self.error(
                    value.span(),
                    format!("`{key}` must be a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub fn bool_field(&mut self, table: &Table<'_>, key: &str) -> Option<bool> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error(
                    value.span(),
                    format!("`{key}` must be true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub fn int_field(&mut self, table: &Table<'_>, key: &str) -> Option<i64> {
        let value = table.get(key)?;
        let parsed = value
            .get_ref()
            .as_integer()
            .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok());
        if parsed.is_none() {
            self.error(
                value.span(),
                format!(
                    "`{key}` must be a whole number, found {}",
                    value.get_ref().type_str()
                ),
            );
        }
        parsed
    }

    pub fn float_field(&mut self, table: &Table<'_>, key: &str) -> Option<f64> {
        let value = table.get(key)?;
        let parsed = match value.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|i| i as f64),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                value.span(),
                format!(
                    "`{key}` must be a number, found {}",
                    value.get_ref().type_str()
                ),
            );
        }
        parsed
    }

    /// A list of strings; non-string items are reported and skipped.
    pub fn str_list(&mut self, table: &Table<'_>, key: &str) -> Vec<Spanned<String>> {
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let Some(items) = value.get_ref().as_array() else {
            self.error(
                value.span(),
                format!(
                    "`{key}` must be a list of strings like [\"a\", \"b\"], found {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                other => self.error(
                    item.span(),
                    format!(
                        "every item of `{key}` must be a string, found {}",
                        other.type_str()
                    ),
                ),
            }
        }
        out
    }

    pub fn table<'t, 'i>(&mut self, value: &'t Value<'i>, what: &str) -> Option<&'t Table<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.error(
                    value.span(),
                    format!("{what} must be a table, found {}", other.type_str()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_chars() {
        let text = "a = 1\nb = \"日本\" x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let x = text.find('x').unwrap();
        assert_eq!(line_col(text, x), (2, 10));
    }

    #[test]
    fn syntax_errors_and_unknown_keys_are_all_reported() {
        let file = PackFile {
            name: "intents/x.toml".into(),
            text: "id = \"x\"\nkeywrds = 1\nbad = [\n".into(),
        };
        let mut errors = Vec::new();
        let (table, mut doc) = TomlDoc::parse(&file, &mut errors);
        doc.deny_unknown(table.get_ref(), &["id"], "an intent file");
        assert!(errors.iter().any(|e| e.message.starts_with("TOML syntax")));
        let unknown = errors
            .iter()
            .find(|e| e.message.contains("keywrds"))
            .expect("unknown key reported");
        assert_eq!((unknown.line, unknown.column), (2, 1));
    }
}
