//! The embedded default backend: every record in one file, written crash-safely.
//!
//! Each change writes a new file beside the old one, fsyncs it, renames it over the old
//! one and fsyncs the directory, so a crash leaves either the old or the new file, never a
//! mix. An exclusive `flock` on `<file>.lock` serializes processes on one machine, and
//! versions give compare-and-set.
//!
//! What the file's format protects against (records put back, swapped, removed, added),
//! how a v1 file is migrated and why a v1 file is refused afterwards are documented on
//! [`FileStore`], where users read them; the layout is in `file/format.rs`.
//!
//! Reads are served from an in-memory view of the file, kept while the file is the same
//! one (device, inode, size and modification time: every write replaces the file), so a
//! login costs a `stat` and no disk read, and a change made by another process is seen at
//! the next read all the same.
//!
//! Reads write nothing and wait for no write: access times (`last_accessed`) are kept in
//! memory and written with the next change, or by a thread of the store's own once per
//! flush interval (default one second), apart from any login, without the directory
//! fsync. Another process sees them that much later, and a crash may lose the latest
//! ones, never a secret.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auth_core::clock::{SharedClock, system_clock};
use auth_core::store::RecordMeta;
use auth_core::{CredentialStore, Key, Precondition, Record, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretSlice};

use authenticated::MacState;
use format::{Body, Source, Stored};

mod authenticated;
mod format;

fn micros(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn time(us: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(us)
}

/// How a change locks the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    Shared,
    Exclusive,
    /// Exclusive if free now, else give up.
    TryExclusive,
}

/// How a change must be written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Persist {
    None,
    /// Access-time only: rename without fsync.
    Lazy,
    /// A value or version changed: fsync file and directory.
    Durable,
}

/// A [`CredentialStore`] in one local file.
///
/// # Tampering
///
/// The threat: someone who can write the wallet file but not read the master key puts
/// back an older copy of a record (re-enabling a disabled account, restoring an old
/// password), swaps two records, drops one or adds one.
///
/// A store with a MAC key ([`FileStore::with_mac_key`], a key derived from the master
/// key; [`Wallet::open_file`](crate::Wallet::open_file) sets it) writes the
/// authenticated format, v2: an HMAC-SHA256 in the header over the list of records and
/// their versions (and the versions of deleted names), and an HMAC in each record over
/// its name, version, times and value (the layout is in `src/file/format.rs`). Reading
/// the file checks both, and refuses it naming the record: put back from an older copy,
/// removed, added outside the wallet, or altered (or moved from another name).
/// Verification happens when the file is read into the in-memory view, so a login served
/// from the view pays nothing for it.
///
/// What it cannot see: the whole file put back from an older copy (every part authentic,
/// and consistent). Telling that apart needs a counter kept where the attacker cannot
/// write, which a directory the attacker can write does not offer.
///
/// A store without a MAC key ([`FileStore::new`] alone) writes the old format, v1: a
/// SHA-256 checksum anyone can recompute, which catches damage, not an edit. It refuses a
/// v2 file (only the key can tell whether one was tampered with; reading it unverified is
/// not offered) and a file marked as authenticated (below).
///
/// # Migration and downgrade
///
/// A keyed store reads a v1 file after checking its checksum, and rewrites it as v2 at its
/// first write, or at once, durably and under the exclusive lock, with
/// [`FileStore::migrate`]. It then writes a marker beside the file, `<file>.v2`, and from
/// then on any store refuses a v1 file (or no file) at that path: putting back a v1 file
/// would otherwise strip the MACs.
///
/// The marker is a plain file, not a keyed one, on purpose: what counts is its presence.
/// Writing one only makes the store stricter, so a key adds nothing; removing it is the
/// attack, and a key cannot stop that. A second check does not depend on the marker: a
/// keyed store refuses a v1 file holding any value sealed with its version (envelope
/// format 2, under a loaded key), which the auth-wallet that wrote v1 files never sealed,
/// so a v1 file made from an authenticated wallet's records is refused even with the
/// marker gone. What is left to an attacker who can remove the marker is putting back a
/// v1 file from before the migration: the same as putting back any older whole file.
/// (A v1 file written by a store without the key through a current
/// [`Wallet`](crate::Wallet) holds such values too, and is refused the same way: export it
/// with that store and import it into the keyed one.)
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    clock: SharedClock,
    access: Arc<AccessLog>,
    view: Arc<View>,
    mac: Arc<MacState>,
}

/// Which file a view was read from: every write replaces the file (a new inode), and
/// size and modification time catch an edit in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileId {
    /// The file at `path` now; `None` when there is none.
    fn of(path: &Path) -> Result<Option<Self>, std::io::Error> {
        use std::os::unix::fs::MetadataExt;
        match fs::metadata(path) {
            Ok(m) => Ok(Some(Self {
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
                mtime: m.mtime(),
                mtime_nsec: m.mtime_nsec(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The file's contents as last read, and which file they were read from.
#[derive(Debug, Default)]
struct View {
    current: Mutex<Option<(Option<FileId>, Arc<Body>)>>,
    /// The thread writing access times behind the reads has been started.
    flushing: std::sync::atomic::AtomicBool,
}

impl View {
    fn get(&self, id: Option<FileId>) -> Option<Arc<Body>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|(seen, _)| *seen == id)
            .map(|(_, body)| body.clone())
    }

    fn set(&self, id: Option<FileId>, body: Arc<Body>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some((id, body));
    }
}

/// Access times not yet written, and when they were last written.
#[derive(Debug)]
struct AccessLog {
    pending: Mutex<BTreeMap<String, u64>>,
    interval: Duration,
    path: PathBuf,
    /// The store's keys, for the write made when it is dropped.
    mac: Arc<MacState>,
}

impl AccessLog {
    fn new(path: PathBuf, interval: Duration, mac: Arc<MacState>) -> Self {
        Self {
            pending: Mutex::new(BTreeMap::new()),
            interval,
            path,
            mac,
        }
    }

    fn record(&self, key: &str, at: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = pending.entry(key.to_owned()).or_insert(at);
        *slot = (*slot).max(at);
    }

    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn overlay(&self, key: &str, stored: Option<u64>) -> Option<u64> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match (stored, pending.get(key).copied()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

fn apply_accesses(body: &mut Body, accesses: &BTreeMap<String, u64>) -> bool {
    let mut changed = false;
    for (key, at) in accesses {
        if let Some(s) = body.records.get_mut(key) {
            s.last_accessed = Some(s.last_accessed.map_or(*at, |t| t.max(*at)));
            changed = true;
        }
    }
    changed
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // Best effort: write what was read since the last change.
        let accesses = self.take();
        if accesses.is_empty() {
            return;
        }
        let store = FileStore {
            path: self.path.clone(),
            clock: system_clock(),
            access: Arc::new(AccessLog::new(
                PathBuf::new(),
                self.interval,
                Arc::default(),
            )),
            view: Arc::default(),
            mac: self.mac.clone(),
        };
        // Never wait here: another process may hold the lock for long (a rekey).
        let _ = store.blocking(Lock::TryExclusive, move |body, _| {
            let changed = apply_accesses(body, &accesses);
            Ok((
                (),
                if changed {
                    Persist::Lazy
                } else {
                    Persist::None
                },
            ))
        });
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unavailable(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl FileStore {
    /// A store in `path` (created on first write; its directory must exist), without a MAC
    /// key: it reads and writes the unauthenticated v1 format, and refuses an
    /// authenticated (v2) file. A wallet's file wants [`FileStore::with_mac_key`] (or
    /// [`Wallet::open_file`](crate::Wallet::open_file)); see [`FileStore`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mac = Arc::new(MacState::default());
        Self {
            access: Arc::new(AccessLog::new(
                path.clone(),
                Duration::from_secs(1),
                mac.clone(),
            )),
            path,
            clock: system_clock(),
            view: Arc::default(),
            mac,
        }
    }

    /// Writes access times at most every `interval` (default one second; zero writes on
    /// every read).
    #[must_use]
    pub fn with_access_flush_interval(mut self, interval: Duration) -> Self {
        self.access = Arc::new(AccessLog::new(
            self.path.clone(),
            interval,
            self.mac.clone(),
        ));
        self
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    fn read(&self) -> Result<Body, StoreError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.marked()? {
                    return Err(format::corrupt(
                        &self.path,
                        &format!(
                            "is missing but {} says the wallet wrote it: it was removed (to start an empty wallet on purpose, remove that marker too)",
                            self.marker_path().display()
                        ),
                    ));
                }
                return Ok(Body::default());
            }
            Err(e) => return Err(unavailable("cannot read", &self.path, e)),
        };
        let body = format::parse(&text, &self.path, self.mac.keys().as_ref())?;
        if body.source == Source::V1 && self.marked()? {
            return Err(format::corrupt(
                &self.path,
                &format!(
                    "is in the unauthenticated v1 format but {} says the wallet authenticated it: an older file was put back over it (a downgrade)",
                    self.marker_path().display()
                ),
            ));
        }
        Ok(body)
    }

    fn write(&self, body: &mut Body, durable: bool) -> Result<(), StoreError> {
        let text = {
            let keys = self.mac.keys();
            let text = format::render(body, keys.as_ref())?;
            body.source = if keys.is_some() {
                Source::V2
            } else {
                Source::V1
            };
            text
        };
        let dir = self.dir();
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            self.path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| unavailable("cannot create", &tmp, e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| unavailable("cannot write", &tmp, e))?;
            // Always: a rename of unsynced data can leave an empty file after a crash.
            f.sync_all()
                .map_err(|e| unavailable("cannot fsync", &tmp, e))?;
            fs::rename(&tmp, &self.path)
                .map_err(|e| unavailable("cannot replace", &self.path, e))?;
            if durable {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| unavailable("cannot fsync directory", dir, e))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The file's contents: the in-memory view while the file is the one it was read
    /// from, else read afresh (off the async runtime) under the shared lock.
    async fn snapshot(&self) -> Result<Arc<Body>, StoreError> {
        let id = FileId::of(&self.path).map_err(|e| unavailable("cannot stat", &self.path, e))?;
        if let Some(body) = self.view.get(id) {
            return Ok(body);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let body = this.blocking(Lock::Shared, |body, _| {
                Ok((std::mem::take(body), Persist::None))
            })?;
            let body = Arc::new(body);
            // The id taken before the read: if the file changed in between, the next
            // read sees another id and reads again.
            this.view.set(id, body.clone());
            Ok(body)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("file store task: {e}")))?
    }

    /// Starts, once per store, the thread that writes pending access times every flush
    /// interval, apart from any login: a read only notes its time in memory. The thread
    /// ends when it is the store's last user (its final times are then written by
    /// [`AccessLog`]'s drop).
    fn start_access_writer(&self) {
        if self.view.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let started = std::thread::Builder::new()
            .name("wallet-access-times".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(this.access.interval);
                    if Arc::strong_count(&this.access) <= 1 {
                        break;
                    }
                    let accesses = this.access.take();
                    if accesses.is_empty() {
                        continue;
                    }
                    let written = this.blocking(Lock::Exclusive, |body, _| {
                        let changed = apply_accesses(body, &accesses);
                        Ok((
                            (),
                            if changed {
                                Persist::Lazy
                            } else {
                                Persist::None
                            },
                        ))
                    });
                    if let Err(e) = written {
                        // Best effort: they stay pending for the next write.
                        for (k, at) in accesses {
                            this.access.record(&k, at);
                        }
                        tracing::warn!(error = %e, "could not write wallet access times");
                    }
                }
            });
        if started.is_err() {
            self.view.flushing.store(false, Ordering::Release);
        }
    }

    /// Runs `change` on the file's contents under the lock (exclusive when it may write),
    /// writing back what it asks for. Blocking.
    fn blocking<R>(
        &self,
        exclusive: Lock,
        change: impl FnOnce(&mut Body, u64) -> Result<(R, Persist), StoreError>,
    ) -> Result<R, StoreError> {
        let lock_path = self.lock_path();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| unavailable("cannot open the lock file", &lock_path, e))?;
        match exclusive {
            Lock::Shared => lock.lock_shared(),
            Lock::Exclusive => lock.lock(),
            Lock::TryExclusive => lock
                .try_lock()
                .map_err(|_| std::io::ErrorKind::WouldBlock.into()),
        }
        .map_err(|e| unavailable("cannot lock", &lock_path, e))?;
        let now = micros(self.clock.now());
        let mut body = self.read()?;
        let (result, write) = change(&mut body, now)?;
        match write {
            Persist::None => {}
            Persist::Lazy => self.write(&mut body, false)?,
            Persist::Durable => self.write(&mut body, true)?,
        }
        // Only under the exclusive lock: a read on the login path never writes. A marker
        // that cannot be written fails nothing that was written; the next write tries again.
        if exclusive != Lock::Shared
            && body.source == Source::V2
            && let Err(e) = self.mark()
        {
            tracing::warn!(error = %e, "could not mark the wallet file as authenticated");
        }
        if write != Persist::None
            && let Ok(id) = FileId::of(&self.path)
        {
            // Still under the lock: the file is the one just written.
            self.view.set(id, Arc::new(body));
        }
        drop(lock);
        Ok(result)
    }

    /// [`FileStore::blocking`] off the async runtime.
    fn locked<R: Send + 'static>(
        &self,
        exclusive: Lock,
        change: impl FnOnce(&mut Body, u64) -> Result<(R, Persist), StoreError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + Send + 'static {
        let this = self.clone();
        async move {
            tokio::task::spawn_blocking(move || this.blocking(exclusive, change))
                .await
                .map_err(|e| StoreError::Unavailable(format!("file store task: {e}")))?
        }
    }

    /// A change under the exclusive lock that also writes the pending access times.
    fn locked_write<R: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Body, u64) -> Result<(R, Persist), StoreError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + Send + 'static {
        let access = self.access.clone();
        self.locked(Lock::Exclusive, move |body, now| {
            let accesses = access.take();
            let had_accesses = apply_accesses(body, &accesses);
            match change(body, now) {
                Ok((r, Persist::None)) if had_accesses => Ok((r, Persist::Lazy)),
                Ok(done) => Ok(done),
                Err(e) => {
                    // Keep them for the next write.
                    for (k, at) in accesses {
                        access.record(&k, at);
                    }
                    Err(e)
                }
            }
        })
    }
}

fn meta(key: &Key, s: &Stored) -> RecordMeta {
    RecordMeta {
        key: key.clone(),
        created: time(s.created),
        updated: time(s.updated),
        last_accessed: s.last_accessed.map(time),
        version: s.version,
    }
}

fn apply_put(
    body: &mut Body,
    key: &Key,
    encoded: String,
    precondition: Precondition,
    now: u64,
) -> Result<u64, StoreError> {
    let current = body.records.get(key.as_str()).map(|s| s.version);
    precondition.check(current)?;
    Ok(match body.records.get_mut(key.as_str()) {
        Some(s) => {
            s.value = encoded;
            s.updated = now;
            s.version += 1;
            s.version
        }
        None => {
            let version = body.deleted.remove(key.as_str()).map_or(1, |v| v + 1);
            body.records.insert(
                key.as_str().to_owned(),
                Stored {
                    value: encoded,
                    created: now,
                    updated: now,
                    last_accessed: None,
                    version,
                },
            );
            version
        }
    })
}

#[async_trait]
impl CredentialStore for FileStore {
    async fn get(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        let body = self.snapshot().await?;
        let Some(stored) = body.records.get(key.as_str()) else {
            return Ok(None);
        };
        let value = B64
            .decode(&stored.value)
            .map_err(|_| StoreError::Corrupted(format!("record {key} is not base64")))?;
        let now = micros(self.clock.now());
        self.access.record(key.as_str(), now);
        let mut meta = meta(key, stored);
        meta.last_accessed = Some(time(now));
        if self.access.interval.is_zero() {
            // Written with every read: for tests that look at the file.
            self.locked_write(|_, _| Ok(((), Persist::None))).await?;
        } else {
            self.start_access_writer();
        }
        Ok(Some(Record {
            value: value.into(),
            meta,
        }))
    }

    async fn put(
        &self,
        key: &Key,
        value: SecretSlice<u8>,
        precondition: Precondition,
    ) -> Result<u64, StoreError> {
        let key = key.clone();
        let encoded = B64.encode(value.expose_secret());
        self.locked_write(move |body, now| {
            let version = apply_put(body, &key, encoded, precondition, now)?;
            Ok((version, Persist::Durable))
        })
        .await
    }

    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<bool, StoreError> {
        let key = key.clone();
        self.locked_write(move |body, _| {
            let current = body.records.get(key.as_str()).map(|s| s.version);
            if current.is_none() && !matches!(precondition, Precondition::Version(_)) {
                return Ok((false, Persist::None));
            }
            precondition.check(current)?;
            let removed = body.records.remove(key.as_str());
            if let Some(s) = &removed {
                body.deleted.insert(key.as_str().to_owned(), s.version);
            }
            Ok((removed.is_some(), Persist::Durable))
        })
        .await
    }

    async fn read_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>, StoreError> {
        let body = self.snapshot().await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(match body.records.get(key.as_str()) {
                Some(stored) => Some(Record {
                    value: B64
                        .decode(&stored.value)
                        .map_err(|_| StoreError::Corrupted(format!("record {key} is not base64")))?
                        .into(),
                    meta: meta(key, stored),
                }),
                None => None,
            });
        }
        Ok(out)
    }

    async fn put_many(
        &self,
        items: Vec<(Key, SecretSlice<u8>, Precondition)>,
    ) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
        let items: Vec<(Key, String, Precondition)> = items
            .into_iter()
            .map(|(k, v, p)| (k, B64.encode(v.expose_secret()), p))
            .collect();
        // One locked read and one durable write for the whole batch.
        self.locked_write(move |body, now| {
            let results: Vec<Result<u64, StoreError>> = items
                .into_iter()
                .map(|(key, encoded, precondition)| {
                    apply_put(body, &key, encoded, precondition, now)
                })
                .collect();
            let changed = results.iter().any(Result::is_ok);
            Ok((
                results,
                if changed {
                    Persist::Durable
                } else {
                    Persist::None
                },
            ))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<RecordMeta>, StoreError> {
        let prefix = prefix.to_owned();
        let access = self.access.clone();
        self.locked(Lock::Shared, move |body, _| {
            let listed = body
                .records
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .filter_map(|(k, s)| {
                    Key::new(k.clone()).ok().map(|key| {
                        let mut m = meta(&key, s);
                        m.last_accessed = access.overlay(k, s.last_accessed).map(time);
                        m
                    })
                })
                .collect();
            Ok((listed, Persist::None))
        })
        .await
    }
}
