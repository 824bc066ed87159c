//! Settings: documented defaults built into the binary, then an optional
//! `kefu.toml`, then `KEFU_…` environment variables; validated once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::lang::Lang;
use crate::reply::{Facts, Style};

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
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub pipeline: PipelineConfig,
    pub outbox: OutboxConfig,
    /// Conversations with people: reopening and reply deadlines.
    pub handover: HandoverConfig,
    /// Where messages come from and replies go, by name (the `{channel}`
    /// of `/v1/channels/{channel}/messages`).
    pub channels: BTreeMap<String, ChannelConfig>,
    /// People who answer escalated conversations, by id, besides those
    /// created with `kefu agent add` (kept in the database).
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
}

/// `[agents.<id>]`: an agent defined in the settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The name shown to colleagues; empty: the id.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: crate::agents::Role,
    /// argon2id PHC string of the agent's token (`kefu agent hash`).
    pub token_hash: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// Holds the SQLite database when `database.url` is empty.
    pub data_dir: PathBuf,
    /// Larger request bodies get 413.
    pub body_limit_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/kefu.db` or `postgres://user@host/db`; empty: SQLite
    /// in `server.data_dir`.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Lines a buyer sends within this window get one answer.
    pub coalesce_ms: u64,
    /// Accepted messages waiting for a worker; when full, webhooks get 503.
    pub queue_capacity: usize,
    /// Messages waiting in one conversation's worker.
    pub conversation_queue: usize,
    /// A conversation's worker stops after this long without messages.
    pub idle_worker_secs: u64,
    /// More bot replies than this in a minute (a bot talking to a bot?) hand
    /// the conversation to a person.
    pub max_bot_replies_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// After this many failed deliveries the conversation goes to a person.
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long a delivery in progress is reserved before another worker may
    /// try it again.
    pub lease_ms: u64,
    /// Deliveries in flight at once (different conversations).
    pub concurrency: usize,
    /// How often the outbox is checked when nothing wakes it.
    pub poll_ms: u64,
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverConfig {
    /// A buyer writing again this soon after a ticket was resolved reopens it.
    pub reopen_within: String,
    /// How long people have to answer a buyer (unless the channel says).
    pub reply_deadline: String,
}

impl HandoverConfig {
    pub fn reopen_within(&self) -> Duration {
        parse_duration("handover.reopen_within", &self.reopen_within).unwrap_or_default()
    }

    pub fn reply_deadline(&self) -> Duration {
        parse_duration("handover.reply_deadline", &self.reply_deadline).unwrap_or_default()
    }
}

/// A human-friendly duration setting ("30m", "24h", "2days").
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError(format!(
            "{key} = {value:?}: {e}; write a duration like \"30m\", \"24h\" or \"2days\""
        ))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Messages are POSTed to kefu; replies are POSTed to `callback_url`.
    Webhook,
    /// Telegram Bot API: long polling getUpdates, sendMessage.
    Telegram,
    /// WhatsApp Business Cloud API: Meta's webhook in, Graph API out.
    Whatsapp,
    /// A marketplace without webhooks: kefu polls `GET {base_url}/messages`.
    Marketplace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub kind: ChannelKind,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Webhook: HMAC-SHA256 key for inbound signatures and signed callbacks.
    /// WhatsApp: the app secret behind `X-Hub-Signature-256`.
    #[serde(default)]
    pub secret: String,
    /// Webhook: where replies are POSTed; empty: replies are only logged.
    #[serde(default)]
    pub callback_url: String,
    /// Telegram bot token, WhatsApp access token or marketplace API token.
    #[serde(default)]
    pub token: String,
    /// API base URL (Telegram, WhatsApp Graph API, marketplace); Telegram and
    /// WhatsApp default to the real APIs.
    #[serde(default)]
    pub base_url: String,
    /// WhatsApp: the token Meta echoes in the verification handshake.
    #[serde(default)]
    pub verify_token: String,
    /// WhatsApp: the business phone number id replies are sent from.
    #[serde(default)]
    pub phone_number_id: String,
    /// The store's own sender id on this channel: messages from it are
    /// kefu's echoes and are never answered.
    #[serde(default)]
    pub self_id: String,
    /// Reply style: `chat` or `mail` (station mail, e-mail).
    #[serde(default)]
    pub style: Style,
    /// Pollers: pause between polls that found nothing.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn yes() -> bool {
    true
}

fn default_poll_ms() -> u64 {
    1000
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
        // Only settings-shaped variables (KEFU_SECTION__KEY, KEFU_PACKS):
        // KEFU_LOG, KEFU_TEST_DATABASE_URL and friends are not settings.
        let settings_vars: config::Map<String, String> = std::env::vars()
            .filter(|(name, _)| {
                name.strip_prefix("KEFU_")
                    .is_some_and(|rest| rest.contains("__") || rest == "PACKS")
            })
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("KEFU")
                .prefix_separator("_")
                .separator("__")
                .source(Some(settings_vars)),
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
        self.listen_addr()?;
        let positive = [
            (
                "server.body_limit_bytes",
                self.server.body_limit_bytes as u64,
            ),
            (
                "pipeline.queue_capacity",
                self.pipeline.queue_capacity as u64,
            ),
            (
                "pipeline.conversation_queue",
                self.pipeline.conversation_queue as u64,
            ),
            (
                "pipeline.max_bot_replies_per_minute",
                self.pipeline.max_bot_replies_per_minute as u64,
            ),
            ("outbox.max_attempts", self.outbox.max_attempts as u64),
            ("outbox.concurrency", self.outbox.concurrency as u64),
            ("outbox.poll_ms", self.outbox.poll_ms),
            ("outbox.lease_ms", self.outbox.lease_ms),
            ("outbox.request_timeout_ms", self.outbox.request_timeout_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be greater than 0")));
            }
        }
        if self.outbox.retry_base_ms > self.outbox.retry_max_ms {
            return Err(ConfigError(
                "outbox.retry_base_ms is larger than outbox.retry_max_ms; the first retry cannot wait longer than the longest".into(),
            ));
        }
        parse_duration("handover.reopen_within", &self.handover.reopen_within)?;
        parse_duration("handover.reply_deadline", &self.handover.reply_deadline)?;
        for (name, channel) in &self.channels {
            channel.validate(name)?;
        }
        crate::agents::check_config(&self.agents).map_err(ConfigError)?;
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

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|e| {
            ConfigError(format!(
                "server.listen = {:?}: {e}; write an address and port like 127.0.0.1:8080",
                self.server.listen
            ))
        })
    }

    /// The database to open: `database.url`, else SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.trim().is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("kefu.db").display()
            )
        } else {
            self.database.url.trim().to_string()
        }
    }

    pub fn coalesce_window(&self) -> Duration {
        Duration::from_millis(self.pipeline.coalesce_ms)
    }

    /// The pack directory, if the store uses its own packs.
    pub fn packs_dir(&self) -> Option<PathBuf> {
        (!self.packs.trim().is_empty()).then(|| PathBuf::from(self.packs.trim()))
    }
}

impl ChannelConfig {
    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(ConfigError(format!(
                "channels.{name}: channel names are lower-case letters, digits, _ and - (they appear in URLs)"
            )));
        }
        if !self.enabled {
            return Ok(());
        }
        if self.poll_ms == 0 {
            return Err(ConfigError(format!(
                "channels.{name}.poll_ms must be greater than 0"
            )));
        }
        let need = |field: &str, value: &str| {
            if value.trim().is_empty() {
                Err(ConfigError(format!(
                    "channels.{name}: a {:?} channel needs `{field}`",
                    self.kind
                )))
            } else {
                Ok(())
            }
        };
        match self.kind {
            ChannelKind::Webhook => {}
            ChannelKind::Telegram => need("token", &self.token)?,
            ChannelKind::Whatsapp => {
                need("token", &self.token)?;
                need("secret", &self.secret)?;
                need("verify_token", &self.verify_token)?;
                need("phone_number_id", &self.phone_number_id)?;
            }
            ChannelKind::Marketplace => need("base_url", &self.base_url)?,
        }
        for url in [&self.callback_url, &self.base_url] {
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "channels.{name}: {url:?} is not an http:// or https:// URL"
                )));
            }
        }
        Ok(())
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
