//! Configuration-file sections: a trusted issuer of bearer JWTs ([`IssuerSettings`], one
//! `[[oauth_issuer]]`), the OAuth server passwords are exchanged at
//! ([`PasswordGrantSettings`], `[oauth_password]`) and the RFC 7662 endpoint opaque tokens
//! are introspected at ([`IntrospectionSettings`], `[oauth_introspection]`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use auth_core::CredentialStore;
use auth_core::clock::system_clock;
use auth_core::settings::Invalid;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::authenticator::{IssuerConfig, JwtAuthenticator, ValidationSettings};
use crate::client_auth::{AssertionKey, ClientAuth, ClientSecret, client_secret_from_env};
use crate::http::{HttpClient, check_url};
use crate::introspection::{IntrospectionAuthenticator, IntrospectionConfig};
use crate::password_grant::{PasswordGrantAuthenticator, PasswordGrantConfig};

/// How often a client secret kept in the store (the wallet) is read again.
const STORE_REREAD: Duration = Duration::from_secs(3600);

/// An HTTP client trusting, besides the usual roots, the CAs in `ca_file` (PEM, relative
/// to `base_dir`); refused as `ca_file`.
fn http_client(base_dir: &Path, ca_file: Option<&Path>) -> Result<HttpClient, Invalid> {
    let mut builder = HttpClient::builder();
    if let Some(file) = ca_file {
        let path = base_dir.join(file);
        let refused =
            |e: &dyn std::fmt::Display| Invalid::new("ca_file", format!("{}: {e}", path.display()));
        let pem = std::fs::read(&path).map_err(|e| refused(&e))?;
        builder = builder.add_ca_pem(&pem).map_err(|e| refused(&e))?;
    }
    builder
        .build()
        .map_err(|e| Invalid::new("ca_file", e.to_string()))
}

/// `key`'s URL, required: empty is refused with an example, and anything but `https://`
/// (or `http://` to loopback) as [`check_url`] refuses it.
fn required_url(key: &str, url: &str, example: &str) -> Option<Invalid> {
    if url.trim().is_empty() {
        return Some(Invalid::new(key, "required").hint(format!("{key} = \"{example}\"")));
    }
    check_url(url)
        .err()
        .map(|e| Invalid::new(key, e.to_string()))
}

/// Whether `name` looks like an environment variable's name rather than a value.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One trusted issuer of bearer JWTs (one `[[oauth_issuer]]`), its keys found by
/// discovery (`<issuer>/.well-known/openid-configuration`), fetched when first needed.
///
/// `issuer` and `audience` are required (the default, empty, is refused by
/// [`check`](Self::check) and [`build`](Self::build)).
///
/// ```
/// use auth_oauth::IssuerSettings;
///
/// let settings: IssuerSettings = toml::from_str(
///     r#"
///     issuer = "https://idp.example"
///     audience = "pg-gateway"
///     "#,
/// )
/// .unwrap();
/// assert!(settings.check().is_empty());
/// let jwt = settings.build(std::path::Path::new("/var/lib/gateway")).unwrap();
/// # let _ = jwt;
///
/// // Plain http off loopback is refused, naming the key.
/// let plain: IssuerSettings =
///     toml::from_str("issuer = \"http://idp.example\"\naudience = \"pg\"").unwrap();
/// assert_eq!(plain.check()[0].key, "issuer");
/// ```
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerSettings {
    /// The issuer exactly as its tokens name it in `iss` (`https://`; plain `http://`
    /// only to loopback). Required.
    pub issuer: String,
    /// The audience its tokens must name for this service (`aud`). Required.
    pub audience: String,
    /// The CA bundle (PEM) that issued the issuer's HTTPS certificate, relative to the
    /// data directory, when it is not a public one (trusted besides the usual roots). No
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The claim naming the user, when not `sub` (the default): only for an issuer you
    /// control, since only `sub` is promised unique and never reassigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
}

impl IssuerSettings {
    /// The values that cannot be used, without reading files or calling the issuer
    /// (empty when all can).
    pub fn check(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        problems.extend(required_url("issuer", &self.issuer, "https://idp.example"));
        if self.audience.trim().is_empty() {
            problems.push(
                Invalid::new(
                    "audience",
                    "required: the audience tokens name for this service",
                )
                .hint("audience = \"pg-gateway\""),
            );
        }
        if self
            .username_claim
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            problems.push(
                Invalid::new("username_claim", "the claim name is empty")
                    .hint("leave the key out to name users by `sub`"),
            );
        }
        problems
    }

    /// The validator, its keys found by discovery on first use through an HTTP client
    /// that also trusts `ca_file` (relative to `base_dir`). Nothing is fetched here.
    pub fn build(&self, base_dir: &Path) -> Result<JwtAuthenticator, Invalid> {
        if let Some(first) = self.check().into_iter().next() {
            return Err(first);
        }
        let http = http_client(base_dir, self.ca_file.as_deref())?;
        let config =
            IssuerConfig::discovery(self.issuer.clone(), self.audience.clone()).with_http(http);
        let settings = ValidationSettings {
            username_claim: self.username_claim.clone(),
            ..ValidationSettings::default()
        };
        JwtAuthenticator::new(vec![config], settings)
            .map_err(|e| Invalid::new("issuer", e.to_string()))
    }
}

/// How the client authenticates to the token endpoint (`token_endpoint_auth_method`),
/// written as its registered name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: the secret in HTTP Basic (the default).
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: the secret in the form body.
    ClientSecretPost,
    /// `client_secret_jwt`: an HS256 assertion signed with the secret, which never
    /// leaves this process.
    ClientSecretJwt,
    /// `private_key_jwt`: an assertion signed with `private_key_file`; the server holds
    /// only the public key.
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The registered name, as the file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Whether the method authenticates with a client secret.
    pub fn uses_secret(self) -> bool {
        self != Self::PrivateKeyJwt
    }
}

/// The OAuth server user names and passwords are exchanged at for tokens (the
/// resource-owner password grant): the `[oauth_password]` section.
///
/// `token_endpoint` and `client_id` are required (the default, empty, is refused), and so
/// is the client's credential: for the `client_secret_*` methods exactly one of
/// `client_secret_env`, `client_secret_wallet` or `client_secret_file`; for
/// `private_key_jwt`, `private_key_file`. Secrets are never written here, only where they
/// are.
///
/// ```
/// use auth_oauth::{ClientAuthMethod, PasswordGrantSettings};
///
/// let settings: PasswordGrantSettings = toml::from_str(
///     r#"
///     token_endpoint = "https://idp.example/oauth/token"
///     client_id = "pg-gateway"
///     client_secret_wallet = "pgwire-oauth-client"
///     timeout = "3s"
///     "#,
/// )
/// .unwrap();
/// assert_eq!(settings.client_auth, ClientAuthMethod::ClientSecretBasic);
/// assert!(settings.check().is_empty());
///
/// // private_key_jwt signs with a key, not a secret.
/// let mixed: PasswordGrantSettings = toml::from_str(
///     r#"
///     token_endpoint = "https://idp.example/oauth/token"
///     client_id = "pg-gateway"
///     client_auth = "private_key_jwt"
///     client_secret_env = "CLIENT_SECRET"
///     "#,
/// )
/// .unwrap();
/// let keys: Vec<_> = mixed.check().into_iter().map(|p| p.key).collect();
/// assert_eq!(keys, ["client_secret_env", "private_key_file"]);
/// ```
///
/// [`build`](Self::build) then reads the credential and makes the authenticator:
///
/// ```no_run
/// # use std::{path::Path, sync::Arc};
/// # async fn doc(settings: auth_oauth::PasswordGrantSettings, wallet: Arc<dyn auth_core::CredentialStore>) {
/// let grant = settings.build(Path::new("/var/lib/gateway"), wallet).await.unwrap();
/// # let _ = grant; }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordGrantSettings {
    /// The token endpoint (`https://`; plain `http://` only to loopback). Required.
    pub token_endpoint: String,
    /// The RFC 7009 revocation endpoint: a session's tokens are revoked when it ends. No
    /// default (tokens then simply expire).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Our client id at the server. Required.
    pub client_id: String,
    /// How we authenticate to the server: `client_secret_basic` (the default),
    /// `client_secret_post`, `client_secret_jwt` or `private_key_jwt`.
    pub client_auth: ClientAuthMethod,
    /// The name of the environment variable holding the client secret (at least 32
    /// characters). No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// The wallet key holding the client secret (`authctl secret set KEY`), read again
    /// every hour and whenever the server refuses it, so a rotation needs no restart. No
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_wallet: Option<String>,
    /// The file holding the client secret (surrounding whitespace ignored), relative to
    /// the data directory. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// `private_key_jwt`: the file holding our private key, PKCS#8 in PEM (`BEGIN PRIVATE
    /// KEY`) or DER: RSA (signs RS256), EC P-256 (ES256) or Ed25519 (EdDSA); relative to
    /// the data directory. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// `private_key_jwt`: the `kid` the server knows our public key by. No default (no
    /// `kid` is sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_id: Option<String>,
    /// The CA bundle (PEM) of the server's HTTPS certificate, relative to the data
    /// directory, when it is not a public one (trusted besides the usual roots). No
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The scope to ask for (space-separated). No default (none is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The time limit of one call to the server (default `"5s"`).
    #[serde(with = "auth_core::settings::duration")]
    pub timeout: Duration,
    /// How long before the access token expires a session refreshes it (default
    /// `"30s"`).
    #[serde(with = "auth_core::settings::duration")]
    pub refresh_before: Duration,
}

impl Default for PasswordGrantSettings {
    fn default() -> Self {
        Self {
            token_endpoint: String::new(),
            revocation_endpoint: None,
            client_id: String::new(),
            client_auth: ClientAuthMethod::default(),
            client_secret_env: None,
            client_secret_wallet: None,
            client_secret_file: None,
            private_key_file: None,
            private_key_id: None,
            ca_file: None,
            scope: None,
            timeout: Duration::from_secs(5),
            refresh_before: Duration::from_secs(30),
        }
    }
}

/// What the file says when the client secret's source is missing or named twice.
const SECRET_SOURCE: &str = "name the client secret's source, either client_secret_env = \
    \"VARIABLE\", client_secret_wallet = \"wallet key\" or client_secret_file = \"file\" \
    (only one)";

/// Our client id and credential as a section writes them ([`PasswordGrantSettings`],
/// [`IntrospectionSettings`]): the keys both check and read alike.
struct ClientCredential<'a> {
    client_id: &'a str,
    client_auth: ClientAuthMethod,
    client_secret_env: Option<&'a str>,
    client_secret_wallet: Option<&'a str>,
    client_secret_file: Option<&'a Path>,
    private_key_file: Option<&'a Path>,
    private_key_id: Option<&'a str>,
}

impl ClientCredential<'_> {
    /// The client secret's sources that are set, by key.
    fn secret_sources(&self) -> Vec<&'static str> {
        [
            ("client_secret_env", self.client_secret_env.is_some()),
            ("client_secret_wallet", self.client_secret_wallet.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    /// The client id and credential keys that cannot be used, without reading files, the
    /// environment or the store.
    fn check(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if self.client_id.trim().is_empty() {
            problems.push(
                Invalid::new("client_id", "required: our client id at the server")
                    .hint("client_id = \"pg-gateway\""),
            );
        }
        let sources = self.secret_sources();
        if self.client_auth.uses_secret() {
            match sources.as_slice() {
                [_] => {}
                [] => problems.push(Invalid::new("", SECRET_SOURCE)),
                [_, extra, ..] => problems.push(Invalid::new(*extra, SECRET_SOURCE)),
            }
            for (key, set) in [
                ("private_key_file", self.private_key_file.is_some()),
                ("private_key_id", self.private_key_id.is_some()),
            ] {
                if set {
                    problems.push(Invalid::new(
                        key,
                        format!(
                            "belongs to client_auth = \"private_key_jwt\"; this client \
                             authenticates with {}",
                            self.client_auth.name()
                        ),
                    ));
                }
            }
        } else {
            for key in sources {
                problems.push(Invalid::new(
                    key,
                    "client_auth = \"private_key_jwt\" signs with private_key_file, not a \
                     client secret; remove it, or choose a client_secret_* method",
                ));
            }
            if self.private_key_file.is_none() {
                problems.push(
                    Invalid::new(
                        "private_key_file",
                        "client_auth = \"private_key_jwt\" needs our private key (PKCS#8, \
                         PEM or DER: RSA, P-256 or Ed25519)",
                    )
                    .hint(
                        "private_key_file = \"oauth-client.key\", relative to the data directory",
                    ),
                );
            }
        }
        if let Some(var) = self.client_secret_env
            && !is_variable_name(var)
        {
            problems.push(
                Invalid::new("client_secret_env", "is not an environment variable's name").hint(
                    "name the variable holding the secret (letters, digits, `_`), never the secret",
                ),
            );
        }
        problems
    }

    /// The client secret from its source (`base_dir` for a file, `store` for a wallet
    /// key); refused as that source's key.
    async fn client_secret(
        &self,
        base_dir: &Path,
        store: Arc<dyn CredentialStore>,
    ) -> Result<ClientSecret, Invalid> {
        if let Some(var) = self.client_secret_env {
            return client_secret_from_env(var)
                .and_then(ClientSecret::new)
                .map_err(|e| Invalid::new("client_secret_env", e.to_string()));
        }
        if let Some(key) = self.client_secret_wallet {
            return ClientSecret::from_store(store, key, STORE_REREAD, system_clock())
                .await
                .map_err(|e| {
                    Invalid::new("client_secret_wallet", e.to_string())
                        .hint(format!("`authctl secret set {key}` stores it"))
                });
        }
        if let Some(file) = self.client_secret_file {
            let path = base_dir.join(file);
            let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                Invalid::new("client_secret_file", format!("{}: {e}", path.display()))
            })?);
            return ClientSecret::new(SecretString::from(text.trim().to_owned())).map_err(|e| {
                Invalid::new("client_secret_file", format!("{}: {e}", path.display()))
            });
        }
        Err(Invalid::new("", SECRET_SOURCE))
    }

    /// Our private key for `private_key_jwt`, from `private_key_file` (PEM or DER) with
    /// `private_key_id`.
    fn assertion_key(&self, base_dir: &Path) -> Result<AssertionKey, Invalid> {
        let Some(file) = self.private_key_file else {
            return Err(Invalid::new(
                "private_key_file",
                "client_auth = \"private_key_jwt\" needs our private key",
            ));
        };
        let path = base_dir.join(file);
        let refused = |e: &dyn std::fmt::Display| {
            Invalid::new("private_key_file", format!("{}: {e}", path.display()))
        };
        let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| refused(&e))?);
        let kid = self.private_key_id.map(str::to_owned);
        let pem = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
        if pem {
            AssertionKey::from_pkcs8_pem(&bytes, kid)
        } else {
            AssertionKey::from_pkcs8_der(&bytes, kid)
        }
        .map_err(|e| refused(&e))
    }

    /// How we authenticate: the secret read from its source or the private key read
    /// (files relative to `base_dir`, a wallet key from `store`).
    async fn client_auth(
        &self,
        base_dir: &Path,
        store: Arc<dyn CredentialStore>,
    ) -> Result<ClientAuth, Invalid> {
        Ok(match self.client_auth {
            ClientAuthMethod::PrivateKeyJwt => {
                ClientAuth::PrivateKeyJwt(self.assertion_key(base_dir)?)
            }
            ClientAuthMethod::ClientSecretBasic => {
                ClientAuth::SecretBasic(self.client_secret(base_dir, store).await?)
            }
            ClientAuthMethod::ClientSecretPost => {
                ClientAuth::SecretPost(self.client_secret(base_dir, store).await?)
            }
            ClientAuthMethod::ClientSecretJwt => {
                ClientAuth::SecretJwt(self.client_secret(base_dir, store).await?)
            }
        })
    }
}

/// A zero `timeout`, refused: it fails every call.
fn zero_timeout(timeout: Duration) -> Option<Invalid> {
    timeout.is_zero().then(|| {
        Invalid::new("timeout", "a zero time limit fails every call").hint("the default is \"5s\"")
    })
}

impl PasswordGrantSettings {
    /// Our client id and credential, as the keys write them.
    fn credential(&self) -> ClientCredential<'_> {
        ClientCredential {
            client_id: &self.client_id,
            client_auth: self.client_auth,
            client_secret_env: self.client_secret_env.as_deref(),
            client_secret_wallet: self.client_secret_wallet.as_deref(),
            client_secret_file: self.client_secret_file.as_deref(),
            private_key_file: self.private_key_file.as_deref(),
            private_key_id: self.private_key_id.as_deref(),
        }
    }

    /// The values that cannot be used, without reading files, the environment or the
    /// store, nor calling the server (empty when all can).
    pub fn check(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        problems.extend(required_url(
            "token_endpoint",
            &self.token_endpoint,
            "https://idp.example/oauth/token",
        ));
        if let Some(url) = &self.revocation_endpoint {
            problems.extend(required_url(
                "revocation_endpoint",
                url,
                "https://idp.example/oauth/revoke",
            ));
        }
        problems.extend(self.credential().check());
        problems.extend(zero_timeout(self.timeout));
        problems
    }

    /// The authenticator: the settings checked, the client's credential read (a secret
    /// from the environment, the wallet `store` or a file; or the private key), and an
    /// HTTP client trusting `ca_file`; files are relative to `base_dir`. The server is not
    /// called here.
    pub async fn build(
        &self,
        base_dir: &Path,
        store: Arc<dyn CredentialStore>,
    ) -> Result<PasswordGrantAuthenticator, Invalid> {
        if let Some(first) = self.check().into_iter().next() {
            return Err(first);
        }
        let http = http_client(base_dir, self.ca_file.as_deref())?;
        let auth = self.credential().client_auth(base_dir, store).await?;
        let config = PasswordGrantConfig {
            revocation_endpoint: self.revocation_endpoint.clone(),
            http,
            scope: self.scope.clone(),
            timeout: self.timeout,
            refresh_before: self.refresh_before,
            ..PasswordGrantConfig::new(self.token_endpoint.clone(), self.client_id.clone(), auth)
        };
        PasswordGrantAuthenticator::new(config).map_err(|e| Invalid::new("", e.to_string()))
    }
}

/// The RFC 7662 introspection endpoint opaque bearer tokens are checked at: the
/// `[oauth_introspection]` section.
///
/// `introspection_endpoint` and `client_id` are required (the default, empty, is
/// refused), and so is the client's credential, as for [`PasswordGrantSettings`]: for the
/// `client_secret_*` methods exactly one of `client_secret_env`, `client_secret_wallet`
/// or `client_secret_file`; for `private_key_jwt`, `private_key_file`. Secrets are never
/// written here, only where they are.
///
/// ```
/// use auth_oauth::IntrospectionSettings;
///
/// let settings: IntrospectionSettings = toml::from_str(
///     r#"
///     introspection_endpoint = "https://idp.example/oauth/introspect"
///     issuer = "https://idp.example"
///     client_id = "pg-gateway"
///     client_secret_env = "INTROSPECTION_SECRET"
///     audience = "pg-gateway"
///     recheck = "1m"
///     "#,
/// )
/// .unwrap();
/// assert_eq!(settings.cache_max, std::time::Duration::from_secs(300));
/// assert!(settings.check().is_empty());
///
/// // Plain http off loopback is refused, naming the key; so is a member never read.
/// let plain: IntrospectionSettings = toml::from_str(
///     r#"
///     introspection_endpoint = "http://idp.example/oauth/introspect"
///     client_id = "pg-gateway"
///     client_secret_wallet = "introspection"
///     username_member = "email"
///     "#,
/// )
/// .unwrap();
/// let keys: Vec<_> = plain.check().into_iter().map(|p| p.key).collect();
/// assert_eq!(keys, ["introspection_endpoint", "username_member"]);
/// ```
///
/// [`build`](Self::build) then reads the credential and makes the authenticator:
///
/// ```no_run
/// # use std::{path::Path, sync::Arc};
/// # async fn doc(settings: auth_oauth::IntrospectionSettings, wallet: Arc<dyn auth_core::CredentialStore>) {
/// let introspection = settings.build(Path::new("/var/lib/gateway"), wallet).await.unwrap();
/// # let _ = introspection; }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntrospectionSettings {
    /// The introspection endpoint (`https://`; plain `http://` only to loopback).
    /// Required.
    pub introspection_endpoint: String,
    /// The server's issuer identifier (`https://`; plain `http://` only to loopback): an
    /// answer naming another `iss` is refused, and it is the audience of our client
    /// assertions. No default (any `iss` is accepted, and assertions name the
    /// introspection endpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Our client id at the server. Required.
    pub client_id: String,
    /// How we authenticate to the server: `client_secret_basic` (the default),
    /// `client_secret_post`, `client_secret_jwt` or `private_key_jwt`.
    pub client_auth: ClientAuthMethod,
    /// The name of the environment variable holding the client secret (at least 32
    /// characters). No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// The wallet key holding the client secret (`authctl secret set KEY`), read again
    /// every hour and whenever the server refuses it, so a rotation needs no restart. No
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_wallet: Option<String>,
    /// The file holding the client secret (surrounding whitespace ignored), relative to
    /// the data directory. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// `private_key_jwt`: the file holding our private key, PKCS#8 in PEM (`BEGIN PRIVATE
    /// KEY`) or DER: RSA (signs RS256), EC P-256 (ES256) or Ed25519 (EdDSA); relative to
    /// the data directory. No default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    /// `private_key_jwt`: the `kid` the server knows our public key by. No default (no
    /// `kid` is sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_id: Option<String>,
    /// The CA bundle (PEM) of the server's HTTPS certificate, relative to the data
    /// directory, when it is not a public one (trusted besides the usual roots). No
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The audience active tokens must name (`aud`). No default (any audience is
    /// accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The answer's member naming the user: `sub` (the default, the stable identifier)
    /// or `username` (RFC 7662's display name, which may be reassigned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_member: Option<String>,
    /// Whether a token without `sub` (a client-credentials token) is the user its
    /// `client_id` names (default `false`: a client named like a user would otherwise log
    /// in as that user).
    pub client_id_as_user: bool,
    /// The time limit of one call to the server (default `"5s"`).
    #[serde(with = "auth_core::settings::duration")]
    pub timeout: Duration,
    /// The longest an answer is cached, also bounded by the token's `exp` (default
    /// `"5m"`; `"0s"` caches nothing).
    #[serde(with = "auth_core::settings::duration")]
    pub cache_max: Duration,
    /// How often a cached token is introspected again to notice its revocation (default
    /// `"30s"`; `"0s"`: on every request).
    #[serde(with = "auth_core::settings::duration")]
    pub recheck: Duration,
}

impl Default for IntrospectionSettings {
    fn default() -> Self {
        Self {
            introspection_endpoint: String::new(),
            issuer: None,
            client_id: String::new(),
            client_auth: ClientAuthMethod::default(),
            client_secret_env: None,
            client_secret_wallet: None,
            client_secret_file: None,
            private_key_file: None,
            private_key_id: None,
            ca_file: None,
            audience: None,
            username_member: None,
            client_id_as_user: false,
            timeout: Duration::from_secs(5),
            cache_max: Duration::from_secs(300),
            recheck: Duration::from_secs(30),
        }
    }
}

impl IntrospectionSettings {
    /// Our client id and credential, as the keys write them.
    fn credential(&self) -> ClientCredential<'_> {
        ClientCredential {
            client_id: &self.client_id,
            client_auth: self.client_auth,
            client_secret_env: self.client_secret_env.as_deref(),
            client_secret_wallet: self.client_secret_wallet.as_deref(),
            client_secret_file: self.client_secret_file.as_deref(),
            private_key_file: self.private_key_file.as_deref(),
            private_key_id: self.private_key_id.as_deref(),
        }
    }

    /// The values that cannot be used, without reading files, the environment or the
    /// store, nor calling the server (empty when all can).
    pub fn check(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        problems.extend(required_url(
            "introspection_endpoint",
            &self.introspection_endpoint,
            "https://idp.example/oauth/introspect",
        ));
        if let Some(issuer) = &self.issuer {
            problems.extend(required_url("issuer", issuer, "https://idp.example"));
        }
        problems.extend(self.credential().check());
        if self
            .audience
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            problems.push(
                Invalid::new("audience", "the audience is empty")
                    .hint("leave the key out to accept any audience"),
            );
        }
        if let Some(member) = &self.username_member
            && !matches!(member.as_str(), "sub" | "username")
        {
            problems.push(
                Invalid::new(
                    "username_member",
                    format!(
                        "`{member}` is not read from introspection answers: only `sub` and \
                         `username` are"
                    ),
                )
                .hint("leave the key out to name users by `sub`"),
            );
        }
        problems.extend(zero_timeout(self.timeout));
        problems
    }

    /// The authenticator: the settings checked, the client's credential read (a secret
    /// from the environment, the wallet `store` or a file; or the private key), and an
    /// HTTP client trusting `ca_file`; files are relative to `base_dir`. The server is not
    /// called here.
    pub async fn build(
        &self,
        base_dir: &Path,
        store: Arc<dyn CredentialStore>,
    ) -> Result<IntrospectionAuthenticator, Invalid> {
        if let Some(first) = self.check().into_iter().next() {
            return Err(first);
        }
        let http = http_client(base_dir, self.ca_file.as_deref())?;
        let auth = self.credential().client_auth(base_dir, store).await?;
        let config = IntrospectionConfig {
            issuer: self.issuer.clone(),
            http,
            audience: self.audience.clone(),
            username_member: self.username_member.clone(),
            client_id_as_user: self.client_id_as_user,
            timeout: self.timeout,
            cache_max: self.cache_max,
            recheck: self.recheck,
            ..IntrospectionConfig::new(
                self.introspection_endpoint.clone(),
                self.client_id.clone(),
                auth,
            )
        };
        IntrospectionAuthenticator::new(config)
            .map_err(|e| Invalid::new("introspection_endpoint", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use auth_core::{Key, MemoryStore, Precondition};

    use super::*;

    const ENDPOINT: &str = "token_endpoint = \"https://idp.example/token\"\nclient_id = \"gw\"\n";

    fn grant(extra: &str) -> PasswordGrantSettings {
        toml::from_str(&format!("{ENDPOINT}{extra}")).unwrap()
    }

    fn keys(problems: Vec<Invalid>) -> Vec<String> {
        problems.into_iter().map(|p| p.key).collect()
    }

    fn store() -> Arc<dyn CredentialStore> {
        Arc::new(MemoryStore::new())
    }

    #[test]
    fn defaults_round_trip() {
        let defaults = PasswordGrantSettings::default();
        let text = toml::to_string(&defaults).unwrap();
        assert!(text.contains("timeout = \"5s\""), "{text}");
        assert!(text.contains("refresh_before = \"30s\""), "{text}");
        assert!(
            text.contains("client_auth = \"client_secret_basic\""),
            "{text}"
        );
        assert_eq!(
            toml::from_str::<PasswordGrantSettings>(&text).unwrap(),
            defaults
        );
        assert_eq!(
            toml::from_str::<PasswordGrantSettings>("").unwrap(),
            defaults
        );

        let issuer = IssuerSettings::default();
        let text = toml::to_string(&issuer).unwrap();
        assert_eq!(toml::from_str::<IssuerSettings>(&text).unwrap(), issuer);
        assert_eq!(toml::from_str::<IssuerSettings>("").unwrap(), issuer);
    }

    #[test]
    fn a_full_section_round_trips() {
        let settings = grant(
            "revocation_endpoint = \"https://idp.example/revoke\"\nclient_auth = \
             \"private_key_jwt\"\nprivate_key_file = \"k.pem\"\nprivate_key_id = \"k1\"\n\
             ca_file = \"ca.pem\"\nscope = \"openid db\"\ntimeout = \"2s 500ms\"\n\
             refresh_before = \"1m\"\n",
        );
        assert_eq!(settings.timeout, Duration::from_millis(2500));
        let text = toml::to_string(&settings).unwrap();
        assert_eq!(
            toml::from_str::<PasswordGrantSettings>(&text).unwrap(),
            settings
        );
        assert!(settings.check().is_empty(), "{:?}", settings.check());
    }

    #[test]
    fn the_method_names_are_the_registered_ones() {
        for name in [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
        ] {
            let method: ClientAuthMethod =
                toml::from_str::<PasswordGrantSettings>(&format!("client_auth = \"{name}\""))
                    .unwrap()
                    .client_auth;
            assert_eq!(method.name(), name);
        }
        let err = toml::from_str::<PasswordGrantSettings>("client_auth = \"basic\"").unwrap_err();
        assert!(err.to_string().contains("client_secret_basic"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<PasswordGrantSettings>("client_secret = \"x\"").unwrap_err();
        assert!(err.to_string().contains("client_secret"), "{err}");
        let err = toml::from_str::<IssuerSettings>("audiences = [\"x\"]").unwrap_err();
        assert!(err.to_string().contains("audiences"), "{err}");
        assert!(toml::from_str::<PasswordGrantSettings>("timeout = 5").is_err());
    }

    #[test]
    fn check_names_the_key() {
        assert_eq!(
            keys(PasswordGrantSettings::default().check()),
            ["token_endpoint", "client_id", ""]
        );
        assert!(grant("client_secret_env = \"S\"").check().is_empty());
        assert!(grant("client_secret_file = \"s\"").check().is_empty());
        let none = grant("").check();
        assert_eq!(keys(none.clone()), [""]);
        assert!(
            none[0].message.contains("client_secret_file"),
            "{}",
            none[0]
        );
        assert_eq!(
            keys(grant("client_secret_env = \"S\"\nclient_secret_wallet = \"k\"").check()),
            ["client_secret_wallet"]
        );
        assert_eq!(
            keys(grant("client_secret_env = \"S\"\nprivate_key_file = \"k\"").check()),
            ["private_key_file"]
        );
        assert_eq!(
            keys(grant("client_auth = \"private_key_jwt\"").check()),
            ["private_key_file"]
        );
        assert_eq!(
            keys(
                grant("client_auth = \"private_key_jwt\"\nprivate_key_file = \"k\"\nclient_secret_file = \"s\"")
                    .check()
            ),
            ["client_secret_file"]
        );
        let plain = "token_endpoint = \"http://idp.example/token\"\nclient_id = \"gw\"\nclient_secret_env = \"S\"\n";
        let plain: PasswordGrantSettings = toml::from_str(plain).unwrap();
        assert_eq!(keys(plain.check()), ["token_endpoint"]);
        let loopback = "token_endpoint = \"http://127.0.0.1:9000/token\"\nclient_id = \"gw\"\nclient_secret_env = \"S\"\n";
        assert!(
            toml::from_str::<PasswordGrantSettings>(loopback)
                .unwrap()
                .check()
                .is_empty()
        );
        assert_eq!(
            keys(grant("client_secret_env = \"S\"\nrevocation_endpoint = \"ftp://x/\"").check()),
            ["revocation_endpoint"]
        );
        assert_eq!(
            keys(grant("client_secret_env = \"a secret, not a name\"").check()),
            ["client_secret_env"]
        );
        assert_eq!(
            keys(grant("client_secret_env = \"S\"\ntimeout = \"0s\"").check()),
            ["timeout"]
        );
    }

    #[test]
    fn issuer_check_and_build_name_the_key() {
        assert_eq!(
            keys(IssuerSettings::default().check()),
            ["issuer", "audience"]
        );
        let parse = |text: &str| toml::from_str::<IssuerSettings>(text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let plain = parse("issuer = \"http://idp.example\"\naudience = \"pg\"");
        assert_eq!(plain.build(dir.path()).unwrap_err().key, "issuer");
        let missing_ca =
            parse("issuer = \"https://idp.example\"\naudience = \"pg\"\nca_file = \"ca.pem\"");
        assert_eq!(missing_ca.build(dir.path()).unwrap_err().key, "ca_file");
        std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
        assert_eq!(missing_ca.build(dir.path()).unwrap_err().key, "ca_file");
        let ca = rcgen::CertificateParams::new(vec!["idp.example".to_owned()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        missing_ca.build(dir.path()).unwrap();
        let claim =
            parse("issuer = \"https://idp.example\"\naudience = \"pg\"\nusername_claim = \"\"");
        assert_eq!(keys(claim.check()), ["username_claim"]);
    }

    #[tokio::test]
    async fn builds_a_private_key_jwt_grant_from_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("client.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("client.der"), key.serialize_der()).unwrap();
        for file in ["client.pem", "client.der"] {
            let settings = grant(&format!(
                "client_auth = \"private_key_jwt\"\nprivate_key_file = \"{file}\"\nprivate_key_id = \"k1\"\n"
            ));
            let built = settings.build(dir.path(), store()).await.unwrap();
            assert!(
                format!("{built:?}").contains("private_key_jwt"),
                "{built:?}"
            );
        }
        std::fs::write(
            dir.path().join("junk.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let junk = grant("client_auth = \"private_key_jwt\"\nprivate_key_file = \"junk.pem\"\n");
        assert_eq!(
            junk.build(dir.path(), store()).await.unwrap_err().key,
            "private_key_file"
        );
        let absent =
            grant("client_auth = \"private_key_jwt\"\nprivate_key_file = \"absent.pem\"\n");
        assert_eq!(
            absent.build(dir.path(), store()).await.unwrap_err().key,
            "private_key_file"
        );
    }

    #[tokio::test]
    async fn builds_secret_grants_from_each_source() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "s".repeat(40);
        std::fs::write(dir.path().join("secret"), format!("  {secret}\n")).unwrap();
        let built = grant("client_auth = \"client_secret_post\"\nclient_secret_file = \"secret\"")
            .build(dir.path(), store())
            .await
            .unwrap();
        assert!(format!("{built:?}").contains("client_secret_post"));
        assert!(!format!("{built:?}").contains(&secret));

        let wallet = store();
        wallet
            .put(
                &Key::new("oauth-client").unwrap(),
                secret.clone().into_bytes().into(),
                Precondition::None,
            )
            .await
            .unwrap();
        let built =
            grant("client_auth = \"client_secret_jwt\"\nclient_secret_wallet = \"oauth-client\"")
                .build(dir.path(), wallet)
                .await
                .unwrap();
        assert!(format!("{built:?}").contains("client_secret_jwt"));
    }

    #[tokio::test]
    async fn unusable_secrets_name_their_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), "short\n").unwrap();
        for (extra, key) in [
            ("client_secret_file = \"short\"", "client_secret_file"),
            ("client_secret_file = \"absent\"", "client_secret_file"),
            ("client_secret_wallet = \"absent\"", "client_secret_wallet"),
            (
                "client_secret_env = \"AUTH_OAUTH_TEST_SURELY_UNSET\"",
                "client_secret_env",
            ),
            (
                "client_secret_env = \"S\"\nca_file = \"absent.pem\"",
                "ca_file",
            ),
        ] {
            let err = grant(extra).build(dir.path(), store()).await;
            let err = err.map(|_| ()).unwrap_err();
            assert_eq!(err.key, key, "{extra}: {err}");
        }
    }

    const INTROSPECT: &str =
        "introspection_endpoint = \"https://idp.example/introspect\"\nclient_id = \"gw\"\n";

    fn introspection(extra: &str) -> IntrospectionSettings {
        toml::from_str(&format!("{INTROSPECT}{extra}")).unwrap()
    }

    #[test]
    fn introspection_defaults_round_trip() {
        let defaults = IntrospectionSettings::default();
        let text = toml::to_string(&defaults).unwrap();
        for line in [
            "timeout = \"5s\"",
            "cache_max = \"5m\"",
            "recheck = \"30s\"",
            "client_id_as_user = false",
            "client_auth = \"client_secret_basic\"",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert_eq!(
            toml::from_str::<IntrospectionSettings>(&text).unwrap(),
            defaults
        );
        assert_eq!(
            toml::from_str::<IntrospectionSettings>("").unwrap(),
            defaults
        );
        // The authenticator's own defaults, but for the time limit (the other sections').
        let secret = ClientSecret::new(SecretString::from("s".repeat(40))).unwrap();
        let config = IntrospectionConfig::new("https://x", "c", ClientAuth::SecretBasic(secret));
        assert_eq!(
            (config.cache_max, config.recheck, config.client_id_as_user),
            (
                defaults.cache_max,
                defaults.recheck,
                defaults.client_id_as_user
            )
        );
        assert_eq!(
            (config.issuer, config.audience, config.username_member),
            (defaults.issuer, defaults.audience, defaults.username_member)
        );
    }

    #[test]
    fn a_full_introspection_section_round_trips() {
        let settings = introspection(
            "issuer = \"https://idp.example\"\nclient_auth = \"private_key_jwt\"\n\
             private_key_file = \"k.pem\"\nprivate_key_id = \"k1\"\nca_file = \"ca.pem\"\n\
             audience = \"pg\"\nusername_member = \"username\"\nclient_id_as_user = true\n\
             timeout = \"2s 500ms\"\ncache_max = \"1m\"\nrecheck = \"0s\"\n",
        );
        assert_eq!(settings.timeout, Duration::from_millis(2500));
        assert_eq!(settings.recheck, Duration::ZERO);
        let text = toml::to_string(&settings).unwrap();
        assert_eq!(
            toml::from_str::<IntrospectionSettings>(&text).unwrap(),
            settings
        );
        assert!(settings.check().is_empty(), "{:?}", settings.check());
        let err = toml::from_str::<IntrospectionSettings>("endpoint = \"https://x\"").unwrap_err();
        assert!(err.to_string().contains("endpoint"), "{err}");
    }

    #[test]
    fn introspection_check_names_the_key() {
        assert_eq!(
            keys(IntrospectionSettings::default().check()),
            ["introspection_endpoint", "client_id", ""]
        );
        assert!(
            introspection("client_secret_env = \"S\"")
                .check()
                .is_empty()
        );
        assert!(
            introspection("client_secret_file = \"s\"")
                .check()
                .is_empty()
        );
        // The client's credential is checked as for the password grant.
        for (extra, expected) in [
            ("", ""),
            (
                "client_secret_env = \"S\"\nclient_secret_wallet = \"k\"",
                "client_secret_wallet",
            ),
            (
                "client_secret_env = \"S\"\nprivate_key_id = \"k1\"",
                "private_key_id",
            ),
            ("client_auth = \"private_key_jwt\"", "private_key_file"),
            (
                "client_auth = \"private_key_jwt\"\nprivate_key_file = \"k\"\nclient_secret_env = \"S\"",
                "client_secret_env",
            ),
            (
                "client_secret_env = \"a secret, not a name\"",
                "client_secret_env",
            ),
            ("client_secret_env = \"S\"\ntimeout = \"0s\"", "timeout"),
            (
                "client_secret_env = \"S\"\nissuer = \"http://idp.example\"",
                "issuer",
            ),
            ("client_secret_env = \"S\"\nissuer = \"\"", "issuer"),
            ("client_secret_env = \"S\"\naudience = \" \"", "audience"),
            (
                "client_secret_env = \"S\"\nusername_member = \"email\"",
                "username_member",
            ),
        ] {
            assert_eq!(keys(introspection(extra).check()), [expected], "{extra}");
        }
        for extra in [
            "username_member = \"username\"",
            "username_member = \"sub\"",
            "cache_max = \"0s\"\nrecheck = \"0s\"",
            "issuer = \"http://127.0.0.1:9000\"",
        ] {
            let settings = introspection(&format!("client_secret_env = \"S\"\n{extra}"));
            assert!(
                settings.check().is_empty(),
                "{extra}: {:?}",
                settings.check()
            );
        }
        let plain = "introspection_endpoint = \"http://idp.example/introspect\"\nclient_id = \"gw\"\nclient_secret_env = \"S\"\n";
        let plain: IntrospectionSettings = toml::from_str(plain).unwrap();
        assert_eq!(keys(plain.check()), ["introspection_endpoint"]);
        let loopback = "introspection_endpoint = \"http://[::1]:9000/introspect\"\nclient_id = \"gw\"\nclient_secret_env = \"S\"\n";
        assert!(
            toml::from_str::<IntrospectionSettings>(loopback)
                .unwrap()
                .check()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn builds_a_private_key_jwt_introspection_from_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("client.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("client.der"), key.serialize_der()).unwrap();
        for file in ["client.pem", "client.der"] {
            let settings = introspection(&format!(
                "client_auth = \"private_key_jwt\"\nprivate_key_file = \"{file}\"\nprivate_key_id = \"k1\"\nclient_id_as_user = true\nrecheck = \"0s\"\n"
            ));
            let built = format!("{:?}", settings.build(dir.path(), store()).await.unwrap());
            for part in ["private_key_jwt", "client_id_as_user: true", "recheck: 0ns"] {
                assert!(built.contains(part), "{part}: {built}");
            }
        }
        std::fs::write(
            dir.path().join("junk.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        for file in ["junk.pem", "absent.pem"] {
            let settings = introspection(&format!(
                "client_auth = \"private_key_jwt\"\nprivate_key_file = \"{file}\"\n"
            ));
            let err = settings.build(dir.path(), store()).await.unwrap_err();
            assert_eq!(err.key, "private_key_file", "{file}: {err}");
        }
    }

    #[tokio::test]
    async fn builds_introspection_with_a_client_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "s".repeat(40);
        std::fs::write(dir.path().join("secret"), format!("  {secret}\n")).unwrap();
        let built =
            introspection("client_auth = \"client_secret_post\"\nclient_secret_file = \"secret\"")
                .build(dir.path(), store())
                .await
                .unwrap();
        assert!(format!("{built:?}").contains("client_secret_post"));
        assert!(!format!("{built:?}").contains(&secret));

        std::fs::write(dir.path().join("short"), "short\n").unwrap();
        for (extra, key) in [
            ("client_secret_file = \"short\"", "client_secret_file"),
            ("client_secret_file = \"absent\"", "client_secret_file"),
            ("client_secret_wallet = \"absent\"", "client_secret_wallet"),
            (
                "client_secret_file = \"secret\"\nca_file = \"absent.pem\"",
                "ca_file",
            ),
            (
                "client_secret_file = \"secret\"\nusername_member = \"email\"",
                "username_member",
            ),
        ] {
            let err = introspection(extra).build(dir.path(), store()).await;
            let err = err.map(|_| ()).unwrap_err();
            assert_eq!(err.key, key, "{extra}: {err}");
        }
    }
}
