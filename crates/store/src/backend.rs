//! Where each component's data lives: a SQLite file of its own under the data
//! dir, sandboxed by SQLite itself (`wharf-sqlite-sandbox`: authorizer,
//! limits, deadlines), or a PostgreSQL schema owned by a login role of its
//! own (so the database itself, not the host, stops it from touching other
//! schemas). Either way a connection goes back to its pool only when it is
//! clean: no open transaction, no session state, no deadline left behind.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::pg_relay::{self, PgRelay, Upstream};
use super::sandbox_pool::SandboxPool;
use wharf_spec::ComponentName;

/// Longest a component's statement waits for a PostgreSQL lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The host's database: which backend, and how to reach it.
#[derive(Debug, Clone)]
pub enum Database {
    /// One SQLite file per component in this directory.
    Sqlite {
        /// `DATA_DIR/db`.
        dir: PathBuf,
    },
    /// One schema and role per component in this PostgreSQL database.
    Postgres {
        /// Connects as the host's (administrative) user.
        admin: PgPool,
        /// The admin's connect options, re-used with each component's role.
        options: Box<PgConnectOptions>,
        /// Secret the component roles' passwords are derived from, so every
        /// host sharing the database derives the same ones.
        secret: Vec<u8>,
        /// Distinguishes this database's roles from other databases' in the
        /// same cluster (roles are cluster-wide): a short hash of its name.
        role_suffix: String,
        /// What the component roles connect through: no server message
        /// bigger than their `query_bytes` reaches the host.
        relay: Arc<PgRelay>,
    },
}

/// What a component's pool is sized and bounded by (from its manifest limits).
#[derive(Debug, Clone, Copy)]
pub struct DbLimits {
    /// Connections the pool may open.
    pub connections: u32,
    /// Largest value or result, in bytes.
    pub query_bytes: u64,
    /// The component's request deadline: no statement outlives it.
    pub deadline: Duration,
}

/// One component's SQLite database: a sqlx pool for the host's own SQL
/// (queue, migrations, counts) and the sandboxed connections its own
/// statements run on.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    /// For the host's SQL.
    pub pool: SqlitePool,
    /// For the component's SQL.
    pub(crate) sandbox: Arc<SandboxPool>,
}

/// One component's database handle.
#[derive(Debug, Clone)]
pub enum ComponentDb {
    /// Its SQLite file.
    Sqlite(SqliteDb),
    /// Its PostgreSQL schema, through its own role.
    Postgres(PgPool),
}

impl Database {
    /// Opens the backend `database_url` names (PostgreSQL), or SQLite under
    /// `data_dir` when there is none.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        let Some(url) = database_url.filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://")) else {
            if let Some(other) = database_url.filter(|u| !u.is_empty()) {
                anyhow::bail!("DATABASE_URL `{}` is not a postgres:// URL; leave it unset for SQLite", redact(other));
            }
            let dir = data_dir.join("db");
            std::fs::create_dir_all(&dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
            return Ok(Self::Sqlite { dir });
        };
        let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid PostgreSQL URL")?;
        let admin = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("failed to connect to PostgreSQL at `{}`", redact(url)))?;
        let secret = format!("{}|{}", url, "wharf-component-roles").into_bytes();
        let database: String = sqlx::query_scalar("SELECT current_database()::text").fetch_one(&admin).await?;
        let role_suffix = hex::encode(&<Sha256 as sha2::Digest>::digest(database.as_bytes())[..4]);
        let upstream = match options.get_socket() {
            Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{}", options.get_port()))),
            // An IPv6 literal comes bracketed, as in the URL.
            None => Upstream::Tcp(options.get_host().trim_matches(['[', ']']).to_owned(), options.get_port()),
        };
        let relay = Arc::new(PgRelay::start(&relay_dir(data_dir), upstream).await?);
        Ok(Self::Postgres { admin, options: Box::new(options), secret, role_suffix, relay })
    }

    /// `sqlite` or `postgres`, for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// The administrative PostgreSQL pool (the hub relay uses it).
    pub fn admin_pool(&self) -> Option<&PgPool> {
        match self {
            Self::Sqlite { .. } => None,
            Self::Postgres { admin, .. } => Some(admin),
        }
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        if let Self::Postgres { admin, .. } = self {
            sqlx::query("SELECT 1").execute(admin).await?;
        }
        Ok(())
    }

    /// Opens (creating on first use) the database of `component`.
    pub async fn component(&self, component: &ComponentName, limits: DbLimits) -> anyhow::Result<ComponentDb> {
        let connections = limits.connections;
        match self {
            Self::Sqlite { dir } => {
                let path = dir.join(format!("{component}.sqlite"));
                let options = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // WAL + NORMAL survives a process crash (kill -9); only an
                    // OS crash can lose the last transactions.
                    .synchronous(SqliteSynchronous::Normal)
                    // Waiting for a lock: sqlx's busy timeout is replaced by the
                    // sandbox's busy handler (5 s, or the deadline), installed below.
                    .foreign_keys(true);
                let sandbox = wharf_sqlite_sandbox::Limits::for_query_bytes(limits.query_bytes);
                let pool = SqlitePoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            let mut handle = conn.lock_handle().await?;
                            wharf_sqlite_sandbox::install(handle.as_raw_handle(), &sandbox)
                                .map_err(|e| sqlx::Error::Configuration(e.into()))
                        })
                    })
                    .connect_with(options)
                    .await
                    .with_context(|| format!("failed to open `{}`", path.display()))?;
                let sandbox = SandboxPool::new(path, sandbox, connections);
                Ok(ComponentDb::Sqlite(SqliteDb { pool, sandbox }))
            }
            Self::Postgres { admin, options, secret, role_suffix, relay } => {
                let role = format!("wharf_{component}_{role_suffix}");
                let password = derive_password(secret, &role);
                provision_postgres(admin, component.as_str(), &role, &password, &limits).await?;
                relay.set_cap(&role, pg_relay::cap_for(limits.query_bytes));
                let mut through_relay = PgConnectOptions::new_without_pgpass()
                    .socket(relay.dir())
                    .port(pg_relay::SOCKET_PORT)
                    .ssl_mode(PgSslMode::Disable);
                if let Some(database) = options.get_database() {
                    through_relay = through_relay.database(database);
                }
                let options = through_relay
                    .username(&role)
                    .password(&password)
                    .options([("search_path", component.as_str())])
                    // `DISCARD ALL` on release drops prepared statements too.
                    .statement_cache_capacity(0);
                let pool = PgPoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_release(|conn, _| {
                        Box::pin(async move {
                            // Clears everything a session can keep (settings,
                            // temporary tables, advisory locks, LISTENs); it
                            // fails inside a transaction, and then the
                            // connection is closed instead of reused.
                            Ok(sqlx::Executor::execute(conn, "DISCARD ALL").await.is_ok())
                        })
                    })
                    .connect_with(options)
                    .await
                    .with_context(|| format!("failed to connect to PostgreSQL as role `{role}`"))?;
                Ok(ComponentDb::Postgres(pool))
            }
        }
    }
}

/// Where the PostgreSQL relay's socket lives: `DATA_DIR/pg-relay`, unless
/// that path is too long for a Unix socket's name (about 100 bytes); then a
/// directory of this process's own under the system's temporary directory.
fn relay_dir(data_dir: &Path) -> PathBuf {
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned()).join("pg-relay");
    if dir.as_os_str().len() + ".s.PGSQL.5432".len() < 100 {
        return dir;
    }
    std::env::temp_dir().join(format!("wharf-pg-relay-{}", std::process::id()))
}

/// Creates the component's role and schema if missing. The role owns only
/// its schema; other components' schemas are owned by other roles, so
/// PostgreSQL itself refuses cross-component access.
async fn provision_postgres(
    admin: &PgPool,
    schema: &str,
    role: &str,
    password: &str,
    limits: &DbLimits,
) -> anyhow::Result<()> {
    let mut conn = admin.acquire().await?;
    // Serialise provisioning across hosts starting at once.
    sqlx::query("SELECT pg_advisory_lock(hashtext('wharf-provision'))").execute(&mut *conn).await?;
    let result = async {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?;
        let role_id = quote_ident(role);
        let verb = if exists { "ALTER" } else { "CREATE" };
        // Passwords cannot be bound as parameters in DDL; this one is hex.
        sqlx::raw_sql(&format!(
            "{verb} ROLE {role_id} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
        ))
        .execute(&mut *conn)
        .await?;
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {role_id}; REVOKE ALL ON SCHEMA public FROM {role_id}",
            quote_ident(schema)
        ))
        .execute(&mut *conn)
        .await?;
        // Session defaults of the role: the host also bounds each statement
        // by what is left of its request's deadline.
        let deadline_ms = limits.deadline.as_millis().max(1);
        let lock_ms = deadline_ms.min(LOCK_TIMEOUT.as_millis());
        sqlx::raw_sql(&format!(
            "ALTER ROLE {role_id} SET statement_timeout = '{deadline_ms}ms';
             ALTER ROLE {role_id} SET lock_timeout = '{lock_ms}ms';
             ALTER ROLE {role_id} SET idle_in_transaction_session_timeout = '{}ms'",
            deadline_ms + 1000
        ))
        .execute(&mut *conn)
        .await?;
        // PostgreSQL 15 no longer lets everyone create objects in `public`;
        // older servers do, so revoke it there too.
        if let Err(e) = sqlx::raw_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC").execute(&mut *conn).await {
            tracing::warn!(error = %e, "cannot revoke CREATE on schema public from PUBLIC; components may create objects there");
        }
        anyhow::Ok(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('wharf-provision'))").execute(&mut *conn).await?;
    result.with_context(|| format!("failed to provision schema `{schema}` and role `{role}`"))
}

fn derive_password(secret: &[u8], role: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(role.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A PostgreSQL identifier, quoted.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A database URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_from_urls() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("acme-data"), "\"acme-data\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
