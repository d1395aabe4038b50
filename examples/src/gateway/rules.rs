//! The one engine every front door runs: the file's rules, each turned into the chains its
//! methods mean on each door (SCRAM on pgwire is the same password as HTTP Basic on the
//! APIs), with its identity map, over the shared audit, limiter and account stage.

use std::sync::Arc;

use auth_core::certificate::{CertificateAuthenticator, CertificateCheck};
use auth_core::local::{PeerAuthenticator, TrustAuthenticator};
use auth_core::policy::{ProtocolMatch, Rule, Target};
use auth_core::{ApiKeyAuthenticator, Authenticator, Chain, Control, Engine, Policy, Protocol};
use auth_oauth::{IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey};
use auth_password::{PasswordAuthenticator, ScramAuthenticator, Users};
use auth_wallet::WalletAuthenticator;

use super::{GatewayError, Method, Prepared, RuleConfig};

/// The door a chain is built for: what a method asks of its clients differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// The PostgreSQL wire protocol: SASL and GSS exchanges.
    Pgwire,
    /// The HTTP and gRPC APIs: one header per request.
    Api,
}

/// The methods, each made once and shared by every rule that runs it: the engine lets a
/// token judged under one rule stand under the rule of the user it proved when that rule
/// runs the same method (a Kerberos ticket cannot be judged twice).
struct Parts<'a> {
    prepared: &'a Prepared,
    /// Tokens of the gateway's own issuer (`bearer` rules).
    local_jwt: Arc<JwtAuthenticator>,
    password: Arc<dyn Authenticator>,
    wallet: Arc<dyn Authenticator>,
    scram: Arc<dyn Authenticator>,
    api_key: Arc<dyn Authenticator>,
    /// The certificate method, with the `[client_certificates]` CAs.
    cert: Option<Arc<dyn Authenticator>>,
    /// Kerberos for pgwire and for the APIs, made when a rule first asks.
    #[cfg(feature = "kerberos")]
    gss: std::cell::RefCell<[Option<Arc<dyn Authenticator>>; 2]>,
}

/// The engine of `prepared`'s rules, shared by pgwire, HTTP and gRPC: one rule file guards
/// every door.
pub fn engine(prepared: &Prepared) -> Result<Arc<Engine>, GatewayError> {
    let builder = Engine::builder(policy(prepared)?)
        .audit(prepared.audit.clone())
        .rate_limiter(prepared.limiter.clone())
        .accounts(prepared.accounts.clone());
    let builder = if prepared.config.gateway.danger_allow_cleartext_without_tls {
        builder.dangerous().allow_cleartext_without_tls()
    } else {
        builder
    };
    Ok(Arc::new(builder.build()))
}

/// The policy of `prepared`'s rules: what a reload puts in force
/// ([`Engine::replace_policy`]).
pub(super) fn policy(prepared: &Prepared) -> Result<Policy, GatewayError> {
    let users = Users::new(prepared.wallet.clone());
    let hasher = prepared.hasher.clone();
    let parts = Parts {
        prepared,
        local_jwt: local_jwt(prepared)?,
        password: Arc::new(PasswordAuthenticator::new(users.clone(), hasher.clone())),
        wallet: Arc::new(
            WalletAuthenticator::new(prepared.wallet.clone()).with_equal_cost(hasher.clone()),
        ),
        scram: Arc::new(ScramAuthenticator::new(users, prepared.mock_secret)),
        api_key: Arc::new(ApiKeyAuthenticator::new(prepared.wallet.clone())),
        cert: prepared
            .client_cas
            .clone()
            .map(|cas| -> Arc<dyn Authenticator> {
                Arc::new(CertificateAuthenticator::new(cas).with_name(prepared.client_name))
            }),
        #[cfg(feature = "kerberos")]
        gss: std::cell::RefCell::new([None, None]),
    };
    let mut rules = Vec::new();
    for rule in &prepared.config.rules {
        rules.extend(core_rules(&parts, rule).map_err(GatewayError)?);
    }
    Policy::new(rules).map_err(|e| GatewayError(e.to_string()))
}

/// The validator of the tokens the gateway issues itself.
fn local_jwt(prepared: &Prepared) -> Result<Arc<JwtAuthenticator>, GatewayError> {
    let key = VerifyingKey::from_jwk(&prepared.issuer.jwk)
        .map_err(|e| GatewayError(format!("signing key: {e}")))?;
    let jwt = JwtAuthenticator::new(
        vec![IssuerConfig {
            keys: KeySource::Static(Arc::new(vec![Arc::new(key)])),
            ..IssuerConfig::discovery(crate::api::ISSUER, crate::api::AUDIENCE)
        }],
        ValidationSettings::default(),
    )
    .map_err(|e| GatewayError(e.to_string()))?;
    Ok(Arc::new(jwt))
}

/// The auth-core rules of one file rule: one for every door it names when its methods mean
/// the same there, else one for pgwire and one for the APIs, in that order, both under the
/// file rule's name.
fn core_rules(parts: &Parts<'_>, config: &RuleConfig) -> Result<Vec<Rule>, String> {
    let protocols = config.protocol_match().map_err(|e| e.to_string())?;
    let differs = config
        .method
        .iter()
        .any(|m| matches!(m, Method::Scram | Method::Gss | Method::OAuthBearer))
        || (parts.prepared.config.client_certificates.api_login && api_credentials(config));
    let doors: Vec<(Door, ProtocolMatch)> = if !differs {
        vec![(Door::Api, protocols)]
    } else {
        let mut doors = Vec::new();
        if protocols.includes(Protocol::Postgres) {
            doors.push((Door::Pgwire, ProtocolMatch::Only(vec![Protocol::Postgres])));
        }
        let api: Vec<Protocol> = [Protocol::Http, Protocol::Grpc]
            .into_iter()
            .filter(|p| protocols.includes(*p))
            .collect();
        if !api.is_empty() {
            doors.push((Door::Api, ProtocolMatch::Only(api)));
        }
        doors
    };
    let requirement = match config.requirement().map_err(|e| e.to_string())? {
        Some(requirement) => Some(
            CertificateCheck::new(cas(parts, config)?, requirement)
                .with_name(parts.prepared.client_name),
        ),
        None => None,
    };
    let map = match &config.map {
        Some(name) => Some(parts.prepared.config.identity_map(name)?),
        None => None,
    };
    doors
        .into_iter()
        .map(|(door, protocols)| {
            let target = if config.has(Method::Reject) {
                Target::Reject
            } else {
                Target::Chain(Arc::new(chain(parts, config, door)?))
            };
            let mut rule = config
                .to_rule(target)
                .map_err(|e| e.to_string())?
                .with_protocols(protocols);
            if let Some(check) = &requirement {
                rule = rule.with_client_certificate(check.clone());
            }
            if let Some(map) = &map {
                rule = rule.with_identity_map(map.clone());
            }
            Ok(rule)
        })
        .collect()
}

/// Whether the rule accepts the APIs' own credentials, which `api_login` extends with a
/// certificate alone.
fn api_credentials(config: &RuleConfig) -> bool {
    config.has(Method::Bearer) || config.has(Method::ApiKey)
}

fn cas(
    parts: &Parts<'_>,
    config: &RuleConfig,
) -> Result<Arc<auth_core::certificate::TrustedIssuers>, String> {
    parts
        .prepared
        .client_cas
        .clone()
        .ok_or_else(|| no_cas(config))
}

fn no_cas(config: &RuleConfig) -> String {
    format!(
        "rule `{}` uses client certificates without [client_certificates]",
        config.name
    )
}

fn cert(parts: &Parts<'_>, config: &RuleConfig) -> Result<Arc<dyn Authenticator>, String> {
    parts.cert.clone().ok_or_else(|| no_cas(config))
}

/// The chain of `config`'s methods on `door`, in the file's order.
fn chain(parts: &Parts<'_>, config: &RuleConfig, door: Door) -> Result<Chain, String> {
    let prepared = parts.prepared;
    let mut builder = Chain::builder().name(config.name.as_str());
    let password = || parts.password.clone();
    for method in &config.method {
        builder = match (method, door) {
            (Method::Reject, _) => builder,
            (Method::Cert, _) => builder.link(cert(parts, config)?),
            (Method::Peer, _) => builder.link(Arc::new(PeerAuthenticator::new())),
            (Method::Trust, _) => builder.link(Arc::new(TrustAuthenticator::new())),
            (Method::Scram, Door::Pgwire) => builder.link(parts.scram.clone()),
            // The same password over the APIs, as HTTP Basic (over TLS).
            (Method::Scram, Door::Api) => builder.link(password()),
            (Method::Password, _) => builder.link(parts.wallet.clone()).link(password()),
            (Method::Gss, door) => builder.link(gss(parts, door, &config.name)?),
            (Method::OAuthBearer, door) => {
                let issuer = config.options.issuer.as_deref().unwrap_or_default();
                let jwt = prepared.oauth.issuer(issuer).ok_or_else(|| {
                    format!(
                        "rule `{}`: issuer `{issuer}` is not configured",
                        config.name
                    )
                })?;
                match door {
                    Door::Pgwire => {
                        let scope = config.options.scope.clone().unwrap_or_default();
                        let bearer = auth_oauth::OAuthBearer::new(jwt.clone(), issuer, scope)
                            .map_err(|e| format!("rule `{}`: issuer: {e}", config.name))?;
                        builder.link(Arc::new(bearer))
                    }
                    // The same issuer's tokens as `Authorization: Bearer`.
                    Door::Api => builder.link(jwt.clone()),
                }
            }
            (Method::OAuthPassword, _) => {
                let grant = prepared.oauth.password_grant.clone().ok_or_else(|| {
                    format!("rule `{}` needs the [oauth_password] section", config.name)
                })?;
                match config.options.fallback.as_deref() {
                    // Only an outage passes the password on: a password the server refused
                    // is refused here too.
                    Some("scram") => builder
                        .link_with(grant, Control::CONCLUSIVE.fallback_on_unavailable())
                        .link(password()),
                    _ => builder.link(grant),
                }
            }
            (Method::Bearer, _) => builder.link(parts.local_jwt.clone()),
            (Method::ApiKey, _) => builder.link(parts.api_key.clone()),
        };
    }
    // `api_login`: a certificate alone (a request without Authorization) is an API
    // credential too, where the rule takes API credentials.
    if door == Door::Api && prepared.config.client_certificates.api_login && api_credentials(config)
    {
        builder = builder.link(cert(parts, config)?);
    }
    Ok(builder.build())
}

/// Kerberos: GSSAPI for pgwire (service `postgres`), SPNEGO for the APIs (service `HTTP`),
/// one instance per door.
#[cfg(feature = "kerberos")]
fn gss(parts: &Parts<'_>, door: Door, _rule: &str) -> Result<Arc<dyn Authenticator>, String> {
    let slot = door as usize;
    if let Some(made) = &parts.gss.borrow()[slot] {
        return Ok(made.clone());
    }
    let prepared = parts.prepared;
    let kerberos = &prepared.config.kerberos;
    let service = match door {
        Door::Pgwire => kerberos.service(),
        Door::Api => kerberos.http_service(),
    };
    let users = auth_kerberos::UserDirectory {
        store: prepared.wallet.clone(),
        prefix: "user/".into(),
    };
    let gss: Arc<dyn Authenticator> = Arc::new(
        kerberos
            .build(service, users)
            .map_err(|e| format!("[kerberos] {e}"))?,
    );
    parts.gss.borrow_mut()[slot] = Some(gss.clone());
    Ok(gss)
}

/// Refused when the configuration was read; a rule that got here anyway refuses.
#[cfg(not(feature = "kerberos"))]
fn gss(_parts: &Parts<'_>, _door: Door, rule: &str) -> Result<Arc<dyn Authenticator>, String> {
    Err(format!(
        "rule `{rule}`: method = \"gss\" needs a build with --features kerberos"
    ))
}
