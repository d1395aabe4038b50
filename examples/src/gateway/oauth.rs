//! The gateway's OAuth settings: the issuers whose bearer tokens `oauthbearer` rules accept
//! (`[[oauth_issuer]]`), and the provider `oauth-password` rules exchange passwords at
//! (`[oauth_password]`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use auth_oauth::{JwtAuthenticator, PasswordGrantAuthenticator};

use super::GatewayError;

/// The OAuth authenticators the rules use, built once at start.
#[derive(Debug, Default, Clone)]
pub struct OAuthSetup {
    /// A validator per `[[oauth_issuer]]`, by issuer.
    pub issuers: HashMap<String, Arc<JwtAuthenticator>>,
    /// The password grant of `[oauth_password]`.
    pub password_grant: Option<Arc<PasswordGrantAuthenticator>>,
}

impl OAuthSetup {
    /// The validator of `[[oauth_issuer]]` `issuer`, which is the issuer or its discovery
    /// document's URL.
    pub fn issuer(&self, advertised: &str) -> Option<&Arc<JwtAuthenticator>> {
        self.issuers
            .iter()
            .find_map(|(issuer, jwt)| advertises(advertised, issuer).then_some(jwt))
    }
}

/// Whether a rule's `issuer` names `issuer`: the issuer itself, or a URL under its
/// `/.well-known/`.
pub(super) fn advertises(advertised: &str, issuer: &str) -> bool {
    let issuer = issuer.trim_end_matches('/');
    advertised.trim_end_matches('/') == issuer
        || advertised
            .strip_prefix(issuer)
            .is_some_and(|rest| rest.starts_with("/.well-known/"))
}

/// Builds the validators of `[[oauth_issuer]]` and the password grant of
/// `[oauth_password]`, each with its crate's `build()`. On a reload, `running` is the
/// configuration in force and what was built from it: an issuer or grant whose settings
/// did not change is kept as it is, with its JWKS and token caches.
pub(super) async fn setup(
    data_dir: &Path,
    config: &super::GatewayConfig,
    wallet: &Arc<auth_wallet::Wallet>,
    running: Option<(&super::GatewayConfig, &OAuthSetup)>,
) -> Result<OAuthSetup, GatewayError> {
    let mut setup = OAuthSetup::default();
    for (i, issuer) in config.oauth_issuers.iter().enumerate() {
        let kept = running.and_then(|(old, built)| {
            old.oauth_issuers
                .contains(issuer)
                .then(|| built.issuers.get(&issuer.issuer).cloned())
                .flatten()
        });
        let jwt = match kept {
            Some(jwt) => jwt,
            None => Arc::new(
                issuer
                    .build(data_dir)
                    .map_err(super::built(&format!("oauth_issuer[{i}]")))?,
            ),
        };
        setup.issuers.insert(issuer.issuer.clone(), jwt);
    }
    if let Some(grant) = &config.oauth_password {
        let kept = running.and_then(|(old, built)| {
            (old.oauth_password.as_ref() == Some(grant))
                .then(|| built.password_grant.clone())
                .flatten()
        });
        setup.password_grant = Some(match kept {
            Some(grant) => grant,
            None => Arc::new(
                grant
                    .build(data_dir, wallet.clone())
                    .await
                    .map_err(super::built("oauth_password"))?,
            ),
        });
    }
    Ok(setup)
}

#[cfg(test)]
mod tests {
    use super::advertises;

    #[test]
    fn a_rule_names_an_issuer_or_its_discovery_document() {
        let issuer = "https://idp.example:8443";
        assert!(advertises("https://idp.example:8443", issuer));
        assert!(advertises("https://idp.example:8443/", issuer));
        assert!(advertises(
            "https://idp.example:8443/.well-known/openid-configuration",
            issuer
        ));
        assert!(!advertises("https://idp.example:84430", issuer));
        assert!(!advertises("https://idp.example:8443/evil", issuer));
    }
}
