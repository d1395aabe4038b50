//! The shared backend for several server instances: a PostgreSQL table, created by the
//! embedded migrations, with compare-and-set on a version column.
//!
//! # Tampering
//!
//! Against someone who can write the table but not read the master key, the
//! [`Wallet`](crate::Wallet)'s sealing is what protects the rows: each value is bound to
//! its name and to the version of the row that holds it. So a value swapped into another
//! name's row, or put back without its version (an older password copied over a newer
//! one), does not open, and the error says which. A value sealed before versions were
//! bound is refused once the wallet has migrated (see
//! [`Wallet::migrate`](crate::Wallet::migrate) for the limits of that).
//!
//! What remains, and the associated data alone cannot see: a whole row put back with its
//! old version (value and version together, as a restored backup of the row has them),
//! a row deleted, or a deleted row put back. The file store's MAC over all records sees
//! these; here they rest on the database's own access control, and on its audit.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::clock::{SharedClock, system_clock};
use auth_core::store::RecordMeta;
use auth_core::{CredentialStore, Key, Precondition, Record, StoreError};
use secrecy::{ExposeSecret, SecretSlice};
use sqlx::Row;
use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Create, or replace a live record; a deleted row is re-created above its last version.
const UPSERT: &str = "INSERT INTO auth_wallet_records AS t (key, value, created, updated, version) \
     VALUES ($1, $2, $3, $3, 1) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated, \
       version = t.version + 1, \
       created = CASE WHEN t.deleted THEN excluded.created ELSE t.created END, \
       last_accessed = CASE WHEN t.deleted THEN NULL ELSE t.last_accessed END, \
       deleted = false \
     RETURNING version";

/// Create only: a live record is a conflict (no row returned).
const UPSERT_IF_ABSENT: &str = "INSERT INTO auth_wallet_records AS t (key, value, created, updated, version) \
     VALUES ($1, $2, $3, $3, 1) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated, \
       version = t.version + 1, created = excluded.created, last_accessed = NULL, deleted = false \
     WHERE t.deleted \
     RETURNING version";

/// A [`CredentialStore`] in a PostgreSQL table (`auth_wallet_records`).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    clock: SharedClock,
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn time(us: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("postgres: {e}"))
}

fn version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn meta(key: &Key, row: &PgRow) -> Result<RecordMeta, StoreError> {
    Ok(RecordMeta {
        key: key.clone(),
        created: time(row.try_get("created").map_err(db)?),
        updated: time(row.try_get("updated").map_err(db)?),
        last_accessed: row
            .try_get::<Option<i64>, _>("last_accessed")
            .map_err(db)?
            .map(time),
        version: version(row.try_get("version").map_err(db)?),
    })
}

impl PostgresStore {
    /// Connects to `url` (a libpq URL) and applies the migrations.
    ///
    /// TLS follows the URL's `sslmode` and `sslrootcert`, as libpq's do: `sslmode=verify-full`
    /// verifies the server's certificate and that it names the host. Without `sslmode`, the
    /// default (`prefer`) encrypts when the server offers TLS but verifies nothing, so any
    /// machine on the path could answer; across a network use
    /// [`PostgresStore::connect_verified`] or `sslmode=verify-full` in the URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db)?;
        Self::connect_with(options).await
    }

    /// Connects to `url` over TLS with `sslmode=verify-full`: the server's certificate
    /// must chain to a CA in `ca_file` (PEM) and name the host, whatever the URL says.
    pub async fn connect_verified(url: &str, ca_file: &Path) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db)?
            .ssl_mode(PgSslMode::VerifyFull)
            .ssl_root_cert(ca_file);
        Self::connect_with(options).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db)?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool and applies the migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres migrations: {e}")))?;
        Ok(Self {
            pool,
            clock: system_clock(),
        })
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    async fn current(&self, key: &Key) -> Result<Option<u64>, StoreError> {
        let row =
            sqlx::query("SELECT version FROM auth_wallet_records WHERE key = $1 AND NOT deleted")
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        row.map(|r| r.try_get::<i64, _>("version").map(version).map_err(db))
            .transpose()
    }
}

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(
            "UPDATE auth_wallet_records SET last_accessed = GREATEST(last_accessed, $2) \
             WHERE key = $1 AND NOT deleted \
             RETURNING value, created, updated, last_accessed, version",
        )
        .bind(key.as_str())
        .bind(micros(self.clock.now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let value: Vec<u8> = row.try_get("value").map_err(db)?;
        Ok(Some(Record {
            value: value.into(),
            meta: meta(key, &row)?,
        }))
    }

    async fn put(
        &self,
        key: &Key,
        value: SecretSlice<u8>,
        precondition: Precondition,
    ) -> Result<u64, StoreError> {
        let now = micros(self.clock.now());
        let value = value.expose_secret();
        let row = match precondition {
            Precondition::None | Precondition::Absent => {
                let sql = if precondition == Precondition::Absent {
                    UPSERT_IF_ABSENT
                } else {
                    UPSERT
                };
                sqlx::query(sql)
                    .bind(key.as_str())
                    .bind(value)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?
            }
            Precondition::Version(v) => sqlx::query(
                "UPDATE auth_wallet_records SET value = $2, updated = $3, version = version + 1 \
                 WHERE key = $1 AND NOT deleted AND version = $4 RETURNING version",
            )
            .bind(key.as_str())
            .bind(value)
            .bind(now)
            .bind(signed(v))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?,
        };
        match row {
            Some(r) => Ok(version(r.try_get("version").map_err(db)?)),
            None => Err(StoreError::Conflict {
                current: self.current(key).await?,
            }),
        }
    }

    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<bool, StoreError> {
        let expected = match precondition {
            Precondition::Absent => {
                return match self.current(key).await? {
                    None => Ok(false),
                    current => Err(StoreError::Conflict { current }),
                };
            }
            Precondition::Version(v) => Some(signed(v)),
            Precondition::None => None,
        };
        let row = sqlx::query(
            "UPDATE auth_wallet_records SET deleted = true, value = NULL \
             WHERE key = $1 AND NOT deleted AND ($2::bigint IS NULL OR version = $2) RETURNING version",
        )
        .bind(key.as_str())
        .bind(expected)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        match (row, expected) {
            (Some(_), _) => Ok(true),
            (None, None) => Ok(false),
            (None, Some(_)) => Err(StoreError::Conflict {
                current: self.current(key).await?,
            }),
        }
    }

    async fn read_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        let names: Vec<&str> = keys.iter().map(Key::as_str).collect();
        let rows = sqlx::query(
            "SELECT key, value, created, updated, last_accessed, version FROM auth_wallet_records \
             WHERE NOT deleted AND key = ANY($1)",
        )
        .bind(&names)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get("key").map_err(db)?;
            found.insert(name, row);
        }
        keys.iter()
            .map(|k| {
                found
                    .get(k.as_str())
                    .map(|row| {
                        let value: Vec<u8> = row.try_get("value").map_err(db)?;
                        Ok(Record {
                            value: value.into(),
                            meta: meta(k, row)?,
                        })
                    })
                    .transpose()
            })
            .collect()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<RecordMeta>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, created, updated, last_accessed, version FROM auth_wallet_records \
             WHERE NOT deleted AND starts_with(key, $1) ORDER BY key",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get("key").map_err(db)?;
                let key = Key::new(key).map_err(StoreError::InvalidKey)?;
                meta(&key, row)
            })
            .collect()
    }
}
