//! # auth-tests
//!
//! End-to-end tests against real peers, and the harness that runs them: each service is
//! started as a child process on a free 127.0.0.1 port in its own temporary directory, and
//! stopped by PID when its handle is dropped.
//!
//! - [`kdc::Kdc`]: a throwaway MIT Kerberos realm (the k5test approach).
//! - [`postgres::Postgres`]: a PostgreSQL cluster (initdb + pg_ctl).
//! - [`redis::Redis`]: a Redis server, plain or secured (TLS, ACL user), stopped and
//!   restarted in place; [`redis::RedisCluster`]: a three-node Redis Cluster.
//! - [`oidc::OidcProvider`]: node oidc-provider, a certified OpenID provider.
//! - [`oauth_server::DjangoOAuth`]: django-oauth-toolkit, for the password grant.
//! - [`netns::TestHost`]: a test host in a network namespace, for non-loopback clients.
//! - [`haproxy::HaProxy`]: HAProxy in front of a server (PROXY protocol, TLS termination).
//! - [`scram_client`]: an independent SCRAM client (postgres-protocol) for interop tests.
//!
//! A service that cannot start fails the test with a [`HarnessError`] naming
//! `scripts/install-deps.sh`; nothing is ever skipped.

#![forbid(unsafe_code)]

pub mod examples;
pub mod gateway;
pub mod haproxy;
pub mod jdbc;
pub mod jwt;
pub mod kdc;
pub mod netns;
pub mod oauth_server;
pub mod oidc;
pub mod pki;
pub mod postgres;
mod process;
pub mod prometheus;
pub mod redis;
pub mod scram_client;
pub mod stats;
pub mod token_endpoint;

pub use process::{
    HarnessError, ServiceProcess, cpu_seconds, eventually, free_port, process_alive, venv_python,
};
