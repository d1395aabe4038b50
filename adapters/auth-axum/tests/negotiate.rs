//! HTTP Negotiate (SPNEGO, RFC 4559) through the layer with a real client: curl
//! `--negotiate` holding a ticket from a throwaway MIT realm, against an axum server whose
//! policy runs auth-kerberos' acceptor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use auth_axum::{AuthLayer, Authenticated};
use auth_core::audit::AuditEventKind;

use auth_core::{Chain, Engine, MemoryAuditSink, Policy};
use auth_kerberos::{GssAuthenticator, PrincipalMapper};
use auth_tests::kdc::Kdc;
use axum::Router;
use axum::routing::get;

async fn hello(auth: Authenticated) -> String {
    format!("hello {} ({})", auth.user(), auth.principal())
}

/// curl's `-i` output for `url`, run with `cmd`'s environment.
async fn curl(mut cmd: Command, negotiate: bool, url: String) -> String {
    cmd.args(["-s", "-i", "--max-time", "10"]);
    if negotiate {
        cmd.args(["--negotiate", "-u", ":"]);
    }
    cmd.arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("curl is installed (scripts/install-deps.sh)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn negotiate_headers(response: &str) -> Vec<String> {
    response
        .lines()
        .map(|l| l.trim_end().to_owned())
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("www-authenticate: negotiate")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiate_authenticates_through_the_layer_and_gets_the_mutual_token() {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("alice", "alice-kerberos-password").unwrap();
    kdc.add_service("HTTP/localhost", None).unwrap();
    kdc.kinit("alice", "alice-kerberos-password", None, None)
        .unwrap();
    let gss = GssAuthenticator::new(Some(kdc.keytab()), PrincipalMapper::default());
    let audit = Arc::new(MemoryAuditSink::default());
    let chain = Chain::builder().link(Arc::new(gss)).build();
    let engine = Engine::builder(Policy::single(chain).unwrap())
        .audit(audit.clone())
        .build();
    let app = Router::new()
        .route("/", get(hello))
        .layer(AuthLayer::new(Arc::new(engine)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://localhost:{}/",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // No credential: challenged with exactly `Negotiate`, the only method the chain has.
    let plain = curl(kdc.command("curl"), false, url.clone()).await;
    assert!(plain.starts_with("HTTP/1.1 401"), "{plain}");
    assert_eq!(negotiate_headers(&plain), ["www-authenticate: Negotiate"]);

    // A ticket: 200, the mapped user apart from the principal, and one mutual token.
    let negotiated = curl(kdc.command("curl"), true, url.clone()).await;
    assert!(negotiated.contains("HTTP/1.1 200"), "{negotiated}");
    assert!(
        negotiated.contains("hello alice (alice@TEST.REALM)"),
        "{negotiated}"
    );
    let mutual = negotiate_headers(&negotiated);
    let mutual: Vec<_> = mutual.iter().filter(|h| h.len() > 40).collect();
    assert_eq!(mutual.len(), 1, "the mutual token comes back: {negotiated}");
    let succeeded = audit.of_kind(AuditEventKind::AttemptSucceeded);
    assert_eq!(succeeded.len(), 1, "{succeeded:?}");
    assert_eq!(succeeded[0]["username"], "alice", "{succeeded:?}");

    // A token that is not GSS-API at all: 401 challenging again, the reason audited.
    let mut garbage = kdc.command("curl");
    garbage.args(["-H", "Authorization: Negotiate Z2FyYmFnZQ=="]);
    let refused = curl(garbage, false, url.clone()).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert_eq!(negotiate_headers(&refused), ["www-authenticate: Negotiate"]);
    let failed = audit.of_kind(AuditEventKind::AttemptFailed);
    let last = failed.last().unwrap();
    assert_eq!(
        (&last["method"], &last["error"]),
        (&"kerberos".into(), &"malformed".into()),
        "{failed:?}"
    );

    // Without a ticket the client cannot negotiate and is challenged again.
    let mut no_ticket = kdc.command("curl");
    no_ticket.env(
        "KRB5CCNAME",
        format!("FILE:{}", kdc.dir().join("none.cc").display()),
    );
    let without = curl(no_ticket, true, url).await;
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
}
