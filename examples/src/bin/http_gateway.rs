//! An HTTP API on 127.0.0.1 with embedded defaults, sharing the pg-gateway's data
//! directory (the same wallet, `demo` user and audit log).
//!
//! `cargo run -p auth-examples --bin http-gateway [-- --data-dir DIR] [-- --listen ADDR]`
//!
//! It prints a bearer token from its own local issuer (an ES256 key kept in the data
//! directory) and `curl` lines that work as printed. Ctrl-C stops it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use auth_examples::{gateway, http};
use secrecy::ExposeSecret;

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "http-gateway: {message}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let dir = arg("--data-dir")
        .or_else(|| std::env::var("GATEWAY_DATA_DIR").ok())
        .map_or_else(|| PathBuf::from("gateway-data"), PathBuf::from);
    let listen = arg("--listen")
        .or_else(|| std::env::var("HTTP_GATEWAY_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        return fail(format!("`{listen}` is not an address like 127.0.0.1:8080"));
    };
    let prepared = match gateway::prepare(&dir).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let issuer = match http::LocalIssuer::load_or_create(&dir) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let app = match http::app(&prepared, &issuer) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {listen}: {e}; pass --listen")),
    };
    let addr = listener.local_addr().unwrap_or(listen);
    let token = match issuer.issue("demo", "read", Duration::from_secs(3600)) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout();
    if let Some(password) = &prepared.demo_password {
        let _ = writeln!(
            out,
            "created user demo with password: {} (shown once; change it with authctl user passwd demo)",
            password.expose_secret()
        );
    }
    let _ = writeln!(out, "data directory: {}", dir.display());
    let password = prepared.demo_password.as_ref().map(|p| p.expose_secret());
    let _ = http::write_curl_lines(&mut out, addr, &token, password);
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
    let serve = http::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    });
    match serve.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
