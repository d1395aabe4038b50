//! What a crate's settings `build()` reports: which key is wrong, why, and how to fix it.

use std::fmt;

/// A setting that cannot be used, named by its key inside the section that holds it
/// (`"user_failures"`, `"map[2].pattern"`), so that whoever composed the file can point at
/// the line (or the environment variable) it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key inside the section; empty when the section as a whole is at fault.
    pub key: String,
    /// What is wrong, in the file's terms.
    pub message: String,
    /// How to fix it, when there is something better to say than the message.
    pub hint: Option<String>,
}

impl Invalid {
    /// `key` is wrong because of `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds how to fix it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same problem one level down: `key` inside `parent` (`map[2]` + `pattern`).
    pub fn within(mut self, parent: &str) -> Self {
        self.key = if self.key.is_empty() {
            parent.to_owned()
        } else if self.key.starts_with('[') {
            format!("{parent}{}", self.key)
        } else {
            format!("{parent}.{}", self.key)
        };
        self
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)?;
        } else {
            write!(f, "{}: {}", self.key, self.message)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}
