//! The one engine every front door runs: the file's rules, each turned into the chains its
//! methods mean on each door (SCRAM on pgwire is the same password as HTTP Basic on the
//! APIs), with its identity map, over the shared audit, limiter and account stage.

use std::sync::Arc;

use auth_core::certificate::{CertificateAuthenticator, CertificateCheck};
use auth_core::local::{PeerAuthenticator, TrustAuthenticator};
use auth_core::policy::{ProtocolMatch, Rule, Target};
use auth_core::{ApiKeyAuthenticator, Authenticator, Chain, Control, Engine, Policy, Protocol};
use auth_oauth::{IssuerConfig, JwtAuthenticator, KeySource, ValidationSettings, VerifyingKey};
use auth_password::{Argon2Settings, Hasher, PasswordAuthenticator, ScramAuthenticator, Users};
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

/// What the methods are built from, made once.
struct Parts<'a> {
    prepared: &'a Prepared,
    users: Users,
    hasher: Hasher,
    /// Tokens of the gateway's own issuer (`bearer` rules).
    local_jwt: Arc<JwtAuthenticator>,
}

/// The engine of `prepared`'s rules, shared by pgwire, HTTP and gRPC: one rule file guards
/// every door.
pub fn engine(prepared: &Prepared) -> Result<Arc<Engine>, GatewayError> {
    let parts = Parts {
        prepared,
        users: Users::new(prepared.wallet.clone()),
        hasher: Hasher::new(Argon2Settings::default())
            .map_err(|e| GatewayError(format!("hasher: {e}")))?,
        local_jwt: local_jwt(prepared)?,
    };
    let mut rules = Vec::new();
    for rule in &prepared.config.rules {
        rules.extend(core_rules(&parts, rule).map_err(GatewayError)?);
    }
    let policy = Policy::new(rules).map_err(|e| GatewayError(e.to_string()))?;
    let builder = Engine::builder(policy)
        .audit(prepared.audit.clone())
        .rate_limiter(prepared.limiter.clone())
        .accounts(prepared.accounts.clone());
    let builder = if prepared.config.danger_allow_cleartext_without_tls {
        builder.dangerous().allow_cleartext_without_tls()
    } else {
        builder
    };
    Ok(Arc::new(builder.build()))
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
    let protocols = config.protocol_match()?;
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
    let requirement = match config.requirement()? {
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
            let mut rule = config.to_rule(target)?.with_protocols(protocols);
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
    parts.prepared.client_cas.clone().ok_or_else(|| {
        format!(
            "rule `{}` uses client certificates without [client_certificates]",
            config.name
        )
    })
}

/// The chain of `config`'s methods on `door`, in the file's order.
fn chain(parts: &Parts<'_>, config: &RuleConfig, door: Door) -> Result<Chain, String> {
    let prepared = parts.prepared;
    let mut builder = Chain::builder().name(config.name.as_str());
    let password = || -> Arc<dyn Authenticator> {
        Arc::new(PasswordAuthenticator::new(
            parts.users.clone(),
            parts.hasher.clone(),
        ))
    };
    for method in &config.method {
        builder = match (method, door) {
            (Method::Reject, _) => builder,
            (Method::Cert, _) => builder.link(Arc::new(
                CertificateAuthenticator::new(cas(parts, config)?).with_name(prepared.client_name),
            )),
            (Method::Peer, _) => builder.link(Arc::new(PeerAuthenticator::new())),
            (Method::Trust, _) => builder.link(Arc::new(TrustAuthenticator::new())),
            (Method::Scram, Door::Pgwire) => builder.link(Arc::new(ScramAuthenticator::new(
                parts.users.clone(),
                prepared.mock_secret,
            ))),
            // The same password over the APIs, as HTTP Basic (over TLS).
            (Method::Scram, Door::Api) => builder.link(password()),
            (Method::Password, _) => builder
                .link(Arc::new(
                    WalletAuthenticator::new(prepared.wallet.clone())
                        .with_equal_cost(parts.hasher.clone()),
                ))
                .link(password()),
            (Method::Gss, door) => gss(builder, prepared, door, &config.name)?,
            (Method::OAuthBearer, door) => {
                let issuer = config.issuer.as_deref().unwrap_or_default();
                let jwt = prepared.oauth.issuer(issuer).ok_or_else(|| {
                    format!(
                        "rule `{}`: issuer `{issuer}` is not configured",
                        config.name
                    )
                })?;
                match door {
                    Door::Pgwire => {
                        let scope = config.scope.clone().unwrap_or_default();
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
                match config.fallback.as_deref() {
                    // Only an outage passes the password on: a password the server refused
                    // is refused here too.
                    Some("scram") => builder
                        .link_with(grant, Control::CONCLUSIVE.fallback_on_unavailable())
                        .link(password()),
                    _ => builder.link(grant),
                }
            }
            (Method::Bearer, _) => builder.link(parts.local_jwt.clone()),
            (Method::ApiKey, _) => {
                builder.link(Arc::new(ApiKeyAuthenticator::new(prepared.wallet.clone())))
            }
        };
    }
    // `api_login`: a certificate alone (a request without Authorization) is an API
    // credential too, where the rule takes API credentials.
    if door == Door::Api && prepared.config.client_certificates.api_login && api_credentials(config)
    {
        builder = builder.link(Arc::new(
            CertificateAuthenticator::new(cas(parts, config)?).with_name(prepared.client_name),
        ));
    }
    Ok(builder.build())
}

/// Kerberos: GSSAPI for pgwire (service `postgres`), SPNEGO for the APIs (service `HTTP`).
#[cfg(feature = "kerberos")]
fn gss(
    builder: auth_core::chain::ChainBuilder,
    prepared: &Prepared,
    door: Door,
    _rule: &str,
) -> Result<auth_core::chain::ChainBuilder, String> {
    let kerberos = &prepared.config.kerberos;
    let service = match door {
        Door::Pgwire => kerberos
            .service
            .clone()
            .unwrap_or_else(|| "postgres".into()),
        Door::Api => kerberos
            .http_service
            .clone()
            .unwrap_or_else(|| "HTTP".into()),
    };
    let gss = auth_kerberos::GssAuthenticator::new(kerberos.keytab.clone(), kerberos.mapper()?)
        .with_service(service)
        .with_users(auth_kerberos::UserDirectory {
            store: prepared.wallet.clone(),
            prefix: "user/".into(),
        });
    Ok(builder.link(Arc::new(gss)))
}

/// Refused when the configuration was read; a rule that got here anyway refuses.
#[cfg(not(feature = "kerberos"))]
fn gss(
    _builder: auth_core::chain::ChainBuilder,
    _prepared: &Prepared,
    _door: Door,
    rule: &str,
) -> Result<auth_core::chain::ChainBuilder, String> {
    Err(format!(
        "rule `{rule}`: method = \"gss\" needs a build with --features kerberos"
    ))
}
