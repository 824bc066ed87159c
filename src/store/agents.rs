//! The `agents` table: people created with `kefu agent add`, with the
//! argon2id hash of their token (never the token). Removing an agent sets
//! `disabled_at`; the row stays, because tickets, notes and messages keep
//! naming the agent.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store};

/// One row of `agents`. `role` is `agent` or `supervisor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub id: String,
    pub display_name: String,
    pub role: String,
    /// argon2id PHC string.
    pub token_hash: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

const COLUMNS: &str = "id, display_name, role, token_hash, created_at, disabled_at";

fn row(r: &AnyRow) -> Result<AgentRow> {
    Ok(AgentRow {
        id: r.try_get(0)?,
        display_name: r.try_get(1)?,
        role: r.try_get(2)?,
        token_hash: r.try_get(3)?,
        created_at: r.try_get(4)?,
        disabled_at: r.try_get(5)?,
    })
}

impl Store {
    /// Adds an agent; false when the id is taken, by an agent present or
    /// removed (ids are not reused: the history names them).
    pub async fn add_agent(&self, agent: &AgentRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO agents (id, display_name, role, token_hash, created_at, disabled_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&agent.id)
        .bind(&agent.display_name)
        .bind(&agent.role)
        .bind(&agent.token_hash)
        .bind(agent.created_at)
        .bind(agent.disabled_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The agent with this id, removed or not.
    pub async fn agent(&self, id: &str) -> Result<Option<AgentRow>> {
        let found = sqlx::query(&format!("SELECT {COLUMNS} FROM agents WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    /// Every agent in the table, removed ones included, by id.
    pub async fn agents(&self) -> Result<Vec<AgentRow>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM agents ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    /// Replaces an agent's token hash, so the old token stops working.
    /// `enable` also lets a removed agent back in; without it a removed
    /// agent is left alone. False when nothing was changed.
    pub async fn set_agent_token(&self, id: &str, token_hash: &str, enable: bool) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE agents SET token_hash = $1,
                 disabled_at = CASE WHEN $2 = 1 THEN NULL ELSE disabled_at END
             WHERE id = $3 AND ($2 = 1 OR disabled_at IS NULL)",
        )
        .bind(token_hash)
        .bind(i64::from(enable))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an agent at `now`: their token stops working. False when
    /// there is no such agent or it was already removed.
    pub async fn disable_agent(&self, id: &str, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE agents SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
