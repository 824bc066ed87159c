//! Settings: documented defaults built into the binary, then an optional
//! `kefu.toml`, then `KEFU_…` environment variables; validated once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::lang::Lang;
use crate::notify::Event;
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
    /// When a waiting ticket is announced again, then to a supervisor.
    pub sla: SlaConfig,
    /// Where notices about tickets go.
    pub notify: NotifyConfig,
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
    #[serde(deserialize_with = "human_duration::deserialize")]
    pub reopen_within: Duration,
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
    /// How long the platform gives the store to answer a buyer (tickets
    /// track it in `reply_due_at`); "24h" unless set.
    #[serde(
        default = "default_reply_deadline",
        deserialize_with = "human_duration::deserialize"
    )]
    pub reply_deadline: Duration,
}

fn yes() -> bool {
    true
}

fn default_poll_ms() -> u64 {
    1000
}

fn default_reply_deadline() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// Durations written for people: "90s", "10m", "2h", "1h 30m" (humantime).
mod human_duration {
    use std::time::Duration;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            D::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"90s\", \"10m\", \"2h\" or \"1h 30m\""
            ))
        })
    }
}

/// SLA timers for tickets nobody has claimed, and the reply-deadline
/// warning. All durations count from when the ticket was (re)opened, except
/// `deadline_warning`, which counts back from the platform's deadline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    /// Still unclaimed this long after opening: the team is told again.
    #[serde(deserialize_with = "human_duration::deserialize")]
    pub remind_after: Duration,
    /// Still unclaimed this long after opening: a supervisor is told.
    #[serde(deserialize_with = "human_duration::deserialize")]
    pub supervisor_after: Duration,
    /// Warn this long before a ticket's reply deadline when no person has
    /// answered yet ("0s": when it passes).
    #[serde(deserialize_with = "human_duration::deserialize")]
    pub deadline_warning: Duration,
}

/// Notices to the team's chat about tickets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The agent console as the team opens it (e.g.
    /// `https://kefu.example.com/console`); notices link to
    /// `<console_url>#ticket=<id>`. Empty: notices carry no link.
    pub console_url: String,
    /// Where notices go, by name (the name appears in logs and metrics).
    #[serde(default)]
    pub targets: BTreeMap<String, NotifyTarget>,
}

/// The body format a notification target expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum TargetKind {
    /// kefu's own JSON, signed like webhook callbacks when `secret` is set.
    Generic,
    /// A Slack incoming webhook.
    Slack,
    /// A Feishu (or Lark) custom bot.
    Feishu,
    /// A DingTalk custom robot.
    Dingtalk,
    /// A WeCom (企业微信) group robot.
    Wecom,
}

impl TryFrom<String> for TargetKind {
    type Error = String;

    fn try_from(kind: String) -> Result<TargetKind, String> {
        Ok(match kind.as_str() {
            "generic" => TargetKind::Generic,
            "slack" => TargetKind::Slack,
            "feishu" | "lark" => TargetKind::Feishu,
            "dingtalk" => TargetKind::Dingtalk,
            "wecom" => TargetKind::Wecom,
            _ => {
                return Err(format!(
                    "unknown notify target kind {kind:?}; use generic, slack, feishu (or lark), dingtalk or wecom"
                ));
            }
        })
    }
}

/// One `[notify.targets.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    pub kind: TargetKind,
    /// The webhook address, as the chat tool shows it.
    pub url: String,
    /// generic: HMAC key for `X-Kefu-Signature`; feishu, dingtalk: the
    /// bot's signing secret. Empty: unsigned.
    #[serde(default)]
    pub secret: String,
    /// Which notices this target receives.
    #[serde(default = "default_events")]
    pub events: Vec<Event>,
    /// dingtalk, wecom: who is @-mentioned: "all" or mobile numbers.
    #[serde(default)]
    pub mention: Vec<String>,
}

/// Supervisor notices go to a target that asks for them: a team channel
/// should not page the supervisor about every ticket.
fn default_events() -> Vec<Event> {
    vec![Event::Escalation, Event::SlaReminder, Event::ReplyDeadline]
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
        for (name, channel) in &self.channels {
            channel.validate(name)?;
        }
        crate::agents::check_config(&self.agents).map_err(ConfigError)?;
        self.sla.validate(&self.channels)?;
        self.notify.validate()?;
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
    /// How long the platform gives the store to answer a buyer.
    pub fn reply_deadline(&self) -> Duration {
        self.reply_deadline
    }

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
        if self.reply_deadline.is_zero() {
            return Err(ConfigError(format!(
                "channels.{name}.reply_deadline must be longer than 0; leave it out for 24h"
            )));
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

impl SlaConfig {
    fn validate(&self, channels: &BTreeMap<String, ChannelConfig>) -> Result<(), ConfigError> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if self.remind_after.is_zero() {
            return Err(ConfigError(
                "sla.remind_after must be longer than 0 (e.g. \"10m\")".into(),
            ));
        }
        if self.supervisor_after <= self.remind_after {
            return Err(ConfigError(format!(
                "sla.supervisor_after ({}) must be longer than sla.remind_after ({}): the supervisor is told after the reminder",
                show(self.supervisor_after),
                show(self.remind_after)
            )));
        }
        for (name, channel) in channels.iter().filter(|(_, c)| c.enabled) {
            if self.deadline_warning >= channel.reply_deadline {
                return Err(ConfigError(format!(
                    "sla.deadline_warning ({}) is not shorter than channels.{name}.reply_deadline ({}): the warning would go out the moment a ticket opens. Shorten sla.deadline_warning",
                    show(self.deadline_warning),
                    show(channel.reply_deadline)
                )));
            }
        }
        Ok(())
    }
}

impl NotifyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.console_url.trim();
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "notify.console_url {url:?} is not an http:// or https:// URL; write the console's address as the team opens it, e.g. https://kefu.example.com/console"
            )));
        }
        for (name, target) in &self.targets {
            target.validate(name)?;
        }
        Ok(())
    }

    /// The console link for a ticket, if a console URL is set.
    pub fn ticket_link(&self, ticket_id: i64) -> Option<String> {
        let url = self.console_url.trim();
        (!url.is_empty()).then(|| format!("{url}#ticket={ticket_id}"))
    }
}

impl NotifyTarget {
    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let key = format!("notify.targets.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(ConfigError(format!(
                "{key}: target names are lower-case letters, digits, _ and - (they appear in idempotency keys and metrics)"
            )));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "{key}.url {:?} is not an http:// or https:// URL; paste the webhook address the chat tool shows",
                self.url
            )));
        }
        if self.events.is_empty() {
            return Err(ConfigError(format!(
                "{key}.events is empty: list what it receives (escalation, sla_reminder, sla_supervisor, reply_deadline) or remove the target"
            )));
        }
        let signed = matches!(
            self.kind,
            TargetKind::Generic | TargetKind::Feishu | TargetKind::Dingtalk
        );
        if !self.secret.is_empty() && !signed {
            return Err(ConfigError(format!(
                "{key}.secret: {:?} webhooks are not signed (the URL is the secret); remove `secret`",
                self.kind
            )));
        }
        if !self.mention.is_empty() {
            if !matches!(self.kind, TargetKind::Dingtalk | TargetKind::Wecom) {
                return Err(ConfigError(format!(
                    "{key}.mention works for dingtalk and wecom targets only; remove it"
                )));
            }
            for who in &self.mention {
                let digits = who.strip_prefix('+').unwrap_or(who);
                let mobile =
                    (5..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
                if who != "all" && !mobile {
                    return Err(ConfigError(format!(
                        "{key}.mention: {who:?} is neither \"all\" nor a mobile number (digits, optionally with a leading +)"
                    )));
                }
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

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path))
    }

    #[test]
    fn sla_and_notify_targets_load() {
        let config = load_str(
            "[sla]\nremind_after = \"5m\"\n\
             [channels.wa]\nkind = \"webhook\"\nreply_deadline = \"3h 30m\"\n\
             [notify]\nconsole_url = \"https://kefu.example.com/console\"\n\
             [notify.targets.team]\nkind = \"lark\"\nurl = \"https://open.larksuite.com/open-apis/bot/v2/hook/x\"\nsecret = \"s\"\n\
             [notify.targets.boss]\nkind = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=x\"\nevents = [\"sla_supervisor\"]\nmention = [\"all\", \"+8613800000000\"]\n",
        )
        .unwrap();
        assert_eq!(config.sla.remind_after, Duration::from_secs(300));
        assert_eq!(
            config.sla.supervisor_after,
            Duration::from_secs(1800),
            "default stays"
        );
        assert_eq!(config.sla.deadline_warning, Duration::from_secs(7200));
        assert_eq!(
            config.channels["wa"].reply_deadline(),
            Duration::from_secs(12_600)
        );
        assert_eq!(
            config.channels["demo"].reply_deadline(),
            Duration::from_secs(86_400),
            "24h unless set"
        );
        let team = &config.notify.targets["team"];
        assert_eq!(team.kind, TargetKind::Feishu);
        assert_eq!(
            team.events,
            [Event::Escalation, Event::SlaReminder, Event::ReplyDeadline],
            "supervisor notices only where asked for"
        );
        assert_eq!(config.notify.targets["boss"].events, [Event::SlaSupervisor]);
        assert_eq!(
            config.notify.ticket_link(7).as_deref(),
            Some("https://kefu.example.com/console#ticket=7")
        );
        let defaults = Config::load(None).unwrap();
        assert!(defaults.notify.targets.is_empty(), "no targets by default");
        assert_eq!(defaults.notify.ticket_link(7), None);
    }

    #[test]
    fn bad_sla_and_notify_settings_are_explained() {
        let target = "[notify.targets.t]\nurl = \"https://example.com/hook\"\n";
        let cases = [
            (
                "[sla]\nremind_after = \"10 parsecs\"\n",
                "not a duration (unknown time unit \"parsecs\"",
            ),
            (
                "[sla]\nremind_after = \"10 parsecs\"\n",
                "write e.g. \"90s\", \"10m\", \"2h\" or \"1h 30m\" for key `sla.remind_after`",
            ),
            (
                "[sla]\nremind_after = \"0s\"\n",
                "sla.remind_after must be longer than 0",
            ),
            (
                "[sla]\nsupervisor_after = \"5m\"\n",
                "sla.supervisor_after (5m) must be longer than sla.remind_after (10m)",
            ),
            (
                "[channels.fast]\nkind = \"webhook\"\nreply_deadline = \"1h\"\n",
                "sla.deadline_warning (2h) is not shorter than channels.fast.reply_deadline (1h)",
            ),
            (
                "[channels.x]\nkind = \"webhook\"\nreply_deadline = \"0s\"\n",
                "channels.x.reply_deadline must be longer than 0",
            ),
            (
                "[notify]\nconsole_url = \"kefu.example.com\"\n",
                "notify.console_url",
            ),
            (
                "[notify.targets.t]\nkind = \"teams\"\nurl = \"https://x\"\n",
                "unknown notify target kind \"teams\"; use generic, slack",
            ),
            (
                "[notify.targets.T]\nkind = \"slack\"\nurl = \"https://x\"\n",
                "notify.targets.T: target names are lower-case",
            ),
            (
                "[notify.targets.t]\nkind = \"slack\"\nurl = \"hooks.slack.com\"\n",
                "notify.targets.t.url \"hooks.slack.com\" is not an http:// or https:// URL",
            ),
            (
                &format!("{target}kind = \"slack\"\nevents = []\n"),
                "notify.targets.t.events is empty",
            ),
            (
                &format!("{target}kind = \"slack\"\nevents = [\"escalated\"]\n"),
                "unknown notice event \"escalated\"; use escalation, sla_reminder",
            ),
            (
                &format!("{target}kind = \"wecom\"\nsecret = \"s\"\n"),
                "notify.targets.t.secret: Wecom webhooks are not signed",
            ),
            (
                &format!("{target}kind = \"slack\"\nmention = [\"all\"]\n"),
                "mention works for dingtalk and wecom targets only",
            ),
            (
                &format!("{target}kind = \"dingtalk\"\nmention = [\"bob\"]\n"),
                "notify.targets.t.mention: \"bob\" is neither \"all\" nor a mobile number",
            ),
        ];
        for (toml, expect) in cases {
            let err = load_str(toml).unwrap_err().to_string();
            assert!(err.contains(expect), "{toml}\n=> {err}");
        }
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
