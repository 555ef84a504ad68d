//! Component migrations: ordered SQL files a component ships
//! (`NNNN_description.sql`, with optional `NNNN_description.sqlite.sql` /
//! `.postgres.sql` variants that win on their backend), applied at load
//! before the component serves and recorded per component with a checksum.
//! An applied migration whose file changed refuses the load, naming the file.
//!
//! Recording and checksums are sqlx's migrator; this module finds the files,
//! picks the variant for the backend and checks each statement.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::future::BoxFuture;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

use super::{ComponentDb, SqliteDb, guard};

/// One migration, read from disk.
#[derive(Debug, Clone)]
pub struct MigrationFile {
    /// Its number (the `NNNN` prefix).
    pub version: i64,
    /// The rest of the file name.
    pub description: String,
    /// The file.
    pub path: PathBuf,
    /// Its SQL.
    pub sql: String,
}

/// Reads the migrations in `dir` for a backend of kind `backend`
/// (`sqlite` or `postgres`), ordered by version.
pub fn read_dir(dir: &Path, backend: &str) -> anyhow::Result<Vec<MigrationFile>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to read migrations in `{}`", dir.display()))?;
    // version -> (portable file, this backend's variant)
    let mut found: BTreeMap<i64, (Option<MigrationFile>, Option<MigrationFile>)> = BTreeMap::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        let (stem, variant) = match stem.rsplit_once('.') {
            Some((stem, kind @ ("sqlite" | "postgres"))) => (stem, Some(kind)),
            Some(_) => {
                anyhow::bail!("migration `{}`: only `.sqlite.sql` and `.postgres.sql` variants exist", path.display())
            }
            None => (stem, None),
        };
        if variant.is_some_and(|v| v != backend) {
            continue;
        }
        let (number, description) = stem
            .split_once('_')
            .with_context(|| format!("migration `{}` must be named NNNN_description.sql", path.display()))?;
        let version: i64 =
            number.parse().with_context(|| format!("migration `{}` must start with a number", path.display()))?;
        let sql = std::fs::read_to_string(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
        guard::check_script(&sql).map_err(|e| anyhow::anyhow!("migration `{}`: {e}", path.display()))?;
        let file = MigrationFile { version, description: description.replace('_', " "), path, sql };
        let slot = found.entry(version).or_default();
        let target = if variant.is_some() { &mut slot.1 } else { &mut slot.0 };
        if let Some(other) = target.replace(file) {
            anyhow::bail!("two migrations are numbered {version}: `{}` and another", other.path.display());
        }
    }
    Ok(found.into_values().filter_map(|(portable, variant)| variant.or(portable)).collect())
}

#[derive(Debug)]
struct Files(Vec<MigrationFile>);

impl MigrationSource<'static> for Files {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .into_iter()
                .map(|f| {
                    Migration::new(
                        f.version,
                        Cow::Owned(f.description),
                        MigrationType::Simple,
                        Cow::Owned(f.sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Applies `files` not yet applied to `db`, in order, each in a transaction.
pub async fn apply(db: &ComponentDb, files: &[MigrationFile]) -> anyhow::Result<()> {
    let migrator = Migrator::new(Files(files.to_vec())).await.context("failed to prepare migrations")?;
    // Boxed as `Send` here, where the lifetimes are concrete: callers spawn
    // reloads onto tokio, and sqlx's generic `run` defeats the auto-trait
    // check further up.
    let run: BoxFuture<'_, Result<(), MigrateError>> = match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => Box::pin(migrator.run(pool)),
        ComponentDb::Postgres(pool) => Box::pin(migrator.run(pool)),
    };
    let result = run.await;
    result.map_err(|e| explain(e, files))
}

fn explain(error: MigrateError, files: &[MigrationFile]) -> anyhow::Error {
    let file_of = |version: i64| {
        files
            .iter()
            .find(|f| f.version == version)
            .map(|f| f.path.display().to_string())
            .unwrap_or_else(|| format!("number {version}"))
    };
    match error {
        MigrateError::VersionMismatch(v) => anyhow::anyhow!(
            "migration `{}` was edited after it was applied (checksum differs); add a new migration instead",
            file_of(v)
        ),
        MigrateError::VersionMissing(v) => {
            anyhow::anyhow!("migration {v} was applied to this database but its file is gone")
        }
        MigrateError::ExecuteMigration(e, v) => anyhow::anyhow!("migration `{}` failed: {e}", file_of(v)),
        other => anyhow::Error::new(other).context("failed to apply migrations"),
    }
}
