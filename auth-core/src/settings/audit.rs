//! Where the audit log goes, as a file writes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::audit::AuditFile;

/// The audit settings, written at the top of a program's file (`audit_log = "..."`).
///
/// ```
/// use auth_core::settings::AuditSettings;
///
/// let dir = tempfile::tempdir().unwrap();
/// let s: AuditSettings = toml::from_str("audit_log = \"audit.jsonl\"").unwrap();
/// let _sink = s.build(dir.path()).unwrap();
/// # use std::os::unix::fs::PermissionsExt;
/// let mode = std::fs::metadata(dir.path().join("audit.jsonl")).unwrap().permissions().mode();
/// assert_eq!(mode & 0o777, 0o600);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The JSON-lines audit log, relative to the data directory (default `audit.jsonl`).
    /// A new file is made readable by its owner only.
    pub audit_log: String,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            audit_log: "audit.jsonl".into(),
        }
    }
}

impl AuditSettings {
    /// The log's path under `base_dir`.
    pub fn path(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.audit_log)
    }

    /// Opens the log for appending (creating it with mode 0600), written behind the login
    /// path ([`AuditFile`]).
    pub fn build(&self, base_dir: &Path) -> Result<AuditFile, Invalid> {
        let path = self.path(base_dir);
        AuditFile::open(&path)
            .map_err(|e| Invalid::new("audit_log", format!("{}: {e}", path.display())))
    }
}
