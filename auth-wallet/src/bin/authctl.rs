//! `authctl`: administer the secret wallet and the users in it.
//!
//! Secrets and passwords are read from a prompt (without echo) or from standard input,
//! never from the command line, where other users could see them; no secret is printed
//! unless `--reveal` is given.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use auth_core::{CredentialStore, Key, Precondition, StoreError};
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_wallet::{FileStore, MasterKey, PostgresStore, Wallet};
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
    /// A PostgreSQL URL for the shared backend, e.g. postgres://user@host/db.
    #[arg(long, env = "AUTH_WALLET_POSTGRES_URL", global = true)]
    postgres: Option<String>,
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
}

#[derive(Subcommand)]
enum Command {
    /// Master keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Secrets in the wallet.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Users (argon2id password hashes and SCRAM verifiers) in the wallet.
    #[command(subcommand)]
    User(UserCommand),
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

async fn backend(args: &StoreArgs) -> Result<Arc<dyn CredentialStore>, Failure> {
    match (&args.wallet, &args.postgres) {
        (Some(path), _) => Ok(Arc::new(FileStore::new(path))),
        (None, Some(url)) => Ok(Arc::new(PostgresStore::connect(url).await?)),
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
    let wallet = Wallet::new(backend(&cli.store).await?, key);
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
            let hasher = Hasher::new(Argon2Settings::default())?;
            match cmd {
                UserCommand::Add { name, roles } => {
                    if users.get(&name).await?.is_some() {
                        return Err(Failure(format!(
                            "user {name} exists; use `user passwd` to change the password"
                        )));
                    }
                    for r in &roles {
                        r.parse::<auth_core::Role>()?;
                    }
                    let password = read_secret("password", true)?;
                    users
                        .set_password(&hasher, &PasswordPolicy::default(), &name, &password)
                        .await?;
                    users.update(&name, |rec| rec.roles = roles.clone()).await?;
                    writeln!(out, "created user {name}")?;
                }
                UserCommand::Passwd { name } => {
                    if users.get(&name).await?.is_none() {
                        return Err(Failure(format!("no user {name}; use `user add`")));
                    }
                    let password = read_secret("new password", true)?;
                    users
                        .set_password(&hasher, &PasswordPolicy::default(), &name, &password)
                        .await?;
                    writeln!(out, "changed the password of {name}")?;
                }
                UserCommand::Del { name } => {
                    let k = users
                        .key(&name)
                        .ok_or_else(|| Failure(format!("no user {name}")))?;
                    if !users.store().delete(&k, Precondition::None).await? {
                        return Err(Failure(format!("no user {name}")));
                    }
                    writeln!(out, "deleted user {name}")?;
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
