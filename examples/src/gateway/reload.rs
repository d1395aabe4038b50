//! Reload without a restart: on SIGHUP (or [`Reloader::reload`]) the gateway reads
//! `gateway.toml` again and puts in force, all together or not at all, what it says about
//! the rules and identity maps, client certificates (CAs, CRLs, which name is the client),
//! the server certificate and key with their channel-binding data, trusted proxies,
//! Kerberos, and the OAuth issuers and password grant.
//!
//! What must survive does: the rate limiter's counts and known networks, the audit log,
//! the account stage, open sessions (they go on under the rules they logged in with),
//! logins in progress (they finish under the rules they began with), and the OAuth
//! validators whose settings did not change (with their JWKS and token caches). Settings
//! that shape what was bound or opened at start (`listen`, the places and waits, the
//! wallet, the audit log's path, `[rate_limit]`, `[password]`) take effect at the next
//! start; a reload that sees them changed says so.
//!
//! A file with a problem is refused with every problem and its line, and the running
//! configuration stays. Each reload is audited: `config_reloaded` with the file's SHA-256,
//! or `config_refused` with the problems.

use std::sync::Arc;

use auth_core::audit::{AuditEvent, AuditEventKind};
use auth_core::{Engine, account::Migration};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{GatewayConfig, GatewayError, Loaded, Prepared, Reloadable, read_config, rules};

/// What a reload put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The SHA-256 of `gateway.toml` as read, in hex: which file is in force.
    pub digest: String,
    /// The settings that changed but take effect only at the next start (`listen`,
    /// `[rate_limit]`, ...), in the file's terms.
    pub restart_needed: Vec<String>,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gateway.toml sha256 {}", self.digest)?;
        if !self.restart_needed.is_empty() {
            write!(
                f,
                "; changed, in force after a restart: {}",
                self.restart_needed.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Reloads a running gateway's configuration: `gateway.toml` read again and checked as
/// `--check-config` checks it, everything built from it first (rules and identity maps,
/// client CAs and CRLs, the server certificate with its channel-binding data, trusted
/// proxies, Kerberos, OAuth issuers whose settings changed), then put in force together;
/// or refused with every problem while the running configuration stays. Limiter counts,
/// the audit log, open sessions and logins in progress survive. Audited as
/// `config_reloaded` (with the file's SHA-256) or `config_refused`.
pub struct Reloader {
    /// What is in force; one reload at a time.
    running: tokio::sync::Mutex<Prepared>,
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// The reloader of the gateway `prepared` started, whose doors run `engine`. It shares
    /// `prepared`'s TLS and trusted proxies with the doors, and replaces them in place.
    pub fn new(prepared: &Prepared, engine: Arc<Engine>) -> Self {
        Self {
            running: tokio::sync::Mutex::new(prepared.running_copy()),
            engine,
        }
    }

    /// Reads `gateway.toml` again and puts it in force, or refuses it with its problems
    /// and keeps what runs; audited either way.
    pub async fn reload(&self) -> Result<Reloaded, GatewayError> {
        let mut running = self.running.lock().await;
        let result = self.replace(&mut running).await;
        let audit = self.engine.audit_sink();
        let now = self.engine.clock().now();
        match &result {
            Ok(reloaded) => {
                let detail = reloaded.to_string();
                audit.record(
                    &AuditEvent::local(AuditEventKind::ConfigReloaded, now, "gateway", "reloaded")
                        .with_failure(None, Some(&detail)),
                );
            }
            Err(e) => {
                let detail = e.to_string();
                audit.record(
                    &AuditEvent::local(AuditEventKind::ConfigRefused, now, "gateway", "refused")
                        .with_failure(None, Some(&detail)),
                );
            }
        }
        result
    }

    /// Builds everything from the file first; replaces only once all of it was built.
    async fn replace(&self, running: &mut Prepared) -> Result<Reloaded, GatewayError> {
        let data_dir = running.data_dir.clone();
        let path = data_dir.join("gateway.toml");
        let raw =
            std::fs::read(&path).map_err(|e| GatewayError(format!("{}: {e}", path.display())))?;
        let digest = hex::encode(Sha256::digest(&raw));
        let text = read_config(&data_dir)?
            .ok_or_else(|| GatewayError(format!("{} vanished", path.display())))?;
        let name = path.display().to_string();
        let Loaded { config, .. } =
            GatewayConfig::load_in(Some(&data_dir), &name, &text.text, std::env::vars())
                .map_err(|e| GatewayError(text.on_disk(e).to_string()))?;
        let Reloadable {
            client_cas,
            tls,
            client_name,
            oauth,
            trusted_proxies,
        } = Reloadable::build(
            &data_dir,
            &config,
            &running.wallet,
            Some((&running.config, &running.oauth)),
        )
        .await?;
        let restart_needed = restart_needed(&running.config, &config);
        let mut next = running.running_copy();
        next.config = config;
        next.client_cas = client_cas;
        next.client_name = client_name;
        next.oauth = oauth;
        let policy = rules::policy(&next)?;
        // Everything is built: put it in force together. Connections accepted from here
        // on get the new certificate and proxies, offers from here on the new rules.
        next.tls.replace(&tls);
        next.trusted_proxies.replace(trusted_proxies);
        self.engine.replace_policy(policy);
        *running = next;
        Ok(Reloaded {
            digest,
            restart_needed,
        })
    }
}

/// The settings of `new` that differ from `old` and are read only at start.
fn restart_needed(old: &GatewayConfig, new: &GatewayConfig) -> Vec<String> {
    // Top-level keys: the gateway's own and auth-listen's but for those a reload replaces.
    let reloaded = ["tls_certificate", "tls_key", "trusted_proxies"];
    let mut changed = changed_keys(&old.gateway, &new.gateway, &[]);
    changed.extend(changed_keys(&old.listen, &new.listen, &reloaded));
    changed.extend(changed_keys(&old.audit, &new.audit, &[]));
    for (table, differs) in [
        ("[rate_limit]", differ(&old.rate_limit, &new.rate_limit)),
        ("[redis]", differ(&old.redis, &new.redis)),
        ("[password]", differ(&old.password, &new.password)),
        ("[wallet]", differ(&old.wallet, &new.wallet)),
        ("[health]", differ(&old.health, &new.health)),
    ] {
        if differs {
            changed.push(table.to_owned());
        }
    }
    changed
}

fn value(settings: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(settings).unwrap_or(serde_json::Value::Null)
}

fn differ(old: &impl Serialize, new: &impl Serialize) -> bool {
    value(old) != value(new)
}

/// The keys of two flattened settings whose values differ, but for `skip`.
fn changed_keys(old: &impl Serialize, new: &impl Serialize, skip: &[&str]) -> Vec<String> {
    let (serde_json::Value::Object(old), serde_json::Value::Object(new)) = (value(old), value(new))
    else {
        return Vec::new();
    };
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| !skip.contains(&k.as_str()) && old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl Prepared {
    /// What a reload starts from: this configuration and the shared parts (the wallet, the
    /// TLS and trusted proxies the doors read, the audit log, the limiter, the account
    /// stage), without what only the first start prints.
    fn running_copy(&self) -> Prepared {
        Prepared {
            config: self.config.clone(),
            wallet: self.wallet.clone(),
            tls: self.tls.clone(),
            demo_password: None,
            data_dir: self.data_dir.clone(),
            mock_secret: self.mock_secret,
            audit: self.audit.clone(),
            audit_file: self.audit_file.clone(),
            limiter: self.limiter.clone(),
            shared_limiter: self.shared_limiter.clone(),
            accounts: self.accounts.clone(),
            migration: Migration::default(),
            client_cas: self.client_cas.clone(),
            client_name: self.client_name,
            oauth: self.oauth.clone(),
            issuer: self.issuer.clone(),
            config_upgraded: Vec::new(),
            config_warnings: Vec::new(),
            hasher: self.hasher.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            listen: self.listen,
            auth_timeout: self.auth_timeout,
        }
    }
}

/// Serves SIGHUP for the life of the process: the audit log is reopened (logrotate's
/// `postrotate`), then `gateway.toml` is reloaded. Each reload prints one line:
/// `reloaded: gateway.toml sha256 ...` on stdout, or `reload refused, the running
/// configuration stays: ...` with every problem on stderr.
pub(super) fn serve_reloads(reloader: Arc<Reloader>, audit: Arc<auth_core::audit::AuditFile>) {
    use std::io::Write;
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: no reload, and the audit log is not reopened");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            audit.reopen();
            match reloader.reload().await {
                Ok(reloaded) => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "reloaded: {reloaded}");
                    let _ = out.flush();
                }
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "reload refused, the running configuration stays: {e}"
                    );
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> GatewayConfig {
        let text = format!("{extra}\n[[rule]]\nname = \"all\"\nmethod = \"scram\"\n");
        GatewayConfig::load("gateway.toml", &text, Vec::new())
            .unwrap()
            .config
    }

    #[test]
    fn a_reload_names_what_waits_for_a_restart_and_not_what_it_replaced() {
        let old = config("");
        let new = config(
            "listen = \"127.0.0.1:7000\"\ntrusted_proxies = [\"10.0.0.1\"]\n\
             tls_certificate = \"other.crt\"\n[rate_limit]\nuser_failures = 3\n",
        );
        assert_eq!(restart_needed(&old, &new), ["listen", "[rate_limit]"]);
        assert!(restart_needed(&old, &old).is_empty());
    }
}
