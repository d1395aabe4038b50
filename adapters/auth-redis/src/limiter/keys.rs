//! The keys one attempt's steps touch, and the step commands themselves.

use std::time::{Duration, SystemTime};

use auth_core::rate_limit::{LimitSettings, Subject, address_key, network_key};
use redis::Cmd;

/// How many keys every step declares (see `limiter.lua`).
const KEY_COUNT: usize = 9;

/// One attempt's identity in the store: its id (the member of the running, slot and
/// waiter sets) and its keys, all under the prefix's hash tag so one script reaches them
/// in one Cluster slot.
#[derive(Debug)]
pub(crate) struct AttemptKeys {
    pub(crate) id: String,
    keys: [String; KEY_COUNT],
    pub(crate) has_addr: bool,
    pub(crate) has_user: bool,
    /// The network a success makes known (IPv4 /24, IPv6 /64), empty without an address.
    net: String,
}

impl AttemptKeys {
    pub(crate) fn new(prefix: &str, id: String, subject: &Subject<'_>) -> Self {
        let tag = format!("{{{prefix}}}");
        let none = format!("{tag}:-");
        let addr = subject.address.map(address_key);
        let net = subject
            .address
            .map(network_key)
            .map(|n| n.to_string())
            .unwrap_or_default();
        let (a, ar) = match addr {
            Some(a) => (format!("{tag}:a:{a}"), format!("{tag}:ar:{a}")),
            None => (none.clone(), none.clone()),
        };
        // The network comes before the user and holds no `|`, so no two (network, user)
        // pairs share a key whatever the user name holds.
        let scope = |kind: &str, net: &str| match subject.user {
            Some(user) => format!("{tag}:{kind}:{net}|{user}"),
            None => none.clone(),
        };
        let known = match subject.user {
            Some(user) => format!("{tag}:k:{user}"),
            None => none.clone(),
        };
        let here = if net.is_empty() { "-" } else { net.as_str() };
        Self {
            id,
            keys: [
                a,
                ar,
                known,
                scope("u", "*"),
                scope("s", "*"),
                scope("w", "*"),
                scope("u", here),
                scope("s", here),
                scope("w", here),
            ],
            has_addr: addr.is_some(),
            has_user: subject.user.is_some(),
            net,
        }
    }
}

impl AttemptKeys {
    /// The keys of the `limits` step: the settings' key first, the rest placeholders.
    pub(crate) fn for_limits(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
        let none = format!("{tag}:-");
        let mut keys: [String; KEY_COUNT] = std::array::from_fn(|_| none.clone());
        keys[0] = format!("{tag}:limits");
        Self {
            id: String::new(),
            keys,
            has_addr: false,
            has_user: false,
            net: String::new(),
        }
    }
}

/// The settings every step passes, in the script's order.
#[derive(Debug, Clone)]
pub(crate) struct StepSettings(Vec<String>);

impl StepSettings {
    /// The settings as the `limits` step writes them (comma-separated, in order).
    pub(crate) fn joined(&self) -> String {
        self.0.join(",")
    }

    pub(crate) fn new(s: &LimitSettings, slot_lease: Duration, attempt_lease: Duration) -> Self {
        let ms = |d: Duration| {
            u64::try_from(d.as_millis())
                .unwrap_or(u64::MAX / 4)
                .to_string()
        };
        Self(vec![
            s.user_failures.to_string(),
            s.address_failures.to_string(),
            ms(s.window),
            ms(s.lockout),
            ms(s.max_lockout),
            s.max_running_per_address.to_string(),
            s.max_waiting_per_user.to_string(),
            ms(s.known_for),
            s.max_known_per_user.to_string(),
            ms(slot_lease),
            ms(attempt_lease),
        ])
    }
}

/// Milliseconds since the epoch (the script's time).
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4))
        .unwrap_or_default()
}

/// One step of `attempt`: `op` at `now`, with the scope chosen at admission and the
/// step's own two arguments.
pub(crate) fn step(
    op: &str,
    attempt: &AttemptKeys,
    settings: &StepSettings,
    now: u64,
    scope_known: bool,
    extra: &str,
    extra2: u64,
) -> Cmd {
    let mut cmd = Cmd::new();
    cmd.arg(KEY_COUNT);
    for k in &attempt.keys {
        cmd.arg(k);
    }
    cmd.arg(op).arg(now).arg(&attempt.id);
    for s in &settings.0 {
        cmd.arg(s);
    }
    cmd.arg(flag(attempt.has_addr))
        .arg(flag(attempt.has_user))
        .arg(&attempt.net)
        .arg(flag(scope_known))
        .arg(extra)
        .arg(extra2);
    cmd
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_attempt_shares_the_hash_tag_and_users_cannot_collide() {
        let from = |user| Subject {
            user: Some(user),
            address: "2001:db8:1:2::7".parse().ok(),
            localhost: false,
        };
        let k = AttemptKeys::new("auth", "i:1".to_owned(), &from("alice"));
        assert!(k.keys.iter().all(|key| key.starts_with("{auth}:")));
        assert_eq!(k.keys[0], "{auth}:a:2001:db8:1:2::");
        assert_eq!(k.keys[6], "{auth}:u:2001:db8:1:2::|alice");
        let tricky = AttemptKeys::new("auth", "i:2".to_owned(), &from("*|alice"));
        assert!(tricky.keys.iter().all(|key| !k.keys[3..].contains(key)));
    }
}
