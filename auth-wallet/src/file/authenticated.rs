//! The keyed side of the file store: its MAC keys (set, rotated by a re-key), the
//! migration of a v1 file, and the marker that refuses a v1 file afterwards (the design is
//! documented on [`FileStore`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use auth_core::StoreError;

use super::format::{MacKeys, Source};
use super::{AccessLog, FileStore, Persist, unavailable};
use crate::key::FileMacKey;

/// The marker's text: it says what it is to whoever finds it.
const MARKER_TEXT: &str = "auth-wallet-file v2\nThe wallet file beside this one is authenticated with the master key; a v1 file (or none) at its path is refused. Remove this file only to start an empty wallet or restore a v1 backup on purpose.\n";

/// The store's MAC keys (none: the unauthenticated v1 format), shared by its clones and
/// its access log, and changed in place by a re-key.
#[derive(Debug, Default)]
pub(super) struct MacState {
    keys: RwLock<Option<MacKeys>>,
    /// The marker is known to be there: not looked for again.
    marked: AtomicBool,
}

impl MacState {
    pub(super) fn keyed(key: FileMacKey) -> Self {
        Self {
            keys: RwLock::new(Some(MacKeys {
                current: key,
                previous: None,
            })),
            marked: AtomicBool::new(false),
        }
    }

    pub(super) fn keys(&self) -> std::sync::RwLockReadGuard<'_, Option<MacKeys>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn change(&self, f: impl FnOnce(&mut MacKeys)) {
        if let Some(keys) = self
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            f(keys);
        }
    }
}

impl FileStore {
    /// Authenticates the file with `key` (from
    /// [`MasterKey::file_mac_key`](crate::MasterKey::file_mac_key)): the file is written
    /// in the v2 format and refused when it was tampered with (see [`FileStore`]). A
    /// [`Wallet`](crate::Wallet) re-keys the file along with its records only when it
    /// knows the store: build it with
    /// [`Wallet::over_file`](crate::Wallet::over_file) or
    /// [`Wallet::open_file`](crate::Wallet::open_file), not `Wallet::new`.
    #[must_use]
    pub fn with_mac_key(mut self, key: FileMacKey) -> Self {
        self.mac = Arc::new(MacState::keyed(key));
        self.access = Arc::new(AccessLog::new(
            self.path.clone(),
            self.access.interval,
            self.mac.clone(),
        ));
        self.view = Arc::default();
        self
    }

    /// Also reads a file authenticated under `key` (the previous master key's, after an
    /// interrupted re-key); writes use the key of [`FileStore::with_mac_key`]. Without
    /// that key it does nothing.
    #[must_use]
    pub fn with_previous_mac_key(self, key: FileMacKey) -> Self {
        self.set_previous_mac_key(key);
        self
    }

    pub(crate) fn set_previous_mac_key(&self, key: FileMacKey) {
        self.mac.change(|keys| keys.previous = Some(key));
    }

    /// Writes with `key` from now on, still reading a file authenticated under the key it
    /// replaces (a re-key in progress).
    pub(crate) fn rotate_mac_key(&self, key: FileMacKey) {
        self.mac.change(|keys| {
            let old = std::mem::replace(&mut keys.current, key);
            keys.previous = Some(old);
        });
    }

    pub(crate) fn forget_previous_mac_key(&self) {
        self.mac.change(|keys| keys.previous = None);
    }

    /// Rewrites the file under the current MAC key (the end of a re-key).
    pub(crate) async fn reauthenticate(&self) -> Result<(), StoreError> {
        self.locked_write(|body, _| {
            let write = if body.source == Source::Missing {
                Persist::None
            } else {
                Persist::Durable
            };
            Ok(((), write))
        })
        .await
    }

    /// Brings a v1 file to the authenticated format now, durably and under the exclusive
    /// lock, after checking its checksum, and marks the file as authenticated; returns
    /// whether it rewrote the file. A v2 file (or none) is left as it is, so a second call
    /// does nothing. Without a MAC key it does nothing.
    pub async fn migrate(&self) -> Result<bool, StoreError> {
        if self.mac.keys().is_none() {
            return Ok(false);
        }
        self.locked_write(|body, _| {
            let v1 = body.source == Source::V1;
            Ok((v1, if v1 { Persist::Durable } else { Persist::None }))
        })
        .await
    }

    /// The marker that says the file is authenticated (see [`FileStore`]).
    pub(super) fn marker_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".v2");
        self.path.with_file_name(name)
    }

    pub(super) fn marked(&self) -> Result<bool, StoreError> {
        let marker = self.marker_path();
        match fs::symlink_metadata(&marker) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(unavailable("cannot stat", &marker, e)),
        }
    }

    /// Writes the marker if it is not there: after the v2 file, so that a crash between
    /// the two leaves a v2 file without a marker (written at the next write), never a
    /// marker beside a v1 file. Under the exclusive lock.
    pub(super) fn mark(&self) -> Result<(), StoreError> {
        if self.mac.marked.load(Ordering::Acquire) {
            return Ok(());
        }
        let dir = self.dir();
        if !self.marked()? {
            let marker = self.marker_path();
            let result = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&marker)
                .and_then(|mut f| {
                    f.write_all(MARKER_TEXT.as_bytes())?;
                    f.sync_all()
                });
            match result {
                Ok(()) => File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| unavailable("cannot fsync directory", dir, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(unavailable("cannot write", &marker, e)),
            }
        }
        self.mac.marked.store(true, Ordering::Release);
        Ok(())
    }
}
