//! A PostgreSQL-wire gateway that runs on a fresh machine with embedded defaults: a data
//! directory holding the master key, the wallet file (secrets and users), a self-signed
//! TLS certificate, the policy as TOML and the JSON-lines audit log.

mod config;
mod oauth;
mod reload;
mod rules;
mod sql;
mod upgrade;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_core::account::{AccountStage, Directory, Migration};
use auth_core::audit::AuditFile;
use auth_core::certificate::{ClientName, TrustedIssuers};
use auth_core::local::SystemUsers;
use auth_core::rate_limit::LimitSettings;
use auth_core::{AuditSink, Engine, MemoryRateLimiter, RateLimiter, Role};
use auth_core::{Authenticator, ConnectionInfo, CredentialKind, Peer, Protocol};
use auth_listen::{
    Admission, AdmissionSettings, Listener, SharedTrustedProxies, TlsSetup, TrustedProxies,
};
use auth_password::{Hasher, Users};
use auth_pgwire::unix::UnixSocket;
use auth_pgwire::{PgAuthConfig, PgServer};
use auth_wallet::{MasterKey, Wallet};
use base64::Engine as _;
use pgwire::api::PgWireServerHandlers;
use secrecy::SecretString;

pub use config::{
    ENV_PREFIX, GatewayConfig, GatewaySettings, HealthSettings, KerberosConfig, Loaded, Method,
    MethodOptions, RuleConfig,
};
pub use oauth::OAuthSetup;
pub use reload::{Reloaded, Reloader};
pub use rules::engine;
pub use sql::DemoSql;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GatewayError(pub String);

fn err(context: &str) -> impl Fn(&dyn std::fmt::Display) -> GatewayError + '_ {
    move |e| GatewayError(format!("{context}: {e}"))
}

/// Prints what every gateway prints first: the demo user's password when this start
/// created it (shown once), and the data directory.
pub fn write_banner(out: &mut impl std::io::Write, prepared: &Prepared) -> std::io::Result<()> {
    use secrecy::ExposeSecret;
    if let Some(password) = &prepared.demo_password {
        writeln!(
            out,
            "created user demo with password: {} (shown once; change it with authctl user passwd demo)",
            password.expose_secret()
        )?;
    }
    for message in &prepared.config_upgraded {
        writeln!(out, "gateway.toml upgraded: {message}")?;
    }
    for warning in &prepared.config_warnings {
        writeln!(out, "{warning}")?;
    }
    if !prepared.migration.accounts_created.is_empty() {
        writeln!(
            out,
            "user directory migrated: accounts created for wallet users {}",
            prepared.migration.accounts_created.join(", ")
        )?;
    }
    writeln!(out, "data directory: {}", prepared.data_dir.display())
}

/// Everything loaded from (or created in) the data directory.
pub struct Prepared {
    /// The configuration.
    pub config: GatewayConfig,
    /// The wallet with secrets and users.
    pub wallet: Arc<Wallet>,
    /// TLS.
    pub tls: TlsSetup,
    /// The demo user's password, when it was created by this start (printed once).
    pub demo_password: Option<SecretString>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Unknown users' SCRAM mock salts derive from this, the same across restarts.
    pub mock_secret: [u8; 32],
    /// The audit log, one writer for every front door of the process.
    pub audit: Arc<dyn AuditSink>,
    /// The same log as a file: reopened on SIGHUP, flushed on SIGUSR1
    /// ([`serve_signals`]).
    pub audit_file: Arc<AuditFile>,
    /// Failure counts, shared by every front door: a password guessed over pgwire and
    /// over HTTP counts against one budget.
    pub limiter: Arc<dyn RateLimiter>,
    /// The limiter on the `[redis]` store, when it is there (its readiness probe).
    pub shared_limiter: Option<auth_redis::RedisRateLimiter>,
    /// The account stage every chain of every front door runs.
    pub accounts: Arc<AccountStage>,
    /// What this start's migration of the data directory did.
    pub migration: Migration,
    /// The CAs of `[client_certificates]`, when configured.
    pub client_cas: Option<Arc<TrustedIssuers>>,
    /// Which certificate name is the client.
    pub client_name: ClientName,
    /// The OAuth validators and password grant of `[[oauth_issuer]]` and
    /// `[oauth_password]`.
    pub oauth: OAuthSetup,
    /// The gateway's own token issuer (`jwt-signing.pem`), whose tokens `bearer` rules
    /// accept.
    pub issuer: Arc<crate::api::LocalIssuer>,
    /// What this start's upgrade of `gateway.toml` changed, one line each.
    pub config_upgraded: Vec<String>,
    /// `AUTH_*` variables that name no setting: ignored, and printed at start.
    pub config_warnings: Vec<auth_core::settings::ConfigProblem>,
    /// The password hasher of `[password]`.
    pub hasher: Hasher,
    /// `trusted_proxies`: whose PROXY headers and forwarding headers name the client
    /// (replaced in place by a reload).
    pub trusted_proxies: SharedTrustedProxies,
    /// The places and waits for unauthenticated connections (auth-listen's settings).
    pub listen: AdmissionSettings,
    /// How long a connection may stay unauthenticated (`auth_timeout`).
    pub auth_timeout: std::time::Duration,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), GatewayError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err("create")(&format!("{}: {e}", path.display())))?;
    f.write_all(contents).map_err(|e| err("write")(&e))
}

/// A crate's `build()` refusal at start, in the file's terms.
fn built(section: &str) -> impl Fn(auth_core::settings::Invalid) -> GatewayError + '_ {
    move |invalid| {
        let key = match (section.is_empty(), invalid.key.is_empty()) {
            (true, _) => invalid.key.clone(),
            (false, true) => format!("[{section}]"),
            (false, false) => format!("[{section}] {}", invalid.key),
        };
        let hint = invalid
            .hint
            .as_ref()
            .map(|h| format!("\n    hint: {h}"))
            .unwrap_or_default();
        GatewayError(format!("gateway.toml: {key}: {}{hint}", invalid.message))
    }
}

/// `gateway.toml` as the gateway loads it: upgraded in memory when it is from before.
#[derive(Debug, Clone)]
pub struct ConfigText {
    /// The text to load.
    pub text: String,
    /// What the upgrade changes, one line each (empty when the file is current).
    pub upgraded: Vec<String>,
    /// For each line of `text`, the file's own line it came from (`None`: added by the
    /// upgrade); empty when nothing was upgraded.
    old_lines: Vec<Option<usize>>,
}

impl ConfigText {
    /// A current file's text (nothing to upgrade).
    pub fn new(text: String) -> Self {
        Self {
            text,
            upgraded: Vec::new(),
            old_lines: Vec::new(),
        }
    }

    /// Problems found in `text`, placed on the lines of the file as it is on disk.
    pub fn on_disk(&self, mut error: auth_core::ConfigError) -> auth_core::ConfigError {
        if self.old_lines.is_empty() {
            return error;
        }
        for problem in &mut error.problems {
            if let auth_core::settings::Origin::File { line, .. } = &mut problem.origin {
                match self.old_lines.get(*line - 1).copied().flatten() {
                    Some(old) => *line = old,
                    None => {
                        problem.message.push_str(" (in the text the upgrade adds)");
                    }
                }
            }
        }
        error
    }
}

/// `gateway.toml` in `data_dir` as it would be loaded (`None` when there is no file yet).
pub fn read_config(data_dir: &Path) -> Result<Option<ConfigText>, GatewayError> {
    let config_path = data_dir.join("gateway.toml");
    if !config_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| GatewayError(format!("{}: {e}", config_path.display())))?;
    Ok(Some(match upgrade::upgrade(&text) {
        Some(up) => ConfigText {
            text: up.text,
            upgraded: up.messages,
            old_lines: up.old_lines,
        },
        None => ConfigText::new(text),
    }))
}

/// Loads the data directory, creating what is missing: config, master key, certificate,
/// and the demo user.
pub async fn prepare(data_dir: &Path) -> Result<Prepared, GatewayError> {
    std::fs::create_dir_all(data_dir).map_err(|e| err("create the data directory")(&e))?;
    let config_path = data_dir.join("gateway.toml");
    let first_start = !config_path.exists();
    if first_start {
        let os_user = SystemUsers
            .this_process()
            .map_err(|e| err("the OS user running the gateway")(&e))?
            .ok_or_else(|| GatewayError("this process's user id has no OS user name".into()))?;
        std::fs::write(&config_path, GatewayConfig::default_toml(&os_user))
            .map_err(|e| err("config")(&e))?;
    }
    let original = std::fs::read_to_string(&config_path).map_err(|e| err("config")(&e))?;
    let Some(ConfigText {
        text,
        upgraded: config_upgraded,
        ..
    }) = read_config(data_dir)?
    else {
        return Err(GatewayError(format!("{} vanished", config_path.display())));
    };
    if !config_upgraded.is_empty() {
        // The old file is kept beside the new one, so the operator can compare.
        let old = data_dir.join("gateway.toml.before-upgrade");
        std::fs::write(&old, &original).map_err(|e| err("config")(&e))?;
        std::fs::write(&config_path, &text).map_err(|e| err("config")(&e))?;
    }
    let Loaded { config, warnings } =
        GatewayConfig::load(&config_path.display().to_string(), &text, std::env::vars())
            .map_err(|e| GatewayError(e.to_string()))?;

    if let Some(key_path) = config.wallet.master_key_path(data_dir)
        && !key_path.exists()
    {
        MasterKey::generate()
            .and_then(|k| k.write_new_file(&key_path))
            .map_err(|e| err("master key")(&e))?;
    }
    let (cert_path, tls_key_path) = config.listen.tls_paths(data_dir);
    if !cert_path.exists() && !tls_key_path.exists() {
        let (_, cert_pem, key_pem) = TlsSetup::self_signed(&["localhost", "127.0.0.1"])
            .map_err(|e| err("certificate")(&e))?;
        write_private(&tls_key_path, key_pem.as_bytes())?;
        std::fs::write(&cert_path, cert_pem).map_err(|e| err("certificate")(&e))?;
    }

    let mock_path = data_dir.join("scram-mock.secret");
    if !mock_path.exists() {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| err("randomness")(&e))?;
        write_private(&mock_path, &secret)?;
    }
    let mock_secret: [u8; 32] = std::fs::read(&mock_path)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            GatewayError(format!(
                "{} is not 32 bytes; delete it to make a new one",
                mock_path.display()
            ))
        })?;

    let (hasher, policy) = config.password.build().map_err(built("password"))?;

    let wallet = Arc::new(
        config
            .wallet
            .build(data_dir)
            .await
            .map_err(built("wallet"))?,
    );
    let users = Users::new(wallet.clone());
    let demo_password = if users
        .get("demo")
        .await
        .map_err(|e| err("users")(&e))?
        .is_none()
    {
        let mut random = [0u8; 15];
        getrandom::fill(&mut random).map_err(|e| err("randomness")(&e))?;
        let password =
            SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random));
        users
            .set_password(&hasher, &policy, "demo", &password)
            .await
            .map_err(|e| err("demo user")(&e))?;
        Some(password)
    } else {
        None
    };
    let audit = Arc::new(config.audit.build(data_dir).map_err(built(""))?);
    let (limiter, shared_limiter) =
        limiter(&config, data_dir, wallet.clone(), audit.clone()).await?;
    let directory = Directory::new(wallet.clone());
    if first_start
        && directory
            .get(GatewayConfig::LOCAL_ADMIN)
            .await
            .map_err(|e| err("users")(&e))?
            .is_none()
    {
        // The local administrator of the default rules: no password, this machine only.
        directory
            .update(GatewayConfig::LOCAL_ADMIN, |r| {
                r.system = true;
                r.roles = vec![Role::Dba, Role::System];
            })
            .await
            .map_err(|e| err("the local administrator account")(&e))?;
    }
    let migration = directory
        .migrate(auth_wallet::DEFAULT_USER_PREFIX)
        .await
        .map_err(|e| err("migrate the user directory")(&e))?;
    // Identity maps are the rules' own (`map = "..."`), handed to the engine with them.
    let accounts = Arc::new(AccountStage::new(Arc::new(directory)));
    let Reloadable {
        client_cas,
        tls,
        client_name,
        oauth,
        trusted_proxies,
    } = Reloadable::build(data_dir, &config, &wallet, None).await?;
    let issuer = Arc::new(crate::api::LocalIssuer::load_or_create(data_dir)?);
    let listen = config
        .listen
        .build()
        .map_err(|mut problems| built("")(problems.remove(0)))?;
    Ok(Prepared {
        trusted_proxies: SharedTrustedProxies::new(trusted_proxies),
        listen: listen.admission,
        auth_timeout: listen.auth_timeout,
        issuer,
        config_upgraded,
        config_warnings: warnings,
        oauth,
        accounts,
        migration,
        client_cas,
        client_name,
        config,
        wallet,
        tls,
        demo_password,
        hasher,
        data_dir: data_dir.to_owned(),
        mock_secret,
        audit: audit.clone(),
        audit_file: audit,
        limiter,
        shared_limiter,
    })
}

/// What the configuration makes that a reload makes again (see [`reload`]).
struct Reloadable {
    client_cas: Option<Arc<TrustedIssuers>>,
    tls: TlsSetup,
    client_name: ClientName,
    oauth: OAuthSetup,
    trusted_proxies: TrustedProxies,
}

impl Reloadable {
    /// Builds it from `config`; on a reload, keeping the OAuth validators of `running`
    /// whose settings did not change.
    async fn build(
        data_dir: &Path,
        config: &GatewayConfig,
        wallet: &Arc<Wallet>,
        running: Option<(&GatewayConfig, &OAuthSetup)>,
    ) -> Result<Self, GatewayError> {
        let client_cas = config
            .client_certificates
            .build(data_dir)
            .map_err(built("client_certificates"))?;
        let tls = config
            .listen
            .tls(data_dir, client_cas.as_deref())
            .map_err(built(""))?;
        let client_name = config
            .client_certificates
            .client_name()
            .map_err(built("client_certificates"))?;
        let oauth = oauth::setup(data_dir, config, wallet, running).await?;
        let trusted_proxies = config
            .listen
            .build()
            .map_err(|mut problems| built("")(problems.remove(0)))?
            .trusted_proxies;
        Ok(Self {
            client_cas,
            tls,
            client_name,
            oauth,
            trusted_proxies,
        })
    }
}

/// The one limiter every front door shares, as `[rate_limit]` says: on the `[redis]`
/// store when the file names one (shared by every gateway on it, and returned again for
/// its readiness probe), in this process's memory otherwise; with limiting disabled, a
/// limiter that limits nothing.
async fn limiter(
    config: &GatewayConfig,
    data_dir: &Path,
    wallet: Arc<auth_wallet::Wallet>,
    audit: Arc<dyn AuditSink>,
) -> Result<(Arc<dyn RateLimiter>, Option<auth_redis::RedisRateLimiter>), GatewayError> {
    let settings = config
        .rate_limit
        .build()
        .map_err(|mut problems| built("rate_limit")(problems.remove(0)))?;
    let Some(limits) = settings else {
        let unlimited = MemoryRateLimiter::new(LimitSettings {
            user_failures: u32::MAX,
            address_failures: u32::MAX,
            max_running_per_address: u32::MAX,
            ..LimitSettings::default()
        });
        return Ok((Arc::new(unlimited), None));
    };
    if !config.redis.is_set() {
        return Ok((Arc::new(MemoryRateLimiter::new(limits)), None));
    }
    let options = config
        .redis
        .build(data_dir, Some(wallet))
        .await
        .map_err(|mut problems| built("redis")(problems.remove(0)))?;
    let limiter = auth_redis::RedisRateLimiter::builder(options, limits)
        .audit(audit)
        .connect()
        .await
        .map_err(|e| err("redis")(&e))?;
    if !limiter.store_up() {
        tracing::warn!(
            "the [redis] store does not answer yet; logins are decided with on_outage = {} until it does",
            config.redis.on_outage
        );
    }
    Ok((Arc::new(limiter.clone()), Some(limiter)))
}

/// The pgwire query handlers: the demo SQL, simple and extended.
#[derive(Debug)]
pub struct Queries {
    sql: Arc<DemoSql>,
}

/// Whether `engine`'s policy lets `user` in on the Unix socket by the OS user alone
/// (`peer`), so a psql line for it needs no password.
pub fn peer_admits(engine: &Engine, user: &str) -> bool {
    let connection = ConnectionInfo::new(Protocol::Postgres, Peer::unix(None, None))
        .with_user(user)
        .with_database(user);
    engine
        .chain_for(&connection)
        .is_some_and(|chain| chain.accepts().contains(&CredentialKind::Peer))
}

/// The Unix socket `.s.PGSQL.<port>` in the configured directory (relative to the data
/// directory), or `None` when `unix_socket_directory = ""`.
pub fn unix_socket(prepared: &Prepared, port: u16) -> Result<Option<UnixSocket>, GatewayError> {
    let configured = &prepared.config.gateway.unix_socket_directory;
    if configured.is_empty() {
        return Ok(None);
    }
    // psql takes a host starting with `/` for a socket directory: make it absolute.
    let dir = prepared
        .data_dir
        .join(configured)
        .canonicalize()
        .map_err(|e| GatewayError(format!("unix_socket_directory `{configured}`: {e}")))?;
    UnixSocket::bind(&dir, port, prepared.config.gateway.unix_socket_permissions)
        .map(Some)
        .map_err(|e| GatewayError(format!("cannot listen on the Unix socket: {e}")))
}

impl PgWireServerHandlers for Queries {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.sql.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.sql.clone()
    }
}

/// The pgwire server for `prepared`, authenticating with `engine` (from [`engine`],
/// shared with the HTTP and gRPC doors).
pub fn pg_server(engine: Arc<Engine>) -> PgServer<Queries> {
    PgServer::with_handlers(
        PgAuthConfig::new(engine),
        Queries {
            sql: Arc::new(DemoSql),
        },
    )
}

/// What every front door of the process listens with: one set of places for
/// unauthenticated connections (`max_unauthenticated_connections`,
/// `max_unauthenticated_per_address`, `unauthenticated_wait`, `max_silent_per_address`,
/// `silent_timeout`; refusals written to the engine's audit log), the trusted proxies and
/// the authentication timeout.
#[derive(Debug, Clone)]
pub struct Doors {
    /// The places, shared by every listener.
    pub admission: Arc<Admission>,
    /// `trusted_proxies`.
    pub trusted_proxies: SharedTrustedProxies,
    /// How long a connection may stay unauthenticated (`auth_timeout`).
    pub auth_timeout: std::time::Duration,
}

impl Doors {
    /// The doors of `prepared`, auditing refusals to `engine`'s log.
    pub fn new(prepared: &Prepared, engine: &Engine) -> Self {
        Self {
            admission: Arc::new(Admission::new(prepared.listen).audited_by(engine)),
            trusted_proxies: prepared.trusted_proxies.clone(),
            auth_timeout: prepared.auth_timeout,
        }
    }

    /// Binds `addr` for `protocol`'s front door through these doors, with `tls` if given.
    pub async fn listener(
        &self,
        addr: SocketAddr,
        protocol: Protocol,
        tls: Option<TlsSetup>,
    ) -> std::io::Result<Listener> {
        let listener = Listener::bind(addr, protocol)
            .await?
            .with_admission(self.admission.clone())
            .with_trusted_proxies(self.trusted_proxies.clone())
            .with_unauthenticated_timeout(self.auth_timeout);
        Ok(match tls {
            Some(tls) => listener.with_tls(tls),
            None => listener,
        })
    }
}

/// Serves the process's signals for its life: SIGHUP reopens the audit log (logrotate's
/// `postrotate`) and then reloads `gateway.toml` into `engine` and the doors (see
/// [`Reloader`]); SIGUSR1 writes out every queued audit event and then counts up
/// `<audit log>.flushed` (what a backup, or a test reading the log, waits for).
pub fn serve_signals(prepared: &Prepared, engine: &Arc<Engine>) {
    let reloader = Arc::new(Reloader::new(prepared, engine.clone()));
    reload::serve_reloads(reloader, prepared.audit_file.clone());
    serve_audit_flush(prepared.audit_file.clone());
}

fn serve_audit_flush(audit: Arc<AuditFile>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        tracing::warn!("no SIGUSR1 handler: the audit log is flushed only at exit");
        return;
    };
    tokio::spawn(async move {
        let mut flushed = 0u64;
        while usr1.recv().await.is_some() {
            let audit = audit.clone();
            flushed += 1;
            let marker = {
                let mut name = audit.path().as_os_str().to_owned();
                name.push(".flushed");
                PathBuf::from(name)
            };
            let done = tokio::task::spawn_blocking(move || {
                audit.flush();
                std::fs::write(&marker, flushed.to_string())
            })
            .await;
            if !matches!(done, Ok(Ok(()))) {
                tracing::warn!("the audit log's flush marker could not be written");
            }
        }
    });
}

/// How long a shutdown waits for the end work of the sessions that closed (a token
/// revoked at its provider) before the process exits.
pub const SESSION_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Completes at the first SIGTERM or Ctrl-C (SIGINT): the gateway then drains. A second
/// one exits at once (status 130), as an operator who insists expects.
pub async fn shutdown_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // No handler: wait for Ctrl-C the portable way.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        std::process::exit(130);
    });
}

/// `word` as one shell word: as is when it is plain, else in single quotes.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn shell_words_survive_spaces_and_quotes() {
        assert_eq!(shell_word("/var/run/gw"), "/var/run/gw");
        assert_eq!(shell_word("/tmp/my data"), "'/tmp/my data'");
        assert_eq!(shell_word("/tmp/it's"), r"'/tmp/it'\''s'");
    }
}
