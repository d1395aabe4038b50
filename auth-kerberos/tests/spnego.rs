//! HTTP Negotiate (SPNEGO) with a real client: curl `--negotiate` holding a ticket from a
//! throwaway realm, against a small axum server using the crate's framing and acceptor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auth_core::{
    Attempt, Authenticator, ConnectionInfo, Conversation, ConversationError, Protocol,
};
use auth_kerberos::spnego::{CHALLENGE, parse_negotiate, response_header};
use auth_kerberos::{GssAuthenticator, PrincipalMapper};
use auth_tests::kdc::Kdc;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// HTTP cannot do another round inside one request; the final token rides on the reply.
#[derive(Debug, Default)]
struct OneRequest(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait]
impl Conversation for OneRequest {
    async fn exchange(&mut self, challenge: Vec<u8>) -> Result<Vec<u8>, ConversationError> {
        Err(ConversationError::NotInteractive { challenge })
    }
    async fn complete(&mut self, data: Vec<u8>) -> Result<(), ConversationError> {
        *self.0.lock().unwrap() = Some(data);
        Ok(())
    }
}

async fn handler(State(auth): State<Arc<GssAuthenticator>>, headers: HeaderMap) -> Response {
    let challenge = || {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
        r
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return challenge();
    };
    let Ok(credential) = parse_negotiate(value) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let final_token = Arc::new(Mutex::new(None));
    let mut attempt = Attempt::new(
        ConnectionInfo::tcp(Protocol::Http, "127.0.0.1:1".parse().unwrap()),
        credential,
    )
    .with_conversation(Box::new(OneRequest(final_token.clone())));
    let outcome = auth.authenticate(&mut attempt).await;
    let Some(session) = outcome.session() else {
        return challenge();
    };
    let mut r = format!("hello {} ({})", session.user(), session.principal()).into_response();
    if let Some(token) = final_token.lock().unwrap().take() {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&response_header(&token)).unwrap(),
        );
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiate_authenticates_and_gets_the_mutual_token() {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("alice", "alice-kerberos-password").unwrap();
    kdc.add_service("HTTP/localhost", None).unwrap();
    kdc.kinit("alice", "alice-kerberos-password", None, None)
        .unwrap();
    let auth = Arc::new(GssAuthenticator::new(
        Some(kdc.keytab()),
        PrincipalMapper::default(),
    ));
    let app = axum::Router::new()
        .route("/", axum::routing::get(handler))
        .with_state(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let curl = |negotiate: bool| {
        let mut cmd = kdc.command("curl");
        cmd.args(["-s", "-i", "--max-time", "10"]);
        if negotiate {
            cmd.args(["--negotiate", "-u", ":"]);
        }
        cmd.arg(format!("http://localhost:{port}/"));
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .unwrap()
                .expect("curl is installed (scripts/install-deps.sh)");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let plain = curl(false).await;
    assert!(plain.starts_with("HTTP/1.1 401"), "{plain}");
    assert!(
        plain
            .to_ascii_lowercase()
            .contains("www-authenticate: negotiate"),
        "{plain}"
    );

    let negotiated = curl(true).await;
    assert!(negotiated.contains("HTTP/1.1 200"), "{negotiated}");
    assert!(
        negotiated.contains("hello alice (alice@TEST.REALM)"),
        "{negotiated}"
    );
    let mutual = negotiated
        .lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("www-authenticate: negotiate ")
        })
        .count();
    assert_eq!(
        mutual, 1,
        "the mutual-authentication token comes back: {negotiated}"
    );

    // Without a ticket the client cannot negotiate and is challenged again.
    let mut no_ticket = kdc.command("curl");
    no_ticket
        .env(
            "KRB5CCNAME",
            format!("FILE:{}", kdc.dir().join("none.cc").display()),
        )
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--negotiate",
            "-u",
            ":",
        ])
        .arg(format!("http://localhost:{port}/"));
    let code = tokio::task::spawn_blocking(move || no_ticket.output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&code.stdout), "401");
}
