//! Agents: `kefu agent …` as an operator runs it (the real binary, a real
//! SQLite file), the tokens it prints checked by the in-process registry,
//! and the agents table on SQLite and (with `KEFU_TEST_DATABASE_URL`)
//! PostgreSQL.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use kefu::agents::{Agents, AuthError, Role, Source, token};
use kefu::config::Config;
use kefu::store::{AgentRow, Store};

use crate::store::PgDb;
use crate::support::{config, temp_dir};

/// Runs `kefu --config <dir>/kefu.toml ARGS` in `dir`.
fn kefu(dir: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("--config")
        .arg(dir.join("kefu.toml"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kefu");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Exit code 1 and the message on stderr.
fn refused(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The token in the output of `agent add` / `agent token`.
fn printed_token(stdout: &str, id: &str) -> String {
    let prefix = format!("kefu_{id}_");
    let tokens: Vec<&str> = stdout
        .split_whitespace()
        .filter(|w| w.starts_with(&prefix))
        .collect();
    assert_eq!(tokens.len(), 1, "one token in: {stdout}");
    assert_eq!(token::agent_id(tokens[0]), Ok(id), "{stdout}");
    tokens[0].to_string()
}

async fn registry(dir: &Path) -> Agents {
    let config = Config::load(Some(&dir.join("kefu.toml"))).unwrap();
    let store = Store::open(&config.database_url()).await.unwrap();
    Agents::new(&config, store)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every byte kefu wrote to its data directory.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kefu.db")
        {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(!all.is_empty(), "no database in {}", dir.display());
    all
}

#[tokio::test]
async fn add_list_rotate_remove_with_the_real_binary() {
    let dir = temp_dir();
    config(dir.path(), "");

    let out = kefu(
        dir.path(),
        &[
            "agent",
            "add",
            "alice",
            "--name",
            "Alice Li",
            "--role",
            "supervisor",
        ],
        "",
    );
    let stdout = ok(&out);
    let first = printed_token(&stdout, "alice");
    assert!(stdout.contains("shown only this once"), "{stdout}");
    assert!(stdout.contains("Authorization: Bearer"), "{stdout}");

    let listed = ok(&kefu(dir.path(), &["agent", "list"], ""));
    let line = listed
        .lines()
        .find(|l| l.starts_with("alice "))
        .unwrap_or_else(|| panic!("{listed}"));
    for word in ["Alice Li", "supervisor", "db", "active"] {
        assert!(line.contains(word), "{word}: {listed}");
    }

    // Only the argon2id hash is stored: neither the token nor its secret is
    // anywhere in the database files.
    let store = Store::open(
        &Config::load(Some(&dir.path().join("kefu.toml")))
            .unwrap()
            .database_url(),
    )
    .await
    .unwrap();
    let row = store.agent("alice").await.unwrap().unwrap();
    assert!(
        row.token_hash.starts_with("$argon2id$"),
        "{}",
        row.token_hash
    );
    assert_eq!(
        (row.display_name.as_str(), row.role.as_str()),
        ("Alice Li", "supervisor")
    );
    store.close().await;
    let secret = first.rsplit_once('_').unwrap().1;
    let bytes = database_bytes(dir.path());
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the plain token is in the database"
    );

    let agents = registry(dir.path()).await;
    let alice = agents.authenticate(Some(&bearer(&first))).await.unwrap();
    assert_eq!((alice.id.as_str(), alice.role), ("alice", Role::Supervisor));

    let err = refused(&kefu(dir.path(), &["agent", "add", "alice"], ""));
    assert!(err.contains("agent `alice` already exists"), "{err}");
    assert!(err.contains("kefu agent token alice"), "{err}");
    let err = refused(&kefu(dir.path(), &["agent", "add", "Alice"], ""));
    assert!(err.contains("lower-case"), "{err}");

    // Rotation: the old token stops working at once, even though this
    // registry has just verified (and cached) it.
    let stdout = ok(&kefu(dir.path(), &["agent", "token", "alice"], ""));
    let second = printed_token(&stdout, "alice");
    assert_ne!(first, second);
    assert!(stdout.contains("the old one no longer works"), "{stdout}");
    let err = agents
        .authenticate(Some(&bearer(&first)))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Invalid), "{err:?}");
    agents.authenticate(Some(&bearer(&second))).await.unwrap();

    // Removal.
    let stdout = ok(&kefu(dir.path(), &["agent", "remove", "alice"], ""));
    assert!(stdout.contains("Removed agent alice"), "{stdout}");
    let err = agents
        .authenticate(Some(&bearer(&second)))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Disabled(_)), "{err:?}");
    let listed = ok(&kefu(dir.path(), &["agent", "list"], ""));
    assert!(listed.contains("removed 20"), "{listed}");
    let stdout = ok(&kefu(dir.path(), &["agent", "remove", "alice"], ""));
    assert!(stdout.contains("already removed"), "{stdout}");
    let err = refused(&kefu(dir.path(), &["agent", "token", "alice"], ""));
    assert!(err.contains("--enable"), "{err}");
    let err = refused(&kefu(dir.path(), &["agent", "add", "alice"], ""));
    assert!(err.contains("ids are not reused"), "{err}");

    // Back in with --enable and a third token.
    let stdout = ok(&kefu(
        dir.path(),
        &["agent", "token", "alice", "--enable"],
        "",
    ));
    let third = printed_token(&stdout, "alice");
    agents.authenticate(Some(&bearer(&third))).await.unwrap();

    let err = refused(&kefu(dir.path(), &["agent", "remove", "nobody"], ""));
    assert!(err.contains("no agent `nobody`"), "{err}");
    let err = refused(&kefu(dir.path(), &["agent", "token", "nobody"], ""));
    assert!(err.contains("kefu agent add nobody"), "{err}");
}

#[tokio::test]
async fn agents_kept_in_kefu_toml() {
    let dir = temp_dir();
    config(dir.path(), "");

    let stdout = ok(&kefu(
        dir.path(),
        &[
            "agent",
            "add",
            "bob",
            "--name",
            "Bob \"B\" Ng",
            "--print-config",
        ],
        "",
    ));
    let token = printed_token(&stdout, "bob");
    let section = &stdout[stdout.find("[agents.bob]").expect("a section")..];
    assert!(!section.contains(&token), "the section holds no token");
    // Paste the section into kefu.toml as an operator would.
    let path = dir.path().join("kefu.toml");
    let mut toml = std::fs::read_to_string(&path).unwrap();
    toml.push('\n');
    toml.push_str(section);
    std::fs::write(&path, toml).unwrap();

    let listed = ok(&kefu(dir.path(), &["agent", "list"], ""));
    let line = listed.lines().find(|l| l.starts_with("bob ")).unwrap();
    assert!(
        line.contains("Bob \"B\" Ng") && line.contains("config"),
        "{listed}"
    );
    let agents = registry(dir.path()).await;
    let bob = agents.authenticate(Some(&bearer(&token))).await.unwrap();
    assert_eq!((bob.name.as_str(), bob.role), ("Bob \"B\" Ng", Role::Agent));
    assert_eq!(
        agents.record("bob").await.unwrap().unwrap().source,
        Source::Config
    );

    let err = refused(&kefu(dir.path(), &["agent", "add", "bob"], ""));
    assert!(err.contains("already defined in kefu.toml"), "{err}");
    let err = refused(&kefu(dir.path(), &["agent", "remove", "bob"], ""));
    assert!(err.contains("delete its [agents.bob] section"), "{err}");
    let stdout = ok(&kefu(dir.path(), &["agent", "token", "bob"], ""));
    let rotated = printed_token(&stdout, "bob");
    assert!(stdout.contains("Replace token_hash"), "{stdout}");
    let hash_line = stdout
        .lines()
        .find(|l| l.starts_with("token_hash = "))
        .unwrap();
    let phc = hash_line
        .trim_start_matches("token_hash = ")
        .trim_matches('"');
    assert!(token::verify(&rotated, phc));

    // `kefu agent hash`: token on stdin, PHC string on stdout.
    let stdout = ok(&kefu(dir.path(), &["agent", "hash"], &format!("{token}\n")));
    let phc = stdout.trim();
    token::check_hash(phc).unwrap();
    assert!(token::verify(&token, phc));
    let err = refused(&kefu(dir.path(), &["agent", "hash"], "hunter2\n"));
    assert!(err.contains("not a kefu agent token"), "{err}");
    assert!(!err.contains("hunter2"), "the input is not echoed: {err}");

    // A database agent with the same id: listed as a conflict, and
    // `agent remove` is the repair.
    let store = Store::open(&Config::load(Some(&path)).unwrap().database_url())
        .await
        .unwrap();
    store
        .add_agent(&AgentRow {
            id: "bob".into(),
            display_name: "Other Bob".into(),
            role: "agent".into(),
            token_hash: token::hash(&token::generate("bob")),
            created_at: 1,
            disabled_at: None,
        })
        .await
        .unwrap();
    store.close().await;
    let listed = ok(&kefu(dir.path(), &["agent", "list"], ""));
    assert!(
        listed.contains("In both kefu.toml and the database: bob"),
        "{listed}"
    );
    let stdout = ok(&kefu(dir.path(), &["agent", "remove", "bob"], ""));
    assert!(
        stdout.contains("kefu.toml still defines [agents.bob]"),
        "{stdout}"
    );
    let listed = ok(&kefu(dir.path(), &["agent", "list"], ""));
    assert!(!listed.contains("In both"), "{listed}");
}

#[test]
fn without_settings_agents_go_to_sqlite_in_data() {
    let dir = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["agent", "list"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("No agents yet"), "{stdout}");
    assert!(dir.path().join("data/kefu.db").is_file());
}

/// The agents table on any backend.
async fn exercise(store: &Store) {
    let row = |id: &str| AgentRow {
        id: id.into(),
        display_name: format!("{id} name"),
        role: "agent".into(),
        token_hash: format!("$argon2id$hash-of-{id}"),
        created_at: 1_700_000_000_000,
        disabled_at: None,
    };
    assert!(store.add_agent(&row("zoe")).await.unwrap());
    assert!(store.add_agent(&row("amy")).await.unwrap());
    assert!(!store.add_agent(&row("amy")).await.unwrap(), "a taken id");
    assert_eq!(store.agent("amy").await.unwrap(), Some(row("amy")));
    assert_eq!(store.agent("nobody").await.unwrap(), None);
    let ids: Vec<String> = store
        .agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["amy", "zoe"]);

    assert!(store.set_agent_token("amy", "$new", false).await.unwrap());
    assert_eq!(
        store.agent("amy").await.unwrap().unwrap().token_hash,
        "$new"
    );
    assert!(
        !store
            .set_agent_token("nobody", "$new", false)
            .await
            .unwrap()
    );

    assert!(store.disable_agent("amy", 5).await.unwrap());
    assert!(
        !store.disable_agent("amy", 6).await.unwrap(),
        "already removed"
    );
    assert_eq!(
        store.agent("amy").await.unwrap().unwrap().disabled_at,
        Some(5)
    );
    assert!(
        !store.set_agent_token("amy", "$newer", false).await.unwrap(),
        "a removed agent keeps its removal"
    );
    assert_eq!(
        store.agent("amy").await.unwrap().unwrap().token_hash,
        "$new"
    );
    assert!(store.set_agent_token("amy", "$newer", true).await.unwrap());
    let amy = store.agent("amy").await.unwrap().unwrap();
    assert_eq!((amy.token_hash.as_str(), amy.disabled_at), ("$newer", None));
    assert!(!store.disable_agent("nobody", 5).await.unwrap());
}

#[tokio::test]
async fn agents_table_on_sqlite() {
    let dir = temp_dir();
    let store = Store::open(&format!(
        "sqlite://{}/kefu.db?mode=rwc",
        dir.path().display()
    ))
    .await
    .unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn agents_table_on_postgres() {
    let Some(db) = PgDb::create().await else {
        return;
    };
    let store = Store::open(&db.url).await.unwrap();
    exercise(&store).await;
    store.close().await;
    db.drop_db().await;
}
