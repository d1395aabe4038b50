//! A PostgreSQL-wire gateway that runs on a fresh machine with embedded defaults: a data
//! directory holding the master key, the wallet file (secrets and users), a self-signed
//! TLS certificate, the policy as TOML and the JSON-lines audit log.

mod config;
mod oauth;
mod rules;
mod sql;
mod upgrade;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth_core::account::{AccountStage, Directory, Migration};
use auth_core::audit::JsonLinesAuditSink;
use auth_core::certificate::{ClientName, TrustedIssuers};
use auth_core::local::SystemUsers;
use auth_core::rate_limit::LimitSettings;
use auth_core::{AuditSink, Engine, MemoryRateLimiter, RateLimiter, Role};
use auth_core::{Authenticator, ConnectionInfo, CredentialKind, Peer, Protocol};
use auth_listen::{Admission, AdmissionSettings, Listener, TlsSetup, TrustedProxies};
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_pgwire::unix::UnixSocket;
use auth_pgwire::{PgAuthConfig, PgServer};
use auth_wallet::{FileStore, MasterKey, Wallet};
use base64::Engine as _;
use pgwire::api::PgWireServerHandlers;
use secrecy::SecretString;

pub use config::{
    ClientCertificatesConfig, GatewayConfig, KerberosConfig, MapConfig, Method, RuleConfig,
};
pub use oauth::{OAuthIssuerConfig, OAuthPasswordConfig, OAuthSetup};
pub use rules::engine;
pub use sql::DemoSql;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GatewayError(pub String);

fn err(context: &str) -> impl Fn(&dyn std::fmt::Display) -> GatewayError + '_ {
    move |e| GatewayError(format!("{context}: {e}"))
}

/// The value after `name` on the command line.
pub fn cli_arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

/// Where a front door listens: `flag` on the command line, else the environment variable
/// `env`, else `default`.
pub fn listen_arg(flag: &str, env: &str, default: &str) -> String {
    cli_arg(flag)
        .or_else(|| std::env::var(env).ok())
        .unwrap_or_else(|| default.into())
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
    if !prepared.migration.accounts_created.is_empty() {
        writeln!(
            out,
            "user directory migrated: accounts created for wallet users {}",
            prepared.migration.accounts_created.join(", ")
        )?;
    }
    writeln!(out, "data directory: {}", prepared.data_dir.display())
}

/// The data directory: `--data-dir`, else `GATEWAY_DATA_DIR`, else `./gateway-data`.
pub fn data_dir_from_args() -> PathBuf {
    cli_arg("--data-dir")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("GATEWAY_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("gateway-data"))
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
    /// Failure counts, shared by every front door: a password guessed over pgwire and
    /// over HTTP counts against one budget.
    pub limiter: Arc<dyn RateLimiter>,
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
    /// `trusted_proxies`: whose PROXY headers and forwarding headers name the client.
    pub trusted_proxies: Arc<TrustedProxies>,
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

/// Loads the data directory, creating what is missing: master key, certificate, config,
/// and the demo user.
pub async fn prepare(data_dir: &Path) -> Result<Prepared, GatewayError> {
    std::fs::create_dir_all(data_dir).map_err(|e| err("create the data directory")(&e))?;
    let key_path = data_dir.join("master.key");
    if !key_path.exists() {
        MasterKey::generate()
            .and_then(|k| k.write_new_file(&key_path))
            .map_err(|e| err("master key")(&e))?;
    }
    let key = MasterKey::from_file(&key_path).map_err(|e| err("master key")(&e))?;

    let (cert_path, tls_key_path) = (data_dir.join("server.crt"), data_dir.join("server.key"));
    if !cert_path.exists() {
        let (_, cert_pem, key_pem) = TlsSetup::self_signed(&["localhost", "127.0.0.1"])
            .map_err(|e| err("certificate")(&e))?;
        write_private(&tls_key_path, key_pem.as_bytes())?;
        std::fs::write(&cert_path, cert_pem).map_err(|e| err("certificate")(&e))?;
    }
    let cert = std::fs::read(&cert_path).map_err(|e| err("certificate")(&e))?;
    let tls_key = std::fs::read(&tls_key_path).map_err(|e| err("TLS key")(&e))?;

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
    let mut text = std::fs::read_to_string(&config_path).map_err(|e| err("config")(&e))?;
    let mut config_upgraded = Vec::new();
    if let Some(up) = upgrade::upgrade(&text) {
        // The old file is kept beside the new one, so the operator can compare.
        let old = data_dir.join("gateway.toml.before-upgrade");
        std::fs::write(&old, &text).map_err(|e| err("config")(&e))?;
        std::fs::write(&config_path, &up.text).map_err(|e| err("config")(&e))?;
        config_upgraded = up.messages;
        text = up.text;
    }
    let config = GatewayConfig::parse(&text)
        .map_err(|e| GatewayError(format!("{}: {e}", config_path.display())))?;

    let client_cas = client_cas(data_dir, &config.client_certificates)?;
    let tls = match &client_cas {
        Some(cas) => TlsSetup::from_pem_with_client_cas(&cert, &tls_key, cas),
        None => TlsSetup::from_pem(&cert, &tls_key),
    }
    .map_err(|e| err("TLS")(&e))?;
    let client_name = config
        .client_certificates
        .client_name()
        .map_err(GatewayError)?;

    let wallet = Arc::new(Wallet::new(
        Arc::new(FileStore::new(data_dir.join("wallet.db"))),
        key,
    ));
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
        let hasher = Hasher::new(Argon2Settings::default()).map_err(|e| err("hasher")(&e))?;
        users
            .set_password(&hasher, &PasswordPolicy::default(), "demo", &password)
            .await
            .map_err(|e| err("demo user")(&e))?;
        Some(password)
    } else {
        None
    };
    let audit_path = data_dir.join(&config.audit_log);
    let audit_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&audit_path)
        .map_err(|e| GatewayError(format!("audit log {}: {e}", audit_path.display())))?;
    let limiter = limiter(&config)?;
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
    let oauth = oauth::setup(
        data_dir,
        &config.oauth_issuers,
        config.oauth_password.as_ref(),
        &wallet,
    )
    .await?;
    let issuer = Arc::new(crate::api::LocalIssuer::load_or_create(data_dir)?);
    let trusted_proxies = TrustedProxies::parse(config.trusted_proxies.iter().map(String::as_str))
        .map_err(|e| GatewayError(format!("gateway.toml: {e}")))?;
    Ok(Prepared {
        trusted_proxies: Arc::new(trusted_proxies),
        issuer,
        config_upgraded,
        oauth,
        accounts,
        migration,
        client_cas,
        client_name,
        config,
        wallet,
        tls,
        demo_password,
        data_dir: data_dir.to_owned(),
        mock_secret,
        audit: Arc::new(JsonLinesAuditSink::new(audit_file)),
        limiter,
    })
}

/// The `[client_certificates]` CAs and CRLs, read from the data directory.
fn client_cas(
    data_dir: &Path,
    section: &ClientCertificatesConfig,
) -> Result<Option<Arc<TrustedIssuers>>, GatewayError> {
    let Some(ca_file) = &section.ca_file else {
        return Ok(None);
    };
    let read = |file: &str| {
        let path = data_dir.join(file);
        std::fs::read(&path)
            .map_err(|e| GatewayError(format!("[client_certificates] {}: {e}", path.display())))
    };
    let mut cas = TrustedIssuers::from_pem(&read(ca_file)?).map_err(|e| {
        GatewayError(format!(
            "[client_certificates] ca_file = \"{ca_file}\": {e}"
        ))
    })?;
    if let Some(crl_file) = &section.crl_file {
        cas = cas.with_crls_pem(&read(crl_file)?).map_err(|e| {
            GatewayError(format!(
                "[client_certificates] crl_file = \"{crl_file}\": {e}"
            ))
        })?;
    }
    Ok(Some(Arc::new(cas)))
}

/// The one limiter every front door shares, as `[rate_limit]` says; with limiting
/// disabled, a limiter that limits nothing.
fn limiter(config: &GatewayConfig) -> Result<Arc<dyn RateLimiter>, GatewayError> {
    let settings = config
        .rate_limit
        .settings()
        .map_err(|e| GatewayError(e.to_string()))?;
    Ok(Arc::new(MemoryRateLimiter::new(settings.unwrap_or(
        LimitSettings {
            user_failures: u32::MAX,
            address_failures: u32::MAX,
            max_running_per_address: u32::MAX,
            ..LimitSettings::default()
        },
    ))))
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
    let configured = &prepared.config.unix_socket_directory;
    if configured.is_empty() {
        return Ok(None);
    }
    // psql takes a host starting with `/` for a socket directory: make it absolute.
    let dir = prepared
        .data_dir
        .join(configured)
        .canonicalize()
        .map_err(|e| GatewayError(format!("unix_socket_directory `{configured}`: {e}")))?;
    UnixSocket::bind(&dir, port, prepared.config.unix_socket_permissions)
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
    pub trusted_proxies: Arc<TrustedProxies>,
    /// How long a connection may stay unauthenticated (`auth_timeout`).
    pub auth_timeout: std::time::Duration,
}

impl Doors {
    /// The doors of `prepared`, auditing refusals to `engine`'s log.
    pub fn new(prepared: &Prepared, engine: &Engine) -> Self {
        let c = &prepared.config;
        let settings = AdmissionSettings::new(
            c.max_unauthenticated_connections,
            c.max_unauthenticated_per_address,
        )
        .with_wait(c.unauthenticated_wait)
        .with_silent(
            c.max_silent_per_address,
            AdmissionSettings::default().max_silent,
            c.silent_timeout,
        );
        Self {
            admission: Arc::new(Admission::new(settings).audited_by(engine)),
            trusted_proxies: prepared.trusted_proxies.clone(),
            auth_timeout: c.auth_timeout,
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

/// The pgwire address: `--listen` on the command line, else `GATEWAY_LISTEN`, else
/// `listen` in `gateway.toml`.
pub fn listen_addr(prepared: &Prepared) -> Result<SocketAddr, GatewayError> {
    match cli_arg("--listen").or_else(|| std::env::var("GATEWAY_LISTEN").ok()) {
        Some(text) => text.parse().map_err(|_| {
            GatewayError(format!(
                "--listen `{text}` is not an address like 127.0.0.1:6432"
            ))
        }),
        None => Ok(prepared.config.listen),
    }
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
