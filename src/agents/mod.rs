//! The people who answer escalated conversations: who they are, what they
//! may do, and how a request proves it comes from one of them.
//!
//! Agents come from two places: `[agents.<id>]` in kefu.toml, and the
//! `agents` table (`kefu agent add`). One id is one person: `kefu serve`
//! refuses to start while an id is in both (see [`Agents::load`]); should
//! it happen anyway (kefu.toml edited under a running kefu is not re-read,
//! but a database agent can be added by another replica's operator), the
//! kefu.toml agent wins.
//!
//! Requests carry `Authorization: Bearer kefu_<id>_<secret>` ([`token`]).
//! Each request looks the agent up afresh (kefu.toml in memory, else one
//! indexed database read), so removing an agent or replacing their token
//! takes effect at once on every replica. Only the argon2 verification is
//! remembered ([`token::VerifiedCache`], 5 minutes, by SHA-256 of the
//! token), because it deliberately costs tens of milliseconds and a core.

pub mod token;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, Semaphore};

use crate::config::{AgentConfig, Config};
use crate::http::ApiError;
use crate::store::{AgentRow, Store, StoreError};

use self::token::VerifiedCache;

/// How long a successful verification is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// How many verified tokens are remembered at most (a few hundred bytes each).
pub const CACHE_CAPACITY: usize = 4096;

/// What an agent may do. A supervisor may do everything an agent may.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Claims, answers and resolves tickets.
    #[default]
    Agent,
    /// All an agent may do, and what the agent API reserves for supervisors.
    Supervisor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }

    /// Whether someone with this role may do what needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        match needed {
            Role::Agent => true,
            Role::Supervisor => self == Role::Supervisor,
        }
    }
}

/// By hand, so a wrong role in kefu.toml is answered with the right ones.
impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Role, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "agent" => Ok(Role::Agent),
            "supervisor" => Ok(Role::Supervisor),
            other => Err(format!(
                "unknown role {other:?}; roles are agent and supervisor"
            )),
        }
    }
}

/// A person who answers buyers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// The login name: lower-case letters, digits, - and _.
    pub id: String,
    /// The name colleagues see.
    pub name: String,
    pub role: Role,
}

impl Agent {
    /// Ok when this agent's role allows what needs `needed`; otherwise the
    /// 403 answer, naming the role that is needed.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the {needed} role; `{}` is {} {}. Ask a {needed} to do it",
                self.id,
                article(self.role),
                self.role
            ),
        ))
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Agent => "an",
        Role::Supervisor => "a",
    }
}

/// Where an agent is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[agents.<id>]` in kefu.toml.
    Config,
    /// The `agents` table (`kefu agent add`).
    Database,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Database => "db",
        }
    }
}

/// An agent with where it is defined and whether it was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub agent: Agent,
    pub source: Source,
    /// Unix milliseconds; database agents only.
    pub created_at: Option<i64>,
    /// Unix milliseconds; set once `kefu agent remove` removed the agent.
    pub disabled_at: Option<i64>,
}

/// Why a request is not from an agent. The messages are for the person
/// holding the token: what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no agent token: send `Authorization: Bearer <token>`; tokens come from `kefu agent add`"
    )]
    Missing,
    #[error(
        "the Authorization header is not `Bearer kefu_<agent id>_<secret>`: send `Authorization: Bearer <token>` with the token `kefu agent add` printed"
    )]
    Malformed,
    /// Unknown agent or wrong secret: deliberately not told apart.
    #[error(
        "the token is not valid (no such agent, or it was replaced by `kefu agent token`); ask your kefu administrator for a new one"
    )]
    Invalid,
    #[error(
        "agent `{0}` has been removed; ask your kefu administrator to restore access (`kefu agent token {0} --enable`)"
    )]
    Disabled(String),
    #[error("looking up the agent failed: {0}")]
    Store(#[from] StoreError),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        match err {
            AuthError::Store(e) => ApiError::internal(&e),
            other => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", other.to_string()),
        }
    }
}

/// Why the agents cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error(
        "agents defined both in kefu.toml and in the database: {}. One id is one person: delete the [agents.<id>] section from kefu.toml, or retire the database agent with `kefu agent remove <id>`",
        .0.join(", ")
    )]
    Conflict(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks `[agents]` from the settings: ids, hashes. Roles and unknown keys
/// are checked when the settings are read.
pub fn check_config(agents: &BTreeMap<String, AgentConfig>) -> Result<(), String> {
    for (id, agent) in agents {
        token::check_id(id).map_err(|e| format!("[agents.{id}]: {e}; rename the section"))?;
        token::check_hash(&agent.token_hash).map_err(|e| {
            format!(
                "agents.{id}.token_hash: {e}. Make one with `kefu agent add {id} --print-config`, or hash a token with `kefu agent hash`"
            )
        })?;
    }
    Ok(())
}

/// What authentication needs to know about an agent.
struct Credentials {
    agent: Agent,
    token_hash: String,
    disabled: bool,
}

/// All agents, and the check that a request comes from one. Share it as
/// `Arc<Agents>`.
pub struct Agents {
    configured: BTreeMap<String, Credentials>,
    store: Store,
    /// Successful verifications, so an agent's requests skip argon2.
    cache: Mutex<VerifiedCache>,
    /// argon2 verifications running at once: each takes a core and 19 MiB,
    /// so a flood of bad tokens queues here instead of exhausting memory
    /// and the blocking thread pool.
    verify_slots: Semaphore,
    /// argon2 verifications done (metrics; tests count cache hits with it).
    verifications: AtomicU64,
    /// A hash of a token nobody has, verified for unknown agent ids so they
    /// take as long as known ones.
    decoy: OnceCell<String>,
}

impl Agents {
    /// The agents of `config` (already validated) and of the database,
    /// without checking that their ids are distinct; `kefu agent` uses this
    /// so that a conflict can be repaired.
    pub fn new(config: &Config, store: Store) -> Agents {
        let configured = config
            .agents
            .iter()
            .map(|(id, c)| {
                let name = if c.name.trim().is_empty() {
                    id.clone()
                } else {
                    c.name.trim().to_string()
                };
                let credentials = Credentials {
                    agent: Agent {
                        id: id.clone(),
                        name,
                        role: c.role,
                    },
                    token_hash: c.token_hash.trim().to_string(),
                    disabled: false,
                };
                (id.clone(), credentials)
            })
            .collect();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Agents {
            configured,
            store,
            cache: Mutex::new(VerifiedCache::new(CACHE_CAPACITY, CACHE_TTL)),
            verify_slots: Semaphore::new(cores),
            verifications: AtomicU64::new(0),
            decoy: OnceCell::new(),
        }
    }

    /// As [`Agents::new`], for serving: refuses ids defined both in
    /// kefu.toml and (not removed) in the database.
    pub async fn load(config: &Config, store: Store) -> Result<Agents, AgentsError> {
        let agents = Agents::new(config, store);
        let conflicts = agents.conflicts().await?;
        if !conflicts.is_empty() {
            return Err(AgentsError::Conflict(conflicts));
        }
        Ok(agents)
    }

    /// Ids of kefu.toml agents that also have a database agent not removed.
    pub async fn conflicts(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .agents()
            .await?
            .into_iter()
            .filter(|row| row.disabled_at.is_none() && self.configured.contains_key(&row.id))
            .map(|row| row.id)
            .collect())
    }

    /// Whether `[agents.<id>]` defines this agent.
    pub fn is_configured(&self, id: &str) -> bool {
        self.configured.contains_key(id)
    }

    /// Who sent a request, from its `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Agent, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = bearer(header).ok_or_else(|| {
            tracing::warn!("agent authentication failed: Authorization is not a bearer token");
            AuthError::Malformed
        })?;
        let id = token::agent_id(token).map_err(|e| {
            tracing::warn!(problem = %e, "agent authentication failed: not a kefu token");
            AuthError::Malformed
        })?;
        let Some(credentials) = self.credentials(id).await? else {
            self.decoy_verify(token).await;
            tracing::warn!(agent = id, "agent authentication failed: no such agent");
            return Err(AuthError::Invalid);
        };
        let key = token::fingerprint(token);
        let remembered = self
            .cache()
            .hit(&key, &credentials.token_hash, Instant::now());
        if !remembered {
            if !self.verify(token, &credentials.token_hash).await {
                tracing::warn!(agent = id, "agent authentication failed: wrong token");
                return Err(AuthError::Invalid);
            }
            self.cache()
                .remember(key, credentials.token_hash.clone(), Instant::now());
        }
        if credentials.disabled {
            tracing::warn!(agent = id, "agent authentication failed: agent removed");
            return Err(AuthError::Disabled(id.to_string()));
        }
        Ok(credentials.agent)
    }

    /// An agent who may be given work: defined and not removed.
    pub async fn find(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        Ok(self
            .credentials(id)
            .await?
            .filter(|c| !c.disabled)
            .map(|c| c.agent))
    }

    /// Any agent by id, removed ones included, with where it is defined.
    pub async fn record(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        if let Some(c) = self.configured.get(id) {
            return Ok(Some(configured_record(c)));
        }
        self.store.agent(id).await?.map(database_record).transpose()
    }

    /// Every agent, removed ones included, by id; kefu.toml's first when
    /// an id is in both.
    pub async fn list(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut all: Vec<AgentRecord> = self.configured.values().map(configured_record).collect();
        for row in self.store.agents().await? {
            all.push(database_record(row)?);
        }
        // Stable: for one id, kefu.toml's entry stays first.
        all.sort_by(|a, b| a.agent.id.cmp(&b.agent.id));
        Ok(all)
    }

    /// argon2 verifications done so far (cache hits do none).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn credentials(&self, id: &str) -> Result<Option<Credentials>, StoreError> {
        if let Some(c) = self.configured.get(id) {
            return Ok(Some(Credentials {
                agent: c.agent.clone(),
                token_hash: c.token_hash.clone(),
                disabled: false,
            }));
        }
        let Some(row) = self.store.agent(id).await? else {
            return Ok(None);
        };
        let disabled = row.disabled_at.is_some();
        let token_hash = row.token_hash.clone();
        let agent = database_record(row)?.agent;
        Ok(Some(Credentials {
            agent,
            token_hash,
            disabled,
        }))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, VerifiedCache> {
        // The cache holds no invariant a panic could break halfway.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// argon2 off the async threads, a bounded number at a time.
    async fn verify(&self, token: &str, token_hash: &str) -> bool {
        // The semaphore is never closed, so acquiring cannot fail.
        let _slot = self.verify_slots.acquire().await.ok();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let (token, token_hash) = (token.to_string(), token_hash.to_string());
        tokio::task::spawn_blocking(move || token::verify(&token, &token_hash))
            .await
            .unwrap_or(false)
    }

    async fn decoy_verify(&self, token: &str) {
        let decoy = self
            .decoy
            .get_or_init(|| async {
                tokio::task::spawn_blocking(|| token::hash(&token::generate("decoy")))
                    .await
                    .unwrap_or_default()
            })
            .await;
        self.verify(token, decoy).await;
    }
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 7235).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn configured_record(c: &Credentials) -> AgentRecord {
    AgentRecord {
        agent: c.agent.clone(),
        source: Source::Config,
        created_at: None,
        disabled_at: None,
    }
}

fn database_record(row: AgentRow) -> Result<AgentRecord, StoreError> {
    let role = row.role.parse().map_err(|e| {
        StoreError::Config(format!(
            "agents row `{}`: {e}; fix the row in the database",
            row.id
        ))
    })?;
    Ok(AgentRecord {
        agent: Agent {
            id: row.id,
            name: row.display_name,
            role,
        },
        source: Source::Database,
        created_at: Some(row.created_at),
        disabled_at: row.disabled_at,
    })
}

/// The agent who sent the request. Rejects with 401 `unauthorized` (and
/// `WWW-Authenticate: Bearer`) when the request carries no valid agent
/// token. Works with any router state from which an `Arc<Agents>` can be
/// taken.
#[derive(Debug, Clone)]
pub struct CurrentAgent(pub Agent);

impl<S> FromRequestParts<S> for CurrentAgent
where
    Arc<Agents>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let agents = Arc::<Agents>::from_ref(state);
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| AuthError::Malformed)?),
        };
        Ok(CurrentAgent(agents.authenticate(header).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    #[test]
    fn roles() {
        struct Case {
            has: Role,
            needs: Role,
            allowed: bool,
        }
        let cases = [
            Case {
                has: Role::Agent,
                needs: Role::Agent,
                allowed: true,
            },
            Case {
                has: Role::Supervisor,
                needs: Role::Agent,
                allowed: true,
            },
            Case {
                has: Role::Supervisor,
                needs: Role::Supervisor,
                allowed: true,
            },
            Case {
                has: Role::Agent,
                needs: Role::Supervisor,
                allowed: false,
            },
        ];
        for case in cases {
            assert_eq!(
                case.has.allows(case.needs),
                case.allowed,
                "{} needs {}",
                case.has,
                case.needs
            );
        }
        let bob = Agent {
            id: "bob".into(),
            name: "Bob".into(),
            role: Role::Agent,
        };
        let err = bob.require(Role::Supervisor).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert_eq!(err.code, "forbidden");
        assert!(
            err.message.contains("needs the supervisor role"),
            "{}",
            err.message
        );
        assert!(bob.require(Role::Agent).is_ok());
        assert_eq!("supervisor".parse::<Role>(), Ok(Role::Supervisor));
        assert!(
            "admin"
                .parse::<Role>()
                .unwrap_err()
                .contains("agent and supervisor")
        );
    }

    #[test]
    fn bearer_headers() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("abc", None),
        ];
        for (header, expect) in cases {
            assert_eq!(bearer(header), expect, "{header:?}");
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        agents: Arc<Agents>,
        store: Store,
        /// The token of alice, an agent in kefu.toml.
        alice: String,
        /// The token of sam, a supervisor in the database.
        sam: String,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite://{}/kefu.db?mode=rwc",
            dir.path().display()
        ))
        .await
        .unwrap();
        let alice = token::generate("alice");
        let sam = token::generate("sam");
        store
            .add_agent(&AgentRow {
                id: "sam".into(),
                display_name: "Sam Wu".into(),
                role: "supervisor".into(),
                token_hash: token::hash(&sam),
                created_at: 1,
                disabled_at: None,
            })
            .await
            .unwrap();
        let path = dir.path().join("kefu.toml");
        std::fs::write(
            &path,
            format!(
                "[agents.alice]\nname = \"Alice Li\"\nrole = \"agent\"\ntoken_hash = \"{}\"\n",
                token::hash(&alice)
            ),
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        let agents = Arc::new(Agents::load(&config, store.clone()).await.unwrap());
        Fixture {
            dir,
            agents,
            store,
            alice,
            sam,
        }
    }

    #[tokio::test]
    async fn agents_from_config_and_database_authenticate() {
        let f = fixture().await;
        let alice = f
            .agents
            .authenticate(Some(&format!("Bearer {}", f.alice)))
            .await
            .unwrap();
        assert_eq!(
            alice,
            Agent {
                id: "alice".into(),
                name: "Alice Li".into(),
                role: Role::Agent
            }
        );
        let sam = f
            .agents
            .authenticate(Some(&format!("Bearer {}", f.sam)))
            .await
            .unwrap();
        assert_eq!(sam.role, Role::Supervisor);
        assert_eq!(sam.name, "Sam Wu");

        let list = f.agents.list().await.unwrap();
        let ids: Vec<(&str, Source)> = list
            .iter()
            .map(|r| (r.agent.id.as_str(), r.source))
            .collect();
        assert_eq!(ids, [("alice", Source::Config), ("sam", Source::Database)]);
        assert_eq!(f.agents.find("sam").await.unwrap(), Some(sam));
        assert_eq!(f.agents.find("nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn failures_say_what_is_wrong() {
        let f = fixture().await;
        let hex = "ab".repeat(32);
        let cases: [(Option<String>, &str); 6] = [
            (None, "Missing"),
            (Some("Basic YWxpY2U6eA==".into()), "Malformed"),
            (Some("Bearer hunter2".into()), "Malformed"),
            (Some(format!("Bearer kefu_alice_{hex}")), "Invalid"),
            (Some(format!("Bearer kefu_nobody_{hex}")), "Invalid"),
            // Alice's secret under sam's id: the id is part of what is hashed.
            (
                Some(format!(
                    "Bearer kefu_sam_{}",
                    &f.alice["kefu_alice_".len()..]
                )),
                "Invalid",
            ),
        ];
        for (header, expect) in cases {
            let err = f.agents.authenticate(header.as_deref()).await.unwrap_err();
            assert!(
                format!("{err:?}").starts_with(expect),
                "{header:?}: {err:?}"
            );
        }
        let missing = AuthError::Missing.to_string();
        assert!(
            missing.contains("Authorization: Bearer <token>"),
            "{missing}"
        );
        assert!(missing.contains("kefu agent add"), "{missing}");
    }

    #[tokio::test]
    async fn a_remembered_token_skips_argon2_and_a_wrong_one_never_is() {
        let f = fixture().await;
        let header = format!("Bearer {}", f.sam);
        f.agents.authenticate(Some(&header)).await.unwrap();
        assert_eq!(f.agents.verifications(), 1);
        for _ in 0..3 {
            f.agents.authenticate(Some(&header)).await.unwrap();
        }
        assert_eq!(f.agents.verifications(), 1, "cache hits verify nothing");

        let wrong = format!("Bearer kefu_sam_{}", "cd".repeat(32));
        for n in 2..4 {
            f.agents.authenticate(Some(&wrong)).await.unwrap_err();
            assert_eq!(f.agents.verifications(), n, "failures are not remembered");
        }
        // Unknown agents cost a verification too, so timing does not tell
        // which ids exist.
        let unknown = format!("Bearer kefu_nobody_{}", "cd".repeat(32));
        f.agents.authenticate(Some(&unknown)).await.unwrap_err();
        assert_eq!(f.agents.verifications(), 4);
    }

    #[tokio::test]
    async fn rotation_and_removal_take_effect_at_once_despite_the_cache() {
        let f = fixture().await;
        let old = format!("Bearer {}", f.sam);
        f.agents.authenticate(Some(&old)).await.unwrap();

        let new_token = token::generate("sam");
        assert!(
            f.store
                .set_agent_token("sam", &token::hash(&new_token), false)
                .await
                .unwrap()
        );
        let err = f.agents.authenticate(Some(&old)).await.unwrap_err();
        assert!(matches!(err, AuthError::Invalid), "{err:?}");
        let new = format!("Bearer {new_token}");
        f.agents.authenticate(Some(&new)).await.unwrap();

        assert!(f.store.disable_agent("sam", 2).await.unwrap());
        let err = f.agents.authenticate(Some(&new)).await.unwrap_err();
        assert!(
            matches!(err, AuthError::Disabled(ref id) if id == "sam"),
            "{err:?}"
        );
        assert!(err.to_string().contains("kefu agent token sam --enable"));
        assert_eq!(f.agents.find("sam").await.unwrap(), None, "no new work");
        assert!(
            f.agents.record("sam").await.unwrap().unwrap().disabled_at == Some(2),
            "still known for the history"
        );
    }

    #[tokio::test]
    async fn an_id_in_both_places_is_refused_at_start() {
        let f = fixture().await;
        f.store
            .add_agent(&AgentRow {
                id: "alice".into(),
                display_name: "Other Alice".into(),
                role: "agent".into(),
                token_hash: token::hash(&token::generate("alice")),
                created_at: 1,
                disabled_at: None,
            })
            .await
            .unwrap();
        let config = Config::load(Some(&f.dir.path().join("kefu.toml"))).unwrap();
        let err = Agents::load(&config, f.store.clone())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("both in kefu.toml and in the database: alice"),
            "{err}"
        );
        assert!(err.contains("kefu agent remove <id>"), "{err}");
        // Retiring the database one repairs it; kefu.toml's alice stays.
        f.store.disable_agent("alice", 3).await.unwrap();
        let agents = Agents::load(&config, f.store.clone()).await.unwrap();
        let alice = agents
            .authenticate(Some(&format!("Bearer {}", f.alice)))
            .await
            .unwrap();
        assert_eq!(alice.name, "Alice Li");
    }

    async fn me(CurrentAgent(agent): CurrentAgent) -> String {
        agent.id
    }

    async fn supervise(CurrentAgent(agent): CurrentAgent) -> Result<String, ApiError> {
        agent.require(Role::Supervisor)?;
        Ok(format!("hello {}", agent.id))
    }

    async fn call(
        app: &Router,
        path: &str,
        auth: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::get(path);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_extractor_answers_401_and_403_in_kefus_error_shape() {
        let f = fixture().await;
        let app = Router::new()
            .route("/me", get(me))
            .route("/supervise", get(supervise))
            .with_state(f.agents.clone());

        let (status, headers, body) = call(&app, "/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{v}"
        );

        let bad = format!("Bearer kefu_alice_{}", "00".repeat(32));
        let (status, headers, body) = call(&app, "/me", Some(&bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert!(
            !body.contains("00000000"),
            "the token is not echoed: {body}"
        );

        let mut request = Request::get("/me");
        request = request.header(
            header::AUTHORIZATION,
            axum::http::HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "not text");

        let alice = format!("Bearer {}", f.alice);
        let (status, _, body) = call(&app, "/me", Some(&alice)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));

        let (status, headers, body) = call(&app, "/supervise", Some(&alice)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "forbidden");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("supervisor"),
            "{v}"
        );

        let sam = format!("Bearer {}", f.sam);
        let (status, _, body) = call(&app, "/supervise", Some(&sam)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello sam"));
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::Config;

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g";

    fn load(toml: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kefu.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path)).map_err(|e| e.to_string())
    }

    #[test]
    fn agents_in_the_settings_are_checked_with_the_key_named() {
        let config = load(&format!(
            "[agents.li-wei]\nname = \"Li Wei\"\nrole = \"supervisor\"\ntoken_hash = \"{HASH}\"\n[agents.bob]\ntoken_hash = \"{HASH}\"\n"
        ))
        .unwrap();
        assert_eq!(config.agents["li-wei"].role, super::Role::Supervisor);
        assert_eq!(config.agents["bob"].role, super::Role::Agent, "the default");
        assert!(
            Config::load(None).unwrap().agents.is_empty(),
            "none built in"
        );

        let cases = [
            (
                format!("[agents.bob]\nrole = \"admin\"\ntoken_hash = \"{HASH}\"\n"),
                "unknown role \"admin\"; roles are agent and supervisor for key `agents.bob.role`",
            ),
            (
                "[agents.bob]\ntoken_hash = \"plaintext\"\n".to_string(),
                "agents.bob.token_hash: not a PHC hash string",
            ),
            (
                "[agents.bob]\ntoken_hash = \"plaintext\"\n".to_string(),
                "kefu agent add bob --print-config",
            ),
            (
                format!("[agents.\"Bob Smith\"]\ntoken_hash = \"{HASH}\"\n"),
                "[agents.Bob Smith]",
            ),
            (
                format!("[agents.bob]\ntoken_hash = \"{HASH}\"\npassword = \"x\"\n"),
                "password",
            ),
            ("[agents.bob]\nname = \"Bob\"\n".to_string(), "token_hash"),
        ];
        for (toml, expect) in cases {
            let err = load(&toml).unwrap_err();
            assert!(err.contains(expect), "{toml}\n=> {err}");
        }
    }
}
