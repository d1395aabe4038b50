//! Runnable hosts for the auth crates: `chain-demo` (a chain and its audit events) and
//! `pg-gateway` (a PostgreSQL-wire gateway that psql and other clients log in to) and
//! `http-gateway` and `grpc-gateway` (the same users behind an HTTP API and a gRPC
//! service, with bearer tokens and Basic).

#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod cli;
pub mod gateway;
pub mod grpc;
pub mod http;
#[cfg(test)]
mod readme;
