//! The crate's examples run as their documentation says, against curl: `basic_api`
//! (HTTP Basic over HTTPS) and `jwt_api` (tokens from an issuer's JWKS, fetched over
//! HTTPS with the run CA).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_tests::examples::{sh, start_example};
use auth_tests::jwt::Es256Issuer;
use auth_tests::token_endpoint::{Answer, TokenEndpoint};

#[test]
fn the_basic_api_example_serves_curl_as_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, line) = start_example(
        "basic_api",
        &["--listen", "127.0.0.1:0"],
        tmp.path(),
        "whoami: ",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains("https://"), "{line}");
    let (ok, stdout, stderr) = sh(&format!("{line} --fail-with-body -sS")).unwrap();
    assert!(ok, "as printed: {line}\n{stderr}");
    assert_eq!(stdout, "alice");
    // HTTP/2 through ALPN, which the listener offers without being told.
    let (ok, stdout, stderr) = sh(&format!(
        "{line} --http2 -sS -o /dev/null -w '%{{http_version}}'"
    ))
    .unwrap();
    assert!(ok && stdout == "2", "HTTP/2: {stdout} {stderr}");
    let wrong = line.replacen("alice:", "alice:x", 1);
    let (_, stdout, _) = sh(&format!("{wrong} -sS -o /dev/null -w '%{{http_code}}'")).unwrap();
    assert_eq!(stdout, "401", "a wrong password");
}

#[test]
fn the_jwt_api_example_accepts_the_issuers_tokens_from_its_jwks() {
    const ISS: &str = "https://issuer.test";
    let issuer = Es256Issuer::new();
    let jwks = serde_json::json!({"keys": [issuer.jwk]}).to_string();
    let endpoint = TokenEndpoint::start(Answer::new(200, "application/json", &jwks))
        .unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().unwrap();
    let ca = auth_tests::pki::run_ca()
        .unwrap()
        .write_ca("jwks-ca.pem")
        .unwrap();
    let jwks_url = endpoint.token_endpoint();
    let (_server, line) = start_example(
        "jwt_api",
        &[
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            ISS,
            "--jwks-url",
            &jwks_url,
            "--audience",
            "api",
            "--jwks-ca",
            ca.to_str().unwrap(),
        ],
        tmp.path(),
        "whoami: ",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let with_token = |token: &str| format!("TOKEN='{token}'; {line} -sS -w ' %{{http_code}}'");
    let (ok, stdout, stderr) = sh(&with_token(&issuer.token(ISS))).unwrap();
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "user-1\n 200", "the token's subject, 200");
    // Another issuer's token, and a token signed by another key, are refused.
    let (_, stdout, _) = sh(&with_token(&issuer.token("https://other.test"))).unwrap();
    assert!(stdout.ends_with("401"), "another issuer: {stdout}");
    let (_, stdout, _) = sh(&with_token(&Es256Issuer::new().token(ISS))).unwrap();
    assert!(stdout.ends_with("401"), "another key: {stdout}");
    assert!(
        endpoint
            .requests()
            .iter()
            .all(|r| r.head.starts_with("GET /token")),
        "the keys were fetched from the JWKS URL"
    );
    assert!(!endpoint.requests().is_empty(), "the keys were fetched");
}
