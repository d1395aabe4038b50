//! A TOML file with the environment laid over it, remembering where every value came from,
//! so a file problem names its line and an environment problem names its variable.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::Invalid;
use super::fields::fields_of;
use super::problem::{ConfigProblem, Origin};

/// One step of a setting's path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// An environment variable that overrides a setting.
#[derive(Debug)]
struct EnvOverride {
    var: String,
    path: Vec<Segment>,
    /// The value, preceded by blanks that place it after the file and every earlier
    /// variable, so that spans tell apart where a value came from.
    padded: String,
    start: usize,
}

/// The text of a configuration: a file and the environment variables laid over it.
///
/// `AUTH_RATE_LIMIT__USER_FAILURES=10` sets `user_failures` in `[rate_limit]`: the prefix,
/// then the path with `__` between its steps, in capitals; an array element is its index
/// (`AUTH_RULE__0__METHOD=scram`). A value is read as TOML when it is one (`10`, `true`,
/// `["10.0.0.0/8"]`, `"quoted"`), else as a string (`127.0.0.1:6432`, `60s`, `scram`).
///
/// ```
/// use auth_core::settings::SettingsSource;
///
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Limits { user_failures: u32 }
///
/// let source = SettingsSource::new("gateway.toml", "[limits]\nuser_failures = 5\n")
///     .with_env("AUTH_", [("AUTH_LIMITS__USER_FAILURES".to_owned(), "x".to_owned())]);
/// let settings = source.parse().unwrap();
/// let problem = settings.section::<Limits>("limits").unwrap_err();
/// assert!(problem.to_string().starts_with("environment variable AUTH_LIMITS__USER_FAILURES"));
/// ```
#[derive(Debug)]
pub struct SettingsSource {
    name: String,
    text: String,
    prefix: String,
    env: Vec<EnvOverride>,
}

impl SettingsSource {
    /// The file `name` (as the user should read it in messages) holding `text`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            prefix: String::new(),
            env: Vec::new(),
        }
    }

    /// Lays the variables starting with `prefix` over the file (the others are ignored);
    /// pass `std::env::vars()`.
    pub fn with_env(
        mut self,
        prefix: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.prefix = prefix.to_owned();
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.len() > prefix.len())
            .collect();
        // The same result whatever order the environment lists them in.
        vars.sort();
        let mut offset = self.text.len() + 1;
        for (var, value) in vars {
            let path = var[prefix.len()..]
                .split("__")
                .map(|step| match step.parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Key(step.to_ascii_lowercase()),
                })
                .collect();
            let padded = format!("{}{value}", " ".repeat(offset));
            offset += value.len() + 1;
            self.env.push(EnvOverride {
                var,
                path,
                start: padded.len() - value.len(),
                padded,
            });
        }
        self
    }

    /// The variable that sets `path` (`["rate_limit", "user_failures"]`), for messages
    /// and documentation.
    pub fn env_var(prefix: &str, path: &[&str]) -> String {
        format!("{prefix}{}", path.join("__").to_ascii_uppercase())
    }

    /// Parses the file and lays the environment over it, or every syntax problem, each
    /// with its line.
    pub fn parse(&self) -> Result<Settings<'_>, Vec<ConfigProblem>> {
        let (root, errors) = DeTable::parse_recoverable(&self.text);
        let mut problems: Vec<ConfigProblem> = errors
            .iter()
            .map(|e| {
                let origin = e
                    .span()
                    .map_or(Origin::Default, |s| self.origin_of_span(&s));
                ConfigProblem::new(origin, "", e.message().trim())
                    .hint("the file is not valid TOML (https://toml.io)")
            })
            .collect();
        problems.sort_by_key(|p| match &p.origin {
            Origin::File { line, .. } => *line,
            _ => usize::MAX,
        });
        let mut root = DeValue::Table(root.into_inner());
        for env in &self.env {
            let span = env.start..env.padded.len();
            let value = parse_env_value(&env.padded, env.start);
            if let Err(message) = overlay(&mut root, &env.path, value, span) {
                problems.push(ConfigProblem::new(
                    Origin::Env(env.var.clone()),
                    "",
                    message,
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let DeValue::Table(root) = root else {
            unreachable!("the root stays a table")
        };
        Ok(Settings { source: self, root })
    }

    /// The line, or the variable, that `span` lies in.
    fn origin_of_span(&self, span: &Range<usize>) -> Origin {
        if span.start <= self.text.len() {
            let line = self.text[..span.start].matches('\n').count() + 1;
            return Origin::File {
                file: self.name.clone(),
                line,
            };
        }
        self.env
            .iter()
            .find(|e| span.start >= e.start - 1 && span.start <= e.padded.len())
            .map_or(Origin::Default, |e| Origin::Env(e.var.clone()))
    }
}

/// A variable's value: TOML when it parses as a value, else the text as a string.
fn parse_env_value(padded: &str, start: usize) -> Spanned<DeValue<'_>> {
    let text = &padded[start..];
    let toml_like = text.starts_with(['"', '\'', '[', '{'])
        || matches!(text, "true" | "false")
        || text.parse::<i64>().is_ok()
        || (text.starts_with("0o") || text.starts_with("0x"));
    if toml_like && let Ok(value) = DeValue::parse(text) {
        return shift(value, start);
    }
    Spanned::new(start..padded.len(), DeValue::String(Cow::Borrowed(text)))
}

/// `value` with every span moved `by` bytes on.
fn shift(value: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = value.span();
    let span = span.start + by..span.end + by;
    let inner = match value.into_inner() {
        DeValue::Array(items) => {
            let mut shifted = toml::de::DeArray::new();
            for item in items.iter() {
                shifted.push(shift(item.clone(), by));
            }
            DeValue::Array(shifted)
        }
        DeValue::Table(table) => {
            let mut shifted = DeTable::new();
            for (k, v) in table.iter() {
                let ks = k.span();
                shifted.insert(
                    Spanned::new(ks.start + by..ks.end + by, k.get_ref().clone()),
                    shift(v.clone(), by),
                );
            }
            DeValue::Table(shifted)
        }
        other => other,
    };
    Spanned::new(span, inner)
}

/// Puts `value` at `path` in `node`, making the tables on the way.
fn overlay<'a>(
    node: &mut DeValue<'a>,
    path: &[Segment],
    value: Spanned<DeValue<'a>>,
    span: Range<usize>,
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Err("names no setting".into());
    };
    let slot: &mut Spanned<DeValue<'a>> = match (node, first) {
        (DeValue::Table(table), Segment::Key(key)) => {
            let key = Spanned::new(span.clone(), Cow::Owned(key.clone()));
            if rest.is_empty() {
                table.insert(key, value);
                return Ok(());
            }
            table
                .entry(key)
                .or_insert_with(|| Spanned::new(span.clone(), DeValue::Table(DeTable::new())))
        }
        (DeValue::Array(array), Segment::Index(i)) => {
            if *i > array.len() {
                return Err(format!(
                    "index {i} is past the {} element(s) written; the next one is {}",
                    array.len(),
                    array.len()
                ));
            }
            if *i == array.len() {
                array.push(Spanned::new(span.clone(), DeValue::Table(DeTable::new())));
            }
            let items: &mut [Spanned<DeValue<'a>>] = &mut *array;
            if rest.is_empty() {
                items[*i] = value;
                return Ok(());
            }
            &mut items[*i]
        }
        (DeValue::Table(_), Segment::Index(i)) => {
            return Err(format!(
                "index {i} where the setting is a table, not a list"
            ));
        }
        (_, Segment::Key(key)) => {
            return Err(format!("`{key}` is inside a value that is not a table"));
        }
        (_, Segment::Index(i)) => {
            return Err(format!("index {i} into a value that is not a list"));
        }
    };
    overlay(slot.get_mut(), rest, value, span)
}

/// A parsed configuration: sections are read out of it one at a time, each into the
/// settings type of the crate that owns it, so every section's problems are found.
#[derive(Debug)]
pub struct Settings<'a> {
    source: &'a SettingsSource,
    root: DeTable<'a>,
}

/// One element of an array of tables (`[[rule]]`), with where it was written.
#[derive(Debug)]
pub struct Element<T> {
    /// Its index in the array.
    pub index: usize,
    /// Where its table starts.
    pub origin: Origin,
    /// The element, or why it cannot be read.
    pub value: Result<T, ConfigProblem>,
}

impl<'a> Settings<'a> {
    /// The table `key` as `T` (`T::default()`'s values for what it leaves out, through
    /// `#[serde(default)]`); an absent table reads as an empty one.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigProblem> {
        match self.root.get(key) {
            Some(value) => self.read(value.clone(), key),
            None => self.read(Spanned::new(0..0, DeValue::Table(DeTable::new())), key),
        }
    }

    /// The table `key` as `T` when it is present.
    pub fn optional<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigProblem> {
        self.root
            .get(key)
            .map(|value| self.read(value.clone(), key))
            .transpose()
    }

    /// The array of tables `key` (`[[rule]]`), each element read on its own so that one
    /// bad element does not hide the problems of the others. `split` names keys that are
    /// not `T`'s but the caller's: they are taken out of each element first and handed
    /// back as a table of their own.
    pub fn each<T: DeserializeOwned, E: DeserializeOwned>(
        &self,
        key: &str,
        split: &[&str],
    ) -> Result<Vec<Element<(T, E)>>, ConfigProblem> {
        let Some(value) = self.root.get(key) else {
            return Ok(Vec::new());
        };
        let DeValue::Array(array) = value.get_ref() else {
            return Err(ConfigProblem::new(
                self.origin_of_span(&value.span()),
                key,
                format!("`{key}` is a list of tables: write each as [[{key}]]"),
            ));
        };
        Ok(array
            .iter()
            .enumerate()
            .map(|(index, element)| {
                let path = format!("{key}[{index}]");
                let origin = self.origin_of_span(&element.span());
                let value = match element.get_ref() {
                    DeValue::Table(table) => {
                        let (own, theirs) = split_table(table, split);
                        let span = element.span();
                        self.read::<T>(Spanned::new(span.clone(), DeValue::Table(own)), &path)
                            .and_then(|t| {
                                self.read::<E>(Spanned::new(span, DeValue::Table(theirs)), &path)
                                    .map(|e| (t, e))
                            })
                    }
                    _ => Err(ConfigProblem::new(
                        origin.clone(),
                        &path,
                        format!("each `{key}` is a table: write it as [[{key}]]"),
                    )),
                };
                Element {
                    index,
                    origin,
                    value,
                }
            })
            .collect())
    }

    /// The top-level keys that `T`'s fields name, as `T`: a crate's settings written
    /// at the top of the file rather than in a table of their own.
    pub fn top_level<T: DeserializeOwned>(&self) -> Result<T, ConfigProblem> {
        let fields = fields_of::<T>();
        let (_, own) = split_table(&self.root, fields);
        self.read(Spanned::new(0..0, DeValue::Table(own)), "")
    }

    /// The top-level keys that are none of `known`: problems when the file wrote them,
    /// and (second) warnings when only the environment did, because unrelated programs
    /// put variables with the same prefix there (`AUTH_SERVICE_HOST` from a Kubernetes
    /// service named `auth`).
    pub fn unknown_keys(&self, known: &[&str]) -> (Vec<ConfigProblem>, Vec<ConfigProblem>) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        for (key, _) in self.root.iter() {
            let key_text: &str = key.get_ref();
            if known.contains(&key_text) {
                continue;
            }
            let origin = self.origin_of_span(&key.span());
            let message = match origin {
                Origin::Env(_) => {
                    "ignored: no such setting (other programs' variables may share the prefix)"
                }
                _ => "no such setting",
            };
            let mut problem = ConfigProblem::new(origin.clone(), key_text, message);
            if let Some(near) = closest(key_text, known) {
                problem = problem.hint(match &origin {
                    Origin::Env(_) => format!(
                        "did you mean {}?",
                        SettingsSource::env_var(&self.source.prefix, &[near])
                    ),
                    _ => format!("did you mean `{near}`?"),
                });
            }
            match origin {
                Origin::Env(_) => warnings.push(problem),
                _ => problems.push(problem),
            }
        }
        (problems, warnings)
    }

    /// Where `path` (`rate_limit.user_failures`, `rule[2].method`) was written: the
    /// innermost part of it that the file or environment wrote.
    pub fn origin(&self, path: &str) -> Origin {
        let mut node: Option<&Spanned<DeValue<'a>>> = None;
        let mut origin = Origin::Default;
        for step in parse_path(path) {
            let next = match (node.map(Spanned::get_ref), &step) {
                (None, Segment::Key(k)) => self.root.get(k.as_str()),
                (Some(DeValue::Table(t)), Segment::Key(k)) => t.get(k.as_str()),
                (Some(DeValue::Array(a)), Segment::Index(i)) => a.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            // A key's line is its value's line; for a table, where the table starts.
            origin = self.origin_of_span(&next.span());
            node = Some(next);
        }
        origin
    }

    /// A crate's `build()` refusal inside the section at `section` (`""` for top-level
    /// keys), placed where its key was written.
    pub fn locate(&self, section: &str, invalid: Invalid) -> ConfigProblem {
        let path = match (section.is_empty(), invalid.key.is_empty()) {
            (true, _) => invalid.key.clone(),
            (false, true) => section.to_owned(),
            (false, false) => format!("{section}.{}", invalid.key),
        };
        let problem = ConfigProblem::new(self.origin(&path), path, invalid.message);
        match invalid.hint {
            Some(hint) => problem.hint(hint),
            None => problem,
        }
    }

    /// `value` as `T`, or the problem placed where serde stopped.
    fn read<T: DeserializeOwned>(
        &self,
        value: Spanned<DeValue<'a>>,
        path: &str,
    ) -> Result<T, ConfigProblem> {
        let whole = value.span();
        T::deserialize(ValueDeserializer::from(value)).map_err(|e| {
            let span = e.span().unwrap_or(whole);
            let message = e.message().trim().to_owned();
            let mut problem = ConfigProblem::new(self.origin_of_span(&span), path, &message);
            if let Some((field, hint)) = unknown_field_hint(&message) {
                problem.setting = match path {
                    "" => field.to_owned(),
                    _ => format!("{path}.{field}"),
                };
                if let Some(hint) = hint {
                    problem = problem.hint(hint);
                }
            }
            problem
        })
    }

    fn origin_of_span(&self, span: &Range<usize>) -> Origin {
        self.source.origin_of_span(span)
    }
}

/// The entries of `table` not named in `keys`, and those named.
fn split_table<'a>(table: &DeTable<'a>, keys: &[&str]) -> (DeTable<'a>, DeTable<'a>) {
    let mut named = DeTable::new();
    let mut rest = DeTable::new();
    for (k, v) in table.iter() {
        let key: &str = k.get_ref();
        if keys.contains(&key) {
            named.insert(k.clone(), v.clone());
        } else {
            rest.insert(k.clone(), v.clone());
        }
    }
    (rest, named)
}

/// `rule[2].method` as its steps.
fn parse_path(path: &str) -> Vec<Segment> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            steps.push(Segment::Key(key.to_owned()));
        }
        for index in pieces {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                steps.push(Segment::Index(i));
            }
        }
    }
    steps
}

/// The known key nearest to `key`, when it is near enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// The field of serde's `unknown field `lisen`, expected one of `listen`, ...`, and a
/// suggestion when a known field is near.
fn unknown_field_hint(message: &str) -> Option<(&str, Option<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    Some((
        field,
        closest(field, &known).map(|k| format!("did you mean `{k}`?")),
    ))
}

#[cfg(test)]
mod tests;
