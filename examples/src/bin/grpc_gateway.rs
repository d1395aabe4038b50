//! A gRPC service on 127.0.0.1 with embedded defaults, sharing the pg-gateway's data
//! directory (the same wallet, `demo` user and audit log).
//!
//! `cargo run -p auth-examples --bin grpc-gateway [-- --data-dir DIR] [-- --listen ADDR]`
//!
//! It prints a bearer token from the data directory's local issuer and `grpcurl` lines
//! that work as printed (the server offers reflection). Ctrl-C stops it.

use std::io::Write;
use std::process::ExitCode;

use auth_examples::{api, gateway, grpc};
use secrecy::ExposeSecret;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "grpc-gateway: {message}");
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> ExitCode {
    let dir = gateway::data_dir_from_args();
    let listen = gateway::listen_arg("--listen", "GRPC_GATEWAY_LISTEN", "127.0.0.1:50051");
    let prepared = match gateway::prepare(&dir).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let started = match api::ApiAuth::new(&prepared) {
        Ok(auth) => grpc::start(&auth, &listen, "--listen").await,
        Err(e) => Err(e),
    };
    let started = match started {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut out = std::io::stdout();
    let _ = gateway::write_banner(&mut out, &prepared);
    let password = prepared.demo_password.as_ref().map(|p| p.expose_secret());
    let _ = writeln!(out, "token (scope read, 1 hour): {}", started.token);
    let _ = grpc::write_grpcurl_lines(&mut out, started.addr, &started.token, password);
    let _ = writeln!(out, "listening on {}", started.addr);
    let _ = out.flush();
    let serve = grpc::serve(started, async {
        let _ = tokio::signal::ctrl_c().await;
    });
    match serve.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
