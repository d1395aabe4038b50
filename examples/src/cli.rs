//! The gateways' command lines: every flag also an environment variable, unknown flags
//! refused, `--help` and `--version`, and `--check-config`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::gateway::{ConfigText, ENV_PREFIX, GatewayConfig, read_config};

/// What every gateway binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The data directory: master key, wallet, certificate, gateway.toml and the audit
    /// log; a first start creates what is missing.
    #[arg(
        long,
        env = "GATEWAY_DATA_DIR",
        value_name = "DIR",
        default_value = "gateway-data"
    )]
    pub data_dir: PathBuf,
    /// Check DIR/gateway.toml with the AUTH_* variables over it, print the effective
    /// configuration (defaults included; secrets are only ever referenced, never
    /// written) and exit: 0 when it is valid, 1 with every problem and its line or
    /// variable otherwise. Starts nothing and writes nothing.
    #[arg(long)]
    pub check_config: bool,
    /// The admin listener: /metrics (Prometheus), /livez and /readyz; plain HTTP on
    /// loopback, TLS with the gateway's certificate elsewhere; `off` for none.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_LISTEN",
        value_name = "ADDR|off",
        default_value = crate::admin::ADMIN_LISTEN
    )]
    pub admin_listen: String,
    /// How log lines are written to standard error (RUST_LOG filters them; default
    /// `warn`): `text`, or `json` (one object per line, with the attempt's connection id
    /// that its audit events carry).
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

impl CommonArgs {
    /// Installs the log subscriber (`RUST_LOG`, default `warn`) in `log_format`.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }
}

const AFTER_HELP: &str = "Every setting of gateway.toml can be overridden by an environment \
variable: AUTH_ and its path in capitals, `__` between the steps (AUTH_LISTEN, \
AUTH_RATE_LIMIT__USER_FAILURES, AUTH_RULE__0__METHOD). Values are TOML (10, true, \
[\"10.0.0.0/8\"]) or plain text (60s, 127.0.0.1:6432).";

/// `pg-gateway`: PostgreSQL wire protocol, with the HTTP and gRPC APIs beside it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pg-gateway",
    version,
    about = "A PostgreSQL-wire gateway (with HTTP and gRPC APIs) that authenticates its clients by the rules of gateway.toml",
    after_help = AFTER_HELP
)]
pub struct PgGatewayArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    /// Where pgwire listens (default: `listen` in gateway.toml, 127.0.0.1:6432).
    #[arg(long, env = "GATEWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Where the HTTP API listens; `off` for none.
    #[arg(long, env = "HTTP_GATEWAY_LISTEN", value_name = "ADDR|off", default_value = crate::api::HTTP_LISTEN.1)]
    pub http_listen: String,
    /// Where the gRPC API listens; `off` for none.
    #[arg(long, env = "GRPC_GATEWAY_LISTEN", value_name = "ADDR|off", default_value = crate::api::GRPC_LISTEN.1)]
    pub grpc_listen: String,
}

/// `http-gateway`: the HTTP API alone.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "http-gateway",
    version,
    about = "An HTTP API that authenticates its clients by the rules of gateway.toml",
    after_help = AFTER_HELP
)]
pub struct HttpGatewayArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    /// Where the HTTP API listens.
    #[arg(long, env = "HTTP_GATEWAY_LISTEN", value_name = "ADDR", default_value = crate::api::HTTP_LISTEN.1)]
    pub listen: String,
}

/// `grpc-gateway`: the gRPC service alone.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "grpc-gateway",
    version,
    about = "A gRPC service that authenticates its clients by the rules of gateway.toml",
    after_help = AFTER_HELP
)]
pub struct GrpcGatewayArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    /// Where the gRPC service listens.
    #[arg(long, env = "GRPC_GATEWAY_LISTEN", value_name = "ADDR", default_value = crate::api::GRPC_LISTEN.1)]
    pub listen: String,
}

/// `--check-config`: the effective configuration on `out`, problems and warnings on
/// `err`; success when the configuration is valid.
pub fn check_config(data_dir: &Path, out: &mut impl Write, err: &mut impl Write) -> ExitCode {
    let path = data_dir.join("gateway.toml");
    let config = match read_config(data_dir) {
        Ok(Some(config)) => {
            for message in &config.upgraded {
                let _ = writeln!(
                    err,
                    "{}: the next start upgrades it: {message}",
                    path.display()
                );
            }
            config
        }
        Ok(None) => {
            let user = auth_core::local::SystemUsers
                .this_process()
                .ok()
                .flatten()
                .unwrap_or_else(|| "postgres".into());
            let _ = writeln!(
                err,
                "{} does not exist yet; the first start writes the default, checked here",
                path.display()
            );
            ConfigText::new(GatewayConfig::default_toml(&user))
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return ExitCode::FAILURE;
        }
    };
    let name = path.display().to_string();
    match GatewayConfig::load_in(Some(data_dir), &name, &config.text, std::env::vars()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                let _ = writeln!(err, "{warning}");
            }
            let _ = write!(out, "{}", loaded.config.to_toml());
            let _ = writeln!(err, "{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let e = config.on_disk(e);
            let _ = writeln!(err, "{e}");
            let _ = writeln!(
                err,
                "{}: {} problem(s); {ENV_PREFIX}* variables override the file",
                path.display(),
                e.problems.len()
            );
            ExitCode::FAILURE
        }
    }
}
