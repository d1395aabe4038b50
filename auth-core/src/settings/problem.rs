//! Problems found in a configuration, each with where it came from.

use std::fmt;

/// Where a setting came from: the line of a file, an environment variable, or nowhere (a
/// default, or a setting missing altogether).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Line `line` (from 1) of the file `file`.
    File {
        /// The file's name as the user knows it.
        file: String,
        /// The line, from 1.
        line: usize,
    },
    /// The environment variable of that name.
    Env(String),
    /// Neither: a default, or a setting the configuration lacks.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { file, line } => write!(f, "{file}:{line}"),
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::Default => f.write_str("configuration"),
        }
    }
}

/// One problem: where, which setting, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where the offending value (or its section) was written.
    pub origin: Origin,
    /// The setting's path (`rate_limit.user_failures`, `rule[2].method`); empty for the
    /// file as a whole.
    pub setting: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is more to say than the message.
    pub hint: Option<String>,
}

impl ConfigProblem {
    /// A problem at `origin` with `setting`.
    pub fn new(origin: Origin, setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            origin,
            setting: setting.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds how to fix it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.setting.is_empty() {
            write!(f, "{}: ", self.setting)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem of a configuration, not only the first: what `--check-config` prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order they were found (file order within a section).
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// The problems as one error, or `Ok` when there are none.
    pub fn check(problems: Vec<ConfigProblem>) -> Result<(), Self> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Self { problems })
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for crate::Failure {
    fn from(e: ConfigError) -> Self {
        crate::Failure::new(crate::ConfigurationError::Invalid, e.to_string())
    }
}
