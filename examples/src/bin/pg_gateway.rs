//! A PostgreSQL-wire gateway on 127.0.0.1 with embedded defaults.
//!
//! `cargo run -p auth-examples --bin pg-gateway -- [--data-dir DIR] [--listen ADDR]
//! [--http-listen ADDR|off] [--grpc-listen ADDR|off] [--check-config]` (`--help` says more)
//!
//! The first start creates the data directory (default `./gateway-data`): a master key,
//! the wallet file with a `demo` user whose password is printed once, a self-signed TLS
//! certificate, `gateway.toml` with the rules, and the audit log. Ctrl-C stops it.
//!
//! Next to the TCP listener (`listen` in `gateway.toml`, or `--listen`) it serves the Unix
//! socket `.s.PGSQL.<port>` in the data directory, where the OS user who made the data
//! directory logs in as the system account `postgres` with no password (`peer`); the
//! banner prints that psql line.
//!
//! The same users are also served as an HTTP API (the `http-gateway` example's) on
//! `--http-listen` (default 127.0.0.1:8080) and as a gRPC service (the `grpc-gateway`
//! example's) on `--grpc-listen` (default 127.0.0.1:50051), so curl and grpcurl work too;
//! `off` skips either.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use auth_core::Protocol;
use auth_examples::cli::{PgGatewayArgs, check_config};
use auth_examples::{admin, api, gateway, grpc, http};
use clap::Parser;
use secrecy::ExposeSecret;

/// The address an API listens on; `None` for `off`.
fn api_listen(listen: &str) -> Option<String> {
    (listen != "off").then(|| listen.to_owned())
}

/// Starts the HTTP and gRPC APIs next to the pgwire listener, sharing one policy; a busy
/// port or a bad setting is reported and the pgwire gateway runs on without that API.
async fn start_apis(
    args: &PgGatewayArgs,
    prepared: &gateway::Prepared,
    engine: Arc<auth_core::Engine>,
    doors: gateway::Doors,
    health: Arc<admin::Health>,
    out: &mut impl Write,
) {
    let http_listen = api_listen(&args.http_listen);
    let grpc_listen = api_listen(&args.grpc_listen);
    if http_listen.is_none() && grpc_listen.is_none() {
        return;
    }
    let auth = api::ApiAuth::new(prepared, engine, doors).with_health(health);
    let password = prepared.demo_password.as_ref().map(|p| p.expose_secret());
    if let Some(listen) = http_listen {
        match http::start(&auth, &listen, "--http-listen").await {
            Ok(started) => {
                let _ = writeln!(out, "http api on {}:", started.addr);
                let _ = started.write_curl_lines(out, password);
                tokio::spawn(async move {
                    if let Err(e) = http::serve(started, std::future::pending()).await {
                        tracing::warn!(error = %e, "the HTTP API stopped");
                    }
                });
            }
            Err(e) => {
                let _ = writeln!(out, "http api not started: {e}");
            }
        }
    }
    if let Some(listen) = grpc_listen {
        match grpc::start(&auth, &listen, "--grpc-listen").await {
            Ok(started) => {
                let _ = writeln!(out, "grpc api on {}:", started.addr);
                let _ = started.write_grpcurl_lines(out, password);
                tokio::spawn(async move {
                    if let Err(e) = grpc::serve(started, std::future::pending()).await {
                        tracing::warn!(error = %e, "the gRPC API stopped");
                    }
                });
            }
            Err(e) => {
                let _ = writeln!(out, "grpc api not started: {e}");
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = PgGatewayArgs::parse();
    let dir = args.common.data_dir.clone();
    if args.common.check_config {
        return check_config(&dir, &mut std::io::stdout(), &mut std::io::stderr());
    }
    args.common.init_logging();
    // Before the first attempt, so the engine's metric handles are the recorder's.
    let metrics = admin::install_metrics();
    let mut out = std::io::stdout();
    let prepared = match gateway::prepare(&dir).await {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "pg-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = match gateway::engine(&prepared) {
        Ok(engine) => engine,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "pg-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGHUP reloads gateway.toml (and reopens the audit log), SIGUSR1 flushes the log.
    gateway::serve_signals(&prepared, &engine);
    let addr = args.listen.unwrap_or(prepared.config.gateway.listen);
    // One set of places for unauthenticated connections, whichever door they use.
    let doors = gateway::Doors::new(&prepared, &engine);
    let tls = Some(prepared.tls.clone());
    let listener = match doors.listener(addr, Protocol::Postgres, tls).await {
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
    let unix = match gateway::unix_socket(&prepared, addr.port()) {
        Ok(unix) => unix,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "pg-gateway: {e}; set `unix_socket_directory` in {} (\"\" for none)",
                dir.join("gateway.toml").display()
            );
            return ExitCode::FAILURE;
        }
    };
    let cert = dir.join("server.crt");
    let _ = gateway::write_banner(&mut out, &prepared);
    let _ = writeln!(
        out,
        "connect:  psql \"host={} port={} user=demo dbname=demo sslmode=verify-full sslrootcert={}\" -c 'SELECT current_user'",
        addr.ip(),
        addr.port(),
        cert.display()
    );
    if let Some(socket) = &unix {
        let socket_dir = socket.path().parent().unwrap_or(socket.path());
        let admin = gateway::GatewayConfig::LOCAL_ADMIN;
        if gateway::peer_admits(&engine, admin) {
            let _ = writeln!(
                out,
                "local:    psql -h {} -p {} -U {admin} -d {admin} -c 'SELECT current_user'",
                gateway::shell_word(&socket_dir.display().to_string()),
                addr.port(),
            );
        } else {
            let _ = writeln!(out, "unix socket: {}", socket.path().display());
        }
    }
    let _ = writeln!(
        out,
        "audit log: {}",
        prepared.config.audit.path(&dir).display()
    );
    let health = admin::start(&args.common.admin_listen, &prepared, metrics, &mut out).await;
    start_apis(&args, &prepared, engine.clone(), doors, health, &mut out).await;
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();

    let mut server = gateway::pg_server(engine.clone());
    if let Some(socket) = unix {
        server = server.with_unix_socket(socket);
    }
    let audit = prepared.audit_file.clone();
    match server
        .serve_until(listener, gateway::shutdown_requested())
        .await
    {
        Ok(()) => {
            // The connections have ended; their sessions' end work (tokens revoked at
            // their provider) finishes before the process does, then the audit log.
            if !engine.drain_sessions(gateway::SESSION_DRAIN).await {
                let _ = writeln!(
                    std::io::stderr(),
                    "pg-gateway: some sessions' end work did not finish"
                );
            }
            audit.flush();
            let _ = writeln!(out, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "pg-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
