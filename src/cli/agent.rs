//! `kefu agent …`: add, list, remove agents, issue new tokens, hash a token
//! for kefu.toml. Reads the same settings as `kefu serve` (`--config`,
//! ./kefu.toml, `KEFU_…`) and so the same database.
//!
//! A token is printed once, when it is made; kefu keeps only its argon2id
//! hash. Exit codes: 0 done, 1 refused (unknown or duplicate id, an agent
//! defined in kefu.toml, a malformed token), 2 kefu could not start (bad
//! settings, unreachable database).

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::agents::{AgentRecord, Agents, Role, token};
use crate::config::Config;
use crate::model::now_ms;
use crate::store::{AgentRow, Store};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Add an agent to the database and print their token (shown only this once).
    Add {
        /// Login name: lower-case letters, digits, - and _.
        id: String,
        /// The name colleagues see (default: the id).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Role::Agent)]
        role: Role,
        /// Write nothing; print the token and an [agents.<id>] section for kefu.toml instead.
        #[arg(long)]
        print_config: bool,
    },
    /// List the agents of kefu.toml and of the database.
    List,
    /// Remove a database agent: their token stops working at once (the id stays in the history).
    Remove { id: String },
    /// Issue a new token for an agent; the old one stops working.
    Token {
        id: String,
        /// Also let a removed agent back in.
        #[arg(long)]
        enable: bool,
    },
    /// Read a token on stdin and print its argon2id hash, for `token_hash` in kefu.toml.
    Hash,
}

/// A refusal (exit 1) or a failure to start (exit 2), with what to do.
enum Failure {
    Refused(String),
    CannotStart(String),
}

pub fn run(config_file: Option<&Path>, command: AgentCommand) -> ExitCode {
    match execute(config_file, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            eprintln!("kefu: {message}");
            ExitCode::from(1)
        }
        Err(Failure::CannotStart(message)) => {
            eprintln!("kefu: {message}");
            ExitCode::from(2)
        }
    }
}

fn execute(config_file: Option<&Path>, command: AgentCommand) -> Result<(), Failure> {
    let config = Config::load(config_file).map_err(|e| Failure::CannotStart(e.to_string()))?;
    match command {
        AgentCommand::Hash => hash(),
        AgentCommand::Add {
            id,
            name,
            role,
            print_config: true,
        } => {
            token::check_id(&id).map_err(Failure::Refused)?;
            if config.agents.contains_key(&id) {
                return Err(Failure::Refused(format!(
                    "kefu.toml already has [agents.{id}]; `kefu agent token {id}` makes a new token for it"
                )));
            }
            let name = display_name(&id, name.as_deref());
            let token = token::generate(&id);
            let hash = token::hash(&token);
            print_config_section(&id, Some((&name, role)), &token, &hash)
        }
        command => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    Failure::CannotStart(format!("cannot start the async runtime: {e}"))
                })?;
            runtime.block_on(with_store(&config, command))
        }
    }
}

async fn with_store(config: &Config, command: AgentCommand) -> Result<(), Failure> {
    let url = config.database_url();
    let store = Store::open(&url)
        .await
        .map_err(|e| Failure::CannotStart(format!("cannot open the database: {e}")))?;
    let agents = Agents::new(config, store.clone());
    let result = match command {
        AgentCommand::Add { id, name, role, .. } => add(&agents, &store, &id, name, role).await,
        AgentCommand::List => list(&agents).await,
        AgentCommand::Remove { id } => remove(&agents, &store, &id).await,
        AgentCommand::Token { id, enable } => new_token(&agents, &store, &id, enable).await,
        AgentCommand::Hash => unreachable!("needs no database"),
    };
    store.close().await;
    result
}

fn db_failure(e: impl std::fmt::Display) -> Failure {
    Failure::CannotStart(format!("database: {e}"))
}

fn output(e: io::Error) -> Failure {
    Failure::CannotStart(format!("cannot write the output: {e}"))
}

fn display_name(id: &str, name: Option<&str>) -> String {
    match name.map(str::trim) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => id.to_string(),
    }
}

async fn add(
    agents: &Agents,
    store: &Store,
    id: &str,
    name: Option<String>,
    role: Role,
) -> Result<(), Failure> {
    token::check_id(id).map_err(Failure::Refused)?;
    if agents.is_configured(id) {
        return Err(Failure::Refused(format!(
            "agent `{id}` is already defined in kefu.toml ([agents.{id}]); pick another id, or `kefu agent token {id}` for a new token"
        )));
    }
    let token = token::generate(id);
    let row = AgentRow {
        id: id.to_string(),
        display_name: display_name(id, name.as_deref()),
        role: role.as_str().to_string(),
        token_hash: token::hash(&token),
        created_at: now_ms(),
        disabled_at: None,
    };
    if !store.add_agent(&row).await.map_err(db_failure)? {
        let existing = store.agent(id).await.map_err(db_failure)?;
        return Err(Failure::Refused(match existing {
            Some(a) if a.disabled_at.is_some() => format!(
                "agent `{id}` exists and was removed; ids are not reused (the history names them). Pick another id, or let them back in with `kefu agent token {id} --enable`"
            ),
            _ => format!(
                "agent `{id}` already exists; pick another id, or `kefu agent token {id}` for a new token"
            ),
        }));
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "Added agent {id} ({}, {role}). Their token, shown only this once (kefu keeps only a hash of it):\n\n    {token}\n\nGive it to them to send as `Authorization: Bearer <token>`. A lost token cannot be recovered: `kefu agent token {id}` issues a new one.",
        row.display_name
    )
    .map_err(output)
}

async fn list(agents: &Agents) -> Result<(), Failure> {
    let all = agents.list().await.map_err(db_failure)?;
    let mut out = io::stdout().lock();
    if all.is_empty() {
        return writeln!(
            out,
            "No agents yet. Add one with `kefu agent add <id> --name \"Full Name\" [--role supervisor]`."
        )
        .map_err(output);
    }
    let rows: Vec<[String; 5]> = all
        .iter()
        .map(|r: &AgentRecord| {
            let status = match r.disabled_at {
                None => "active".to_string(),
                Some(at) => format!("removed {}", rfc3339(at)),
            };
            [
                r.agent.id.clone(),
                r.agent.name.clone(),
                r.agent.role.to_string(),
                r.source.as_str().to_string(),
                status,
            ]
        })
        .collect();
    let header = ["ID", "NAME", "ROLE", "SOURCE", "STATUS"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{line}").map_err(output)?;
    }
    let conflicts = agents.conflicts().await.map_err(db_failure)?;
    if !conflicts.is_empty() {
        writeln!(
            out,
            "\nIn both kefu.toml and the database: {}. `kefu serve` refuses to start until one goes: delete the [agents.<id>] section, or `kefu agent remove <id>` the database one.",
            conflicts.join(", ")
        )
        .map_err(output)?;
    }
    Ok(())
}

async fn remove(agents: &Agents, store: &Store, id: &str) -> Result<(), Failure> {
    // A database agent is removed even when kefu.toml has the same id:
    // that is how such a conflict is repaired.
    if store
        .disable_agent(id, now_ms())
        .await
        .map_err(db_failure)?
    {
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "Removed agent {id}: their token no longer works. Their tickets and messages keep their name."
        )
        .map_err(output)?;
        if agents.is_configured(id) {
            writeln!(
                out,
                "kefu.toml still defines [agents.{id}]; that agent is unaffected."
            )
            .map_err(output)?;
        }
        return Ok(());
    }
    if agents.is_configured(id) {
        return Err(Failure::Refused(format!(
            "agent `{id}` is defined in kefu.toml: delete its [agents.{id}] section and restart kefu"
        )));
    }
    match store.agent(id).await.map_err(db_failure)? {
        Some(_) => writeln!(io::stdout().lock(), "Agent {id} was already removed.").map_err(output),
        None => Err(Failure::Refused(format!(
            "no agent `{id}`; `kefu agent list` shows who there is"
        ))),
    }
}

async fn new_token(agents: &Agents, store: &Store, id: &str, enable: bool) -> Result<(), Failure> {
    let token = token::generate(id);
    let hash = token::hash(&token);
    if agents.is_configured(id) {
        return print_config_section(id, None, &token, &hash);
    }
    if store
        .set_agent_token(id, &hash, enable)
        .await
        .map_err(db_failure)?
    {
        let again = if enable { " and may sign in again" } else { "" };
        return writeln!(
            io::stdout().lock(),
            "New token for agent {id}{again}, shown only this once; the old one no longer works:\n\n    {token}\n"
        )
        .map_err(output);
    }
    match store.agent(id).await.map_err(db_failure)? {
        Some(_) => Err(Failure::Refused(format!(
            "agent `{id}` was removed; `kefu agent token {id} --enable` lets them back in with a new token"
        ))),
        None => Err(Failure::Refused(format!(
            "no agent `{id}`; add one with `kefu agent add {id}`"
        ))),
    }
}

/// For agents kept in kefu.toml: the token once, and what to paste.
/// `new`: the name and role of an agent not in kefu.toml yet.
fn print_config_section(
    id: &str,
    new: Option<(&str, Role)>,
    token: &str,
    hash: &str,
) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let section = match new {
        Some((name, role)) => format!(
            "[agents.{id}]\nname = {}\nrole = \"{role}\"\ntoken_hash = \"{hash}\"",
            toml::Value::String(name.to_string())
        ),
        None => format!("[agents.{id}]\ntoken_hash = \"{hash}\""),
    };
    let what = if new.is_some() {
        "Add this to kefu.toml"
    } else {
        "Replace token_hash in kefu.toml's section with this"
    };
    writeln!(
        out,
        "Token for agent {id}, shown only this once (kefu.toml keeps only its hash):\n\n    {token}\n\n{what} and restart kefu:\n\n{section}"
    )
    .map_err(output)
}

fn hash() -> Result<(), Failure> {
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::CannotStart(format!("cannot read the token from stdin: {e}")))?;
    let token = line.trim();
    let id = token::agent_id(token).map_err(|e| {
        Failure::Refused(format!(
            "stdin is not a kefu agent token ({e}); tokens look like kefu_<id>_<64 hex digits> and come from `kefu agent add <id> --print-config`"
        ))
    })?;
    let hash = token::hash(token);
    writeln!(io::stdout().lock(), "{hash}").map_err(output)?;
    eprintln!("kefu: put it in kefu.toml as [agents.{id}] token_hash = \"…\"");
    Ok(())
}

fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}
