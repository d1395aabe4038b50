//! `authctl`: administer the secret wallet and the users in it.
//!
//! Secrets and passwords are read from a prompt (without echo) or from standard input,
//! never from the command line, where other users could see them; no secret is printed
//! unless `--reveal` is given.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::account::{Directory, UserStatus};
use auth_core::audit::{AuditEvent, AuditEventKind, AuditFile, AuditSink};
use auth_core::{
    ApiKeyAuthenticator, ApiKeyGrant, CredentialStore, Key, Precondition, Role, StoreError,
};
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_wallet::{DEFAULT_USER_PREFIX, MasterKey, PostgresStore, Wallet};
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Administer the encrypted secret wallet (file or PostgreSQL) and its users.
#[derive(Parser)]
#[command(name = "authctl", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct StoreArgs {
    /// The wallet file (the embedded default backend).
    #[arg(
        long,
        env = "AUTH_WALLET_PATH",
        global = true,
        conflicts_with = "postgres"
    )]
    wallet: Option<PathBuf>,
    /// A PostgreSQL URL for the shared backend, e.g. postgres://user@host/db
    /// (`?sslmode=verify-full&sslrootcert=FILE` for TLS, as libpq reads it).
    #[arg(long, env = "AUTH_WALLET_POSTGRES_URL", global = true)]
    postgres: Option<String>,
    /// The CA (PEM) that signed the PostgreSQL server's certificate: connects over TLS
    /// with sslmode=verify-full (the certificate must also name the host).
    #[arg(
        long,
        env = "AUTH_WALLET_POSTGRES_CA",
        global = true,
        requires = "postgres"
    )]
    postgres_ca: Option<PathBuf>,
    /// The master key file (mode 0600).
    #[arg(
        long,
        env = "AUTH_WALLET_KEY_FILE",
        global = true,
        conflicts_with = "key_env"
    )]
    key_file: Option<PathBuf>,
    /// The environment variable holding the master key (base64 or hex).
    #[arg(long, env = "AUTH_WALLET_KEY_ENV", global = true)]
    key_env: Option<String>,
    /// The audit log (JSON lines) that account changes are appended to; default:
    /// `audit.jsonl` next to a wallet file (the gateway's), none for PostgreSQL.
    #[arg(long, env = "AUTH_AUDIT_LOG", global = true)]
    audit_log: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Master keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Secrets in the wallet.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Users (accounts, argon2id password hashes and SCRAM verifiers) in the wallet.
    #[command(subcommand)]
    User(UserCommand),
    /// API keys (`<id>.<secret>`) that act as a user.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Identities (Kerberos principals, certificate subjects, token subjects) mapped to
    /// users.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Write every secret (or those under --prefix) to an encrypted, authenticated bundle.
    Export {
        /// The bundle file to create.
        file: PathBuf,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Restore a bundle made by `export` with the same master key.
    Import {
        /// The bundle file.
        file: PathBuf,
    },
    /// Re-encrypt every secret under a new master key (the old one is needed this once).
    Rekey {
        /// The new master key file (make one with `authctl key generate`).
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a new random master key file with mode 0600.
    Generate {
        /// Where to write it (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Store a secret (read from the prompt or standard input).
    Set {
        /// The key, e.g. pgwire-user-alice or pgwire-oauth-client.
        key: String,
    },
    /// Show a secret's metadata; its value only with --reveal.
    Get {
        /// The key.
        key: String,
        /// Print the value too.
        #[arg(long)]
        reveal: bool,
    },
    /// Replace an existing secret's value (read from the prompt or standard input).
    Rotate {
        /// The key.
        key: String,
    },
    /// Delete a secret.
    Delete {
        /// The key.
        key: String,
    },
    /// List keys and metadata (never values).
    List {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (password from the prompt or standard input).
    Add {
        /// The user name.
        name: String,
        /// Roles (user, service, dba, system); repeatable.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Change a user's password.
    Passwd {
        /// The user name.
        name: String,
    },
    /// Delete a user.
    Del {
        /// The user name.
        name: String,
    },
    /// Refuse every login of the user, by every method, from the next attempt on.
    Disable {
        /// The user name.
        name: String,
    },
    /// Allow the user to log in again (also clears a lock).
    Enable {
        /// The user name.
        name: String,
    },
    /// End the account's validity: refused by every method from then on.
    Expire {
        /// The user name.
        name: String,
        /// When: RFC 3339 (`2027-01-31T00:00:00Z`) or `now`.
        #[arg(long)]
        at: String,
    },
    /// Make a user a system account (local maintenance): it logs in only from this
    /// machine, or with `--remote-login` also from others but then only with a password.
    /// Creates the account, without a password, if there is none (for `peer` or
    /// `trust` rules).
    System {
        /// The user name.
        name: String,
        /// Also from other machines, with a password.
        #[arg(long, conflicts_with = "off")]
        remote_login: bool,
        /// Make it an ordinary account again.
        #[arg(long)]
        off: bool,
    },
    /// Add or remove roles (user, service, dba, system).
    #[command(subcommand)]
    Role(RoleCommand),
    /// Show a user's account (never its password).
    Show {
        /// The user name.
        name: String,
    },
}

#[derive(Subcommand)]
enum RoleCommand {
    /// Grant a role.
    Add {
        /// The user name.
        name: String,
        /// The role.
        role: String,
    },
    /// Take a role away.
    Remove {
        /// The user name.
        name: String,
        /// The role.
        role: String,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key for a user; prints the key once.
    Create {
        /// The user the key acts as (an existing account).
        #[arg(long)]
        user: String,
        /// Scopes the key grants (narrowing the account's); repeatable.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List keys (ids, users, scopes; never secrets).
    List,
    /// Revoke a key; it stops working at its next use.
    Revoke {
        /// The key id (the part before the dot).
        id: String,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Let an identity proved by a method act as a user.
    Map {
        /// The method: kerberos, certificate, oauth.
        method: String,
        /// The identity (`alice/admin@EXAMPLE.COM`, a certificate subject).
        identity: String,
        /// The user.
        user: String,
    },
    /// Remove a mapping.
    Unmap {
        /// The method.
        method: String,
        /// The identity.
        identity: String,
    },
}

/// An error with what to do about it.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

fn key_of(name: &str) -> Result<Key, Failure> {
    Key::new(name).map_err(|e| Failure(e.to_string()))
}

fn master_key(args: &StoreArgs) -> Result<MasterKey, Failure> {
    match (&args.key_file, &args.key_env) {
        (Some(path), _) => Ok(MasterKey::from_file(path)?),
        (None, Some(var)) => Ok(MasterKey::from_env(var)?),
        (None, None) => Err(Failure(
            "no master key: pass --key-file PATH or --key-env VAR (authctl key generate --out PATH makes one)".into(),
        )),
    }
}

/// The wallet the arguments name: a file (authenticated as a whole under a key derived
/// from the master key, and migrated once from an older format) or PostgreSQL.
async fn open_wallet(args: &StoreArgs, key: MasterKey) -> Result<Wallet, Failure> {
    match (&args.wallet, &args.postgres) {
        (Some(path), _) => Ok(Wallet::open_file(path, key).await?),
        (None, Some(url)) => {
            let store = match &args.postgres_ca {
                Some(ca) => PostgresStore::connect_verified(url, ca).await?,
                None => PostgresStore::connect(url).await?,
            };
            let wallet = Wallet::new(Arc::new(store), key);
            wallet.migrate().await?;
            Ok(wallet)
        }
        (None, None) => Err(Failure(
            "no wallet: pass --wallet PATH (file) or --postgres URL (shared backend)".into(),
        )),
    }
}

/// Reads a secret: from a no-echo prompt (asked twice when `confirm`) on a terminal, else
/// all of standard input without its final newline.
fn read_secret(what: &str, confirm: bool) -> Result<SecretString, Failure> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password(format!("{what}: "))?);
        if confirm {
            let again = Zeroizing::new(rpassword::prompt_password(format!("{what} again: "))?);
            if *first != *again {
                return Err(Failure(
                    "the two entries differ; nothing was changed".into(),
                ));
            }
        }
        return Ok(SecretString::from(first.to_string()));
    }
    let mut text = Zeroizing::new(String::new());
    stdin.lock().read_to_string(&mut text)?;
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(Failure(format!("no {what} on standard input")));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

fn hasher() -> Result<Hasher, Failure> {
    Ok(Hasher::new(Argon2Settings::default())?)
}

fn random_bytes(n: usize) -> Result<Vec<u8>, Failure> {
    let mut random = vec![0u8; n];
    getrandom::fill(&mut random).map_err(|e| Failure(format!("randomness: {e}")))?;
    Ok(random)
}

/// `bytes` random bytes as URL-safe text.
fn random_text(bytes: usize) -> Result<String, Failure> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(bytes)?))
}

/// Where account changes are audited: the gateway's JSON-lines log, or nowhere.
struct ChangeLog(Option<Arc<AuditFile>>);

impl ChangeLog {
    fn open(args: &StoreArgs) -> Result<Self, Failure> {
        let path = args.audit_log.clone().or_else(|| {
            let wallet = args.wallet.as_ref()?;
            let path = wallet.parent()?.join("audit.jsonl");
            path.exists().then_some(path)
        });
        let Some(path) = path else {
            return Ok(Self(None));
        };
        // The gateway's own writer: created 0600, and written out when authctl exits.
        let file = AuditFile::open(&path)
            .map_err(|e| Failure(format!("audit log {}: {e}", path.display())))?;
        Ok(Self(Some(Arc::new(file))))
    }

    fn changed(&self, user: &str, detail: &str) {
        let Some(sink) = &self.0 else { return };
        sink.record(
            &AuditEvent::local(
                AuditEventKind::AccountChanged,
                SystemTime::now(),
                "authctl",
                "changed",
            )
            .with_user((!user.is_empty()).then_some(user))
            .with_failure(None, Some(detail)),
        );
    }
}

fn when(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "never".into(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    if let Command::Key(KeyCommand::Generate { out: path }) = &cli.command {
        let key = MasterKey::generate()?;
        key.write_new_file(path)?;
        writeln!(
            out,
            "wrote master key {} to {} (mode 0600)",
            key.fingerprint(),
            path.display()
        )?;
        return Ok(());
    }
    let key = master_key(&cli.store)?;
    let audit = ChangeLog::open(&cli.store)?;
    // The wallet's own events (secrets set, rotated, exported, imported, re-keyed) go to
    // the same log as the account changes.
    let wallet = open_wallet(&cli.store, key).await?;
    let wallet = match &audit.0 {
        Some(sink) => wallet.with_audit(sink.clone()),
        None => wallet,
    };
    match cli.command {
        Command::Key(_) => {}
        Command::Secret(SecretCommand::Set { key }) => {
            let k = key_of(&key)?;
            let value = read_secret("secret", true)?;
            let v = wallet
                .put(
                    &k,
                    value.expose_secret().as_bytes().to_vec().into(),
                    Precondition::None,
                )
                .await?;
            writeln!(out, "stored {key} (version {v})")?;
            // A wallet secret for a user makes an account, so the user can log in (the
            // account stage refuses users without one).
            if let Some(user) = key.strip_prefix(DEFAULT_USER_PREFIX) {
                let directory = Directory::new(Arc::new(wallet));
                if directory.key(user).is_some() && directory.get(user).await?.is_none() {
                    directory.update(user, |_| {}).await?;
                    writeln!(out, "created account {user}")?;
                    audit.changed(user, "account created for a wallet secret");
                }
            }
        }
        Command::Secret(SecretCommand::Rotate { key }) => {
            let k = key_of(&key)?;
            let Some(current) = wallet.get(&k).await? else {
                return Err(Failure(format!(
                    "no secret {key}; use `secret set` to create it"
                )));
            };
            let value = read_secret("new secret", true)?;
            let v = wallet
                .put(
                    &k,
                    value.expose_secret().as_bytes().to_vec().into(),
                    Precondition::Version(current.meta.version),
                )
                .await
                .map_err(|e| match e {
                    StoreError::Conflict { .. } => Failure(format!(
                        "{key} changed while rotating; run the rotation again"
                    )),
                    other => Failure(other.to_string()),
                })?;
            writeln!(
                out,
                "rotated {key} (version {v}); every server sees it on its next read"
            )?;
        }
        Command::Secret(SecretCommand::Get { key, reveal }) => {
            let k = key_of(&key)?;
            let Some(record) = wallet.get(&k).await? else {
                return Err(Failure(format!("no secret {key}")));
            };
            writeln!(out, "key: {key}\nversion: {}", record.meta.version)?;
            writeln!(
                out,
                "created: {}\nupdated: {}",
                when(Some(record.meta.created)),
                when(Some(record.meta.updated))
            )?;
            writeln!(out, "last accessed: {}", when(record.meta.last_accessed))?;
            if reveal {
                let value = String::from_utf8_lossy(record.value.expose_secret()).into_owned();
                writeln!(out, "value: {}", Zeroizing::new(value).as_str())?;
            }
        }
        Command::Secret(SecretCommand::Delete { key }) => {
            let deleted = wallet.delete(&key_of(&key)?, Precondition::None).await?;
            if !deleted {
                return Err(Failure(format!("no secret {key}")));
            }
            writeln!(out, "deleted {key}")?;
        }
        Command::Secret(SecretCommand::List { prefix }) => {
            for m in wallet.list(&prefix).await? {
                writeln!(
                    out,
                    "{}\tversion {}\tupdated {}\tlast accessed {}",
                    m.key,
                    m.version,
                    when(Some(m.updated)),
                    when(m.last_accessed)
                )?;
            }
        }
        Command::Export { file, prefix } => {
            let bundle = wallet.export(&prefix).await?;
            std::fs::write(&file, bundle)?;
            writeln!(out, "exported to {}", file.display())?;
        }
        Command::Import { file } => {
            let bundle = std::fs::read(&file)?;
            let counts = wallet.import(&bundle).await?;
            writeln!(out, "imported {} secrets", counts.records)?;
        }
        Command::Rekey { new_key_file } => {
            let new_key = MasterKey::from_file(&new_key_file)?;
            let fingerprint = new_key.fingerprint();
            let (_, counts) = wallet.rekey(new_key).await?;
            writeln!(
                out,
                "re-encrypted {} secrets under key {fingerprint}; use the new key file from now on",
                counts.records
            )?;
        }
        Command::User(cmd) => {
            let users = Users::new(Arc::new(wallet));
            let directory = users.directory();
            match cmd {
                UserCommand::Add { name, roles } => {
                    if users.get(&name).await?.is_some() {
                        return Err(Failure(format!(
                            "user {name} exists; use `user passwd` to change the password"
                        )));
                    }
                    let roles = roles
                        .iter()
                        .map(|r| r.parse::<Role>())
                        .collect::<Result<Vec<_>, _>>()?;
                    let password = read_secret("password", true)?;
                    users
                        .set_password(&hasher()?, &PasswordPolicy::default(), &name, &password)
                        .await?;
                    users.update(&name, |rec| rec.roles = roles.clone()).await?;
                    writeln!(out, "created user {name}")?;
                    audit.changed(&name, "user created");
                }
                UserCommand::Passwd { name } => {
                    if users.get(&name).await?.is_none() {
                        return Err(Failure(format!("no user {name}; use `user add`")));
                    }
                    let password = read_secret("new password", true)?;
                    users
                        .set_password(&hasher()?, &PasswordPolicy::default(), &name, &password)
                        .await?;
                    writeln!(out, "changed the password of {name}")?;
                    audit.changed(&name, "password changed");
                }
                UserCommand::Del { name } => {
                    let k = users
                        .key(&name)
                        .ok_or_else(|| Failure(format!("no user {name}")))?;
                    if !users.store().delete(&k, Precondition::None).await? {
                        return Err(Failure(format!("no user {name}")));
                    }
                    writeln!(out, "deleted user {name}")?;
                    audit.changed(&name, "user deleted");
                }
                UserCommand::Disable { name } => {
                    directory
                        .modify(&name, |r| r.status = UserStatus::Disabled)
                        .await?;
                    writeln!(out, "disabled {name}: every login is refused from now on")?;
                    audit.changed(&name, "account disabled");
                }
                UserCommand::Enable { name } => {
                    directory
                        .modify(&name, |r| r.status = UserStatus::Active)
                        .await?;
                    writeln!(out, "enabled {name}")?;
                    audit.changed(&name, "account enabled");
                }
                UserCommand::Expire { name, at } => {
                    let at = if at == "now" {
                        SystemTime::now()
                    } else {
                        humantime::parse_rfc3339_weak(&at).map_err(|_| {
                            Failure(format!(
                                "`{at}` is not a time like 2027-01-31T00:00:00Z (or `now`)"
                            ))
                        })?
                    };
                    let secs = at
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    directory
                        .modify(&name, |r| r.valid_until = Some(secs))
                        .await?;
                    let at = humantime::format_rfc3339_seconds(at);
                    writeln!(out, "{name} expires at {at}")?;
                    audit.changed(&name, &format!("account expires at {at}"));
                }
                UserCommand::System {
                    name,
                    remote_login,
                    off,
                } => {
                    let change = |r: &mut auth_core::account::UserRecord| {
                        r.system = !off;
                        r.remote_login = remote_login;
                    };
                    // Turning it off never creates an account (a typo stays an error).
                    if off {
                        directory.modify(&name, change).await?;
                    } else {
                        directory.update(&name, change).await?;
                    }
                    let what = match (off, remote_login) {
                        (true, _) => "an ordinary account",
                        (false, false) => "a system account, logging in only from this machine",
                        (false, true) => {
                            "a system account, logging in from other machines only with a password"
                        }
                    };
                    writeln!(out, "{name} is {what}")?;
                    audit.changed(&name, &format!("now {what}"));
                }
                UserCommand::Role(RoleCommand::Add { name, role }) => {
                    let role: Role = role.parse()?;
                    directory
                        .modify(&name, |r| {
                            if !r.roles.contains(&role) {
                                r.roles.push(role);
                            }
                        })
                        .await?;
                    writeln!(out, "granted {role} to {name}")?;
                    audit.changed(&name, &format!("role {role} granted"));
                }
                UserCommand::Role(RoleCommand::Remove { name, role }) => {
                    let role: Role = role.parse()?;
                    directory
                        .modify(&name, |r| r.roles.retain(|x| *x != role))
                        .await?;
                    writeln!(out, "took {role} from {name}")?;
                    audit.changed(&name, &format!("role {role} removed"));
                }
                UserCommand::Show { name } => {
                    let Some((r, _)) = directory.get(&name).await? else {
                        return Err(Failure(format!("no user {name}")));
                    };
                    let roles: Vec<&str> = r.roles.iter().map(|x| x.as_str()).collect();
                    writeln!(out, "user: {name}\nstatus: {:?}", r.status)?;
                    writeln!(
                        out,
                        "valid until: {}",
                        when(
                            r.valid_until
                                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                        )
                    )?;
                    writeln!(
                        out,
                        "roles: {}\nscopes: {}",
                        roles.join(" "),
                        r.scopes.join(" ")
                    )?;
                    let system = match (r.system, r.remote_login) {
                        (false, _) => "no",
                        (true, false) => "yes, from this machine only",
                        (true, true) => "yes, from other machines only with a password",
                    };
                    writeln!(out, "system account: {system}")?;
                    writeln!(
                        out,
                        "password: {}",
                        if r.password_hash.is_some() {
                            "set"
                        } else {
                            "none"
                        }
                    )?;
                }
            }
        }
        Command::Apikey(cmd) => {
            let store: Arc<dyn CredentialStore> = Arc::new(wallet);
            match cmd {
                ApiKeyCommand::Create { user, scopes } => {
                    let directory = Directory::new(store.clone());
                    if directory.get(&user).await?.is_none() {
                        return Err(Failure(format!("no user {user}; create it first")));
                    }
                    // Hex, so that an id never starts with `-` on a command line.
                    let id: String = random_bytes(8)?
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    let secret = SecretString::from(random_text(30)?);
                    let grant = ApiKeyGrant {
                        principal: user.clone(),
                        roles: Vec::new(),
                        scopes,
                    };
                    let key =
                        ApiKeyAuthenticator::register(store.as_ref(), &id, &secret, grant).await?;
                    writeln!(out, "{}", key.expose_secret())?;
                    writeln!(out, "created API key {id} for {user} (shown once)")?;
                    audit.changed(&user, &format!("API key {id} created"));
                }
                ApiKeyCommand::List => {
                    for k in ApiKeyAuthenticator::list(store.as_ref()).await? {
                        writeln!(
                            out,
                            "{}\tuser {}\tscopes {}\tupdated {}",
                            k.id,
                            k.grant.principal,
                            k.grant.scopes.join(" "),
                            when(Some(k.updated))
                        )?;
                    }
                }
                ApiKeyCommand::Revoke { id } => {
                    let user = ApiKeyAuthenticator::list(store.as_ref())
                        .await?
                        .into_iter()
                        .find(|k| k.id == id)
                        .map(|k| k.grant.principal);
                    if !ApiKeyAuthenticator::revoke(store.as_ref(), &id).await? {
                        return Err(Failure(format!("no API key {id}")));
                    }
                    writeln!(out, "revoked API key {id}")?;
                    audit.changed(
                        user.as_deref().unwrap_or(""),
                        &format!("API key {id} revoked"),
                    );
                }
            }
        }
        Command::Identity(cmd) => {
            let directory = Directory::new(Arc::new(wallet));
            match cmd {
                IdentityCommand::Map {
                    method,
                    identity,
                    user,
                } => {
                    directory.map_identity(&method, &identity, &user).await?;
                    writeln!(out, "{method} identity {identity} may act as {user}")?;
                    audit.changed(&user, &format!("{method} identity {identity} mapped"));
                }
                IdentityCommand::Unmap { method, identity } => {
                    if !directory.unmap_identity(&method, &identity).await? {
                        return Err(Failure(format!(
                            "no mapping for {method} identity {identity}"
                        )));
                    }
                    writeln!(out, "removed the mapping of {method} identity {identity}")?;
                    audit.changed("", &format!("{method} identity {identity} unmapped"));
                }
            }
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            let _ = writeln!(std::io::stderr(), "authctl: {message}");
            ExitCode::FAILURE
        }
    }
}
