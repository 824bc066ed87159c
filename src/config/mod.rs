//! Settings: documented defaults built into the binary, then an optional
//! `kefu.toml`, then `KEFU_…` environment variables; validated once at start.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lang::Lang;
use crate::reply::Facts;

/// The built-in settings, also the reference for every key.
pub const DEFAULTS: &str = include_str!("defaults.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A directory with the store's own `intents/` and `replies/`; empty
    /// means the packs built into the binary.
    #[serde(default)]
    pub packs: String,
    pub store: StoreConfig,
    /// Values for reply placeholders: `{store_name}`, `{handling_days}` …
    pub facts: Facts,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Language for buyers whose language cannot be told from the message.
    pub default_lang: String,
}

/// A settings problem, said so the operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the layered settings. `file`: an explicit config file (must
    /// exist); without it `kefu.toml` in the working directory is read when
    /// present.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "config file {} does not exist; copy kefu.example.toml there or leave out --config",
                        path.display()
                    )));
                }
                builder =
                    builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
            }
            None => {
                builder = builder.add_source(
                    config::File::with_name("kefu.toml")
                        .format(config::FileFormat::Toml)
                        .required(false),
                );
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix("KEFU")
                .prefix_separator("_")
                .separator("__"),
        );
        let config: Config = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.default_lang()?;
        for (name, value) in &self.facts {
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(ConfigError(format!(
                    "facts.{name}: fact names are lower-case letters, digits and _ (they are used as {{{name}}} in replies)"
                )));
            }
            if value.trim().is_empty() {
                return Err(ConfigError(format!(
                    "facts.{name} is empty; replies would show a gap. Give it a value or remove the placeholder from replies/"
                )));
            }
        }
        Ok(())
    }

    pub fn default_lang(&self) -> Result<Lang, ConfigError> {
        self.store
            .default_lang
            .parse()
            .map_err(|e| ConfigError(format!("store.default_lang: {e}")))
    }

    /// The pack directory, if the store uses its own packs.
    pub fn packs_dir(&self) -> Option<PathBuf> {
        (!self.packs.trim().is_empty()).then(|| PathBuf::from(self.packs.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.default_lang().unwrap(), Lang::En);
        assert_eq!(config.facts["handling_days"], "2–4");
        assert!(config.packs_dir().is_none());
    }

    #[test]
    fn the_example_file_documents_exactly_the_defaults() {
        let example: toml::Table = toml::from_str(include_str!("../../kefu.example.toml")).unwrap();
        let defaults: toml::Table = toml::from_str(DEFAULTS).unwrap();
        assert_eq!(
            example, defaults,
            "keep kefu.example.toml and src/config/defaults.toml in step"
        );
    }

    #[test]
    fn a_file_overrides_defaults_and_bad_values_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        std::fs::write(
            &path,
            "[store]\ndefault_lang = \"de\"\n[facts]\nstore_name = \"Laden\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.default_lang().unwrap(), Lang::De);
        assert_eq!(config.facts["store_name"], "Laden");
        assert_eq!(config.facts["transit_days"], "25–60", "defaults stay");

        std::fs::write(&path, "[store]\ndefault_lang = \"xx\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("store.default_lang: unknown language `xx`"),
            "{err}"
        );

        std::fs::write(&path, "[stor]\ndefault_lang = \"en\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("stor"), "{err}");

        let err = Config::load(Some(&dir.path().join("nope.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
