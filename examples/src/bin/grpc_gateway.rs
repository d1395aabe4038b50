//! A gRPC service on 127.0.0.1 with embedded defaults, sharing the pg-gateway's data
//! directory (the same wallet, `demo` user and audit log).
//!
//! `cargo run -p auth-examples --bin grpc-gateway [-- --data-dir DIR] [-- --listen ADDR]`
//!
//! It prints a bearer token from the data directory's local issuer and `grpcurl` lines
//! that work as printed (the server offers reflection). Ctrl-C stops it.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    auth_examples::api::Standalone::Grpc.run().await
}
