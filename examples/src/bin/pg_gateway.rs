//! A PostgreSQL-wire gateway on 127.0.0.1 with embedded defaults.
//!
//! `cargo run -p auth-examples --bin pg-gateway [-- --data-dir DIR]`
//!
//! The first start creates the data directory (default `./gateway-data`): a master key,
//! the wallet file with a `demo` user whose password is printed once, a self-signed TLS
//! certificate, `gateway.toml` with the rules, and the audit log. Ctrl-C stops it.
//!
//! The same users are also served as an HTTP API (the `http-gateway` example's) on
//! `--http-listen` (default 127.0.0.1:8080; `off` to skip it), so curl works too.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use auth_examples::{gateway, http};
use secrecy::ExposeSecret;

/// Starts the HTTP API next to the pgwire listener; a busy port or a bad setting is
/// reported and the pgwire gateway runs on without it.
async fn start_http(prepared: &gateway::Prepared, out: &mut impl Write) {
    let listen = gateway::cli_arg("--http-listen")
        .or_else(|| std::env::var("HTTP_GATEWAY_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    if listen == "off" {
        return;
    }
    match http::start(prepared, &listen, "--http-listen").await {
        Ok(started) => {
            let password = prepared.demo_password.as_ref().map(|p| p.expose_secret());
            let _ = writeln!(out, "http api on {}:", started.addr);
            let _ = http::write_curl_lines(out, started.addr, &started.token, password);
            tokio::spawn(async move {
                if let Err(e) =
                    http::serve(started.listener, started.app, std::future::pending()).await
                {
                    tracing::warn!(error = %e, "the HTTP API stopped");
                }
            });
        }
        Err(e) => {
            let _ = writeln!(out, "http api not started: {e}");
        }
    }
}

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut out = std::io::stdout();
    let dir = gateway::data_dir_from_args();
    let prepared = match gateway::prepare(&dir).await {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "pg-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (handlers, serve) = match gateway::handlers(&prepared) {
        Ok(h) => h,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "pg-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = gateway::listen_addr(&prepared);
    // A deep accept queue, so a burst of thousands of connections is not dropped.
    let listener = match bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "pg-gateway: cannot listen on {addr}: {e}; set `listen` in {}",
                dir.join("gateway.toml").display()
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    if let Some(password) = &prepared.demo_password {
        let _ = writeln!(
            out,
            "created user demo with password: {} (shown once; change it with authctl user passwd demo)",
            password.expose_secret()
        );
    }
    let cert = dir.join("server.crt");
    let _ = writeln!(out, "data directory: {}", dir.display());
    let _ = writeln!(
        out,
        "connect:  psql \"host={} port={} user=demo dbname=demo sslmode=verify-full sslrootcert={}\" -c 'SELECT current_user'",
        addr.ip(),
        addr.port(),
        cert.display()
    );
    let _ = writeln!(
        out,
        "audit log: {}",
        dir.join(&prepared.config.audit_log).display()
    );
    start_http(&prepared, &mut out).await;
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();

    let handlers = Arc::new(handlers);
    let serve = Arc::new(serve);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                let _ = writeln!(out, "stopping");
                return ExitCode::SUCCESS;
            }
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (handlers, serve) = (handlers.clone(), serve.clone());
                tokio::spawn(async move {
                    if let Err(e) = auth_pgwire::serve(tcp, &serve, handlers.as_ref()).await {
                        tracing::debug!(error = %e, "connection ended with an I/O error");
                    }
                });
            }
        }
    }
}
