//! An HTTP API on 127.0.0.1 with embedded defaults, sharing the pg-gateway's data
//! directory (the same wallet, `demo` user and audit log).
//!
//! `cargo run -p auth-examples --bin http-gateway [-- --data-dir DIR] [-- --listen ADDR]`
//!
//! It prints a bearer token from its own local issuer (an ES256 key kept in the data
//! directory) and `curl` lines that work as printed. Ctrl-C stops it.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    auth_examples::api::Standalone::Http.run().await
}
