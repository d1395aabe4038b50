//! A configuration becomes the engine (and chain) it describes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auth_core::config::Method;
use auth_core::policy::Target;
use auth_core::{Action, Authenticator, Config, OutcomeClass};
use common::{Scripted, decide, remote_password};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[tokio::test]
async fn links_follow_methods_fallback_and_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let config = Config::load(
        Some("[wallet]\npath = \"/tmp/w\"\nkey_env = \"WALLET_KEY\"\ntimeout = \"1s\""),
        &env(&[
            ("AUTH_METHODS", "wallet,password"),
            ("AUTH_FALLBACK", "wallet"),
            ("AUTH_TIMEOUT", "3s"),
            ("AUTH_AUDIT_PATH", audit.to_str().unwrap()),
        ]),
    )
    .unwrap();
    let engine = config
        .engine_builder(|m| -> Option<Arc<dyn Authenticator>> {
            Some(match m {
                Method::Wallet => Scripted::new("wallet", OutcomeClass::Unavailable),
                _ => Scripted::new("password", OutcomeClass::Success),
            })
        })
        .unwrap()
        .build();
    let rules = engine.policy().rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].name, "config");
    let Target::Chain(chain) = &rules[0].target else {
        panic!("the configuration's rule runs a chain");
    };
    let links = chain.links();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].authenticator().name(), "wallet");
    assert_eq!(
        links[0].control().action(OutcomeClass::Unavailable),
        Action::Ignore
    );
    assert_eq!(links[0].timeout(), Duration::from_secs(1));
    assert_eq!(
        links[1].control().action(OutcomeClass::Unavailable),
        Action::Die
    );
    assert_eq!(links[1].timeout(), Duration::from_secs(3));

    let out = decide(&engine, &mut remote_password("alice", "pw")).await;
    assert_eq!(
        out.session().unwrap().method(),
        "password",
        "the wallet outage fell through"
    );
    let written = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(
        written.lines().count(),
        3,
        "two steps and the attempt:\n{written}"
    );
}

#[test]
fn a_method_without_an_authenticator_is_a_configuration_error() {
    let config = Config::load(None, &env(&[("AUTH_METHODS", "api_key,password")])).unwrap();
    let err = config
        .engine_builder(|m| -> Option<Arc<dyn Authenticator>> {
            (m == Method::Password).then(|| Scripted::new("password", OutcomeClass::Success) as _)
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`api_key` is enabled but this server has no api_key authenticator"),
        "{err}"
    );
}
