//! Brings a `gateway.toml` from an older version up to date, in place, saying what it did:
//! the cleartext opt-in's `danger_` name, identity maps moved from the whole file onto the
//! rules that relied on them, and a rule for the HTTP and gRPC APIs, which before this
//! version ran one fixed chain that no rule guarded.
//!
//! Edits are made on the text, line by line, so the operator's comments and layout stay.

use toml::{Table, Value};

use super::config::GatewayConfig;

/// What an upgrade changed: the new text and one message per change.
#[derive(Debug, Default)]
pub(super) struct Upgrade {
    /// The upgraded file.
    pub(super) text: String,
    /// What was done, for the operator.
    pub(super) messages: Vec<String>,
    /// For each line of `text`, the line (from 1) of the old file it came from; `None` for
    /// a line the upgrade added.
    pub(super) old_lines: Vec<Option<usize>>,
}

/// Upgrades `text`; `None` when it is current (or not TOML: the parser says why later).
pub(super) fn upgrade(text: &str) -> Option<Upgrade> {
    let raw: Table = toml::from_str(text).ok()?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut messages = Vec::new();
    let headers = |lines: &[String], name: &str| -> Vec<usize> {
        let header = format!("[[{name}]]");
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim() == header)
            .map(|(i, _)| i)
            .collect()
    };
    let rules: Vec<&Table> = array(&raw, "rule");
    let entries: Vec<&Table> = array(&raw, "identity_map");

    // 1. The cleartext opt-in is a danger, and now says so in its name.
    let first_table = lines.iter().position(|l| l.trim_start().starts_with('['));
    if let Some(i) = lines.iter().position(|l| {
        l.trim_start().starts_with("allow_cleartext_without_tls")
            && l.trim_start()["allow_cleartext_without_tls".len()..]
                .trim_start()
                .starts_with('=')
    }) && first_table.is_none_or(|t| i < t)
    {
        lines[i] = format!("danger_{}", lines[i].trim_start());
        messages.push(
            "allow_cleartext_without_tls is now danger_allow_cleartext_without_tls (it also \
             covers HTTP Basic and bearer tokens on the APIs)"
                .to_owned(),
        );
    }

    // 2. Identity maps belong to rules. Each rule that proves identities gets the old
    //    file-wide entries as its own map, named after it.
    let legacy: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.contains_key("map"))
        .map(|(i, _)| i)
        .collect();
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut appended = String::new();
    if !legacy.is_empty() {
        let rule_lines = headers(&lines, "rule");
        let mut mapped = Vec::new();
        for (k, rule) in rules.iter().enumerate() {
            if rule.contains_key("map") || !proves_identity(rule) {
                continue;
            }
            let Some(name) = rule.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Some(line) = rule_lines.get(k) {
                inserts.push((*line + 1, format!("map = {}", quoted(name))));
            }
            for &i in &legacy {
                appended.push_str(&format!("\n[[identity_map]]\nmap = {}\n", quoted(name)));
                for key in ["method", "identity", "user"] {
                    if let Some(v) = entries[i].get(key).and_then(Value::as_str) {
                        appended.push_str(&format!("{key} = {}\n", quoted(v)));
                    }
                }
            }
            mapped.push(name.to_owned());
        }
        let entry_lines = headers(&lines, "identity_map");
        let mut drop: Vec<(usize, usize)> = legacy
            .iter()
            .filter_map(|&i| {
                entry_lines
                    .get(i)
                    .map(|&start| (start, block_end(&lines, start)))
            })
            .collect();
        drop.sort_unstable();
        for (start, end) in drop.into_iter().rev() {
            lines.drain(start..end);
            inserts = inserts
                .into_iter()
                .map(|(at, l)| (if at > start { at - (end - start) } else { at }, l))
                .collect();
        }
        messages.push(if mapped.is_empty() {
            format!(
                "{} [[identity_map]] entries named no map and no rule proves identities; \
                 they were removed (a rule's map = \"...\" names the entries it admits)",
                legacy.len()
            )
        } else {
            format!(
                "[[identity_map]] entries moved onto the rules that use identities ({}): \
                 each rule now names its own map, which alone admits other names",
                mapped.join(", ")
            )
        });
    }

    // 3. The APIs are guarded by the rules too: a rule for what they accepted before,
    //    placed where it changes nothing for the rules above it.
    let guards_apis = rules.iter().any(|r| {
        r.contains_key("protocols") || methods(r).iter().any(|m| *m == "bearer" || *m == "api-key")
    });
    if !guards_apis && !rules.is_empty() {
        let rule_lines = headers(&lines, "rule");
        let at = rules
            .iter()
            .position(|r| general_login(r))
            .and_then(|k| rule_lines.get(k).copied());
        let mut block = format!("{}\n", GatewayConfig::API_RULE.trim_end());
        // The old fixed chain took SPNEGO wherever a keytab was configured.
        let keytab = raw
            .get("kerberos")
            .and_then(Value::as_table)
            .is_some_and(|k| k.contains_key("keytab"));
        if keytab {
            block = block.replace(
                r#"["bearer", "api-key", "password"]"#,
                r#"["bearer", "api-key", "gss", "password"]"#,
            );
        }
        match at {
            Some(line) => inserts.push((line, block)),
            None => appended.insert_str(0, &format!("\n{block}")),
        }
        messages.push(
            "the rules now guard the HTTP and gRPC APIs too; rule `api` (bearer tokens, API \
             keys and passwords, protocols http and grpc) was added before the first rule \
             for everyone, so rules above it hold on every door"
                .to_owned(),
        );
    }
    if messages.is_empty() {
        return None;
    }
    inserts.sort_by_key(|insert| std::cmp::Reverse(insert.0));
    let mut old_lines: Vec<Vec<Option<usize>>> = (1..=lines.len()).map(|n| vec![Some(n)]).collect();
    for (at, text) in inserts {
        let at = at.min(lines.len());
        let text = text.trim_end().to_owned();
        old_lines.insert(at, vec![None; text.lines().count().max(1)]);
        lines.insert(at, text);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(&appended);
    let mut old_lines: Vec<Option<usize>> = old_lines.into_iter().flatten().collect();
    old_lines.resize(text.lines().count(), None);
    Some(Upgrade {
        text,
        messages,
        old_lines,
    })
}

fn array<'a>(raw: &'a Table, key: &str) -> Vec<&'a Table> {
    raw.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_table).collect())
        .unwrap_or_default()
}

fn methods(rule: &Table) -> Vec<&str> {
    match rule.get("method") {
        Some(Value::String(m)) => vec![m.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether the rule's methods prove an identity an old file-wide map could map.
fn proves_identity(rule: &Table) -> bool {
    methods(rule)
        .iter()
        .any(|m| ["peer", "cert", "gss"].contains(m))
        || rule.get("client_certificate").and_then(Value::as_str) == Some("verify-full")
}

/// A rule that lets everyone in from everywhere by some method: no rule after it is ever
/// reached by a TCP client.
fn general_login(rule: &Table) -> bool {
    let empty_or = |key: &str, all: &str| match rule.get(key) {
        None => true,
        Some(Value::Array(a)) => a.is_empty() || (a.len() == 1 && a[0].as_str() == Some(all)),
        _ => false,
    };
    let kind = rule.get("type").and_then(Value::as_str).unwrap_or("host");
    ["host", "hostssl", "all"].contains(&kind)
        && empty_or("users", "all")
        && empty_or("databases", "all")
        && empty_or("addresses", "all")
        && !methods(rule).contains(&"reject")
}

/// The line after the table that starts at `start`: the next table header or the end.
fn block_end(lines: &[String], start: usize) -> usize {
    lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |p| start + 1 + p)
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a first start of the previous version wrote.
    const OLD: &str = r#"# auth gateway
listen = "127.0.0.1:6432"
allow_cleartext_without_tls = false
unix_socket_directory = "."

[[rule]]
name = "local-admin"
type = "local"
users = ["postgres"]
method = "peer"

[[rule]]
name = "local"
type = "local"
method = "scram"

[[rule]]
name = "bob"
users = ["bob"]
method = "reject"

[[rule]]
name = "scram"
type = "host"
method = "scram"

[[identity_map]]
method = "peer"
identity = "root"
user = "postgres"
"#;

    #[test]
    fn an_old_default_file_becomes_a_current_one() {
        let up = upgrade(OLD).expect("an old file is upgraded");
        assert_eq!(up.messages.len(), 3, "{:?}", up.messages);
        let config = GatewayConfig::parse(&up.text).unwrap_or_else(|e| panic!("{e}\n{}", up.text));
        assert!(!config.gateway.danger_allow_cleartext_without_tls);
        let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["local-admin", "local", "bob", "api", "scram"]);
        assert_eq!(config.rules[0].map.as_deref(), Some("local-admin"));
        assert_eq!(config.identity_map.len(), 1);
        assert_eq!(config.identity_map[0].map.as_deref(), Some("local-admin"));
        assert_eq!(config.identity_map[0].identity, "root");
        assert!(up.text.starts_with("# auth gateway\n"), "comments stay");
        assert!(upgrade(&up.text).is_none(), "an upgraded file is current");
    }

    #[test]
    fn a_current_file_is_left_alone() {
        let current = GatewayConfig::default_toml("root");
        assert!(upgrade(&current).is_none());
        GatewayConfig::parse(&current).unwrap();
    }

    #[test]
    fn without_a_rule_for_everyone_the_api_rule_goes_last() {
        let old = "[[rule]]\nname = \"lan\"\naddresses = [\"10.0.0.0/8\"]\nmethod = \"scram\"\n\
                   [[rule]]\nname = \"rest\"\nmethod = \"reject\"\n";
        let up = upgrade(old).unwrap();
        let config = GatewayConfig::parse(&up.text).unwrap();
        let names: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["lan", "rest", "api"],
            "the reject still holds on the APIs"
        );
    }
}
