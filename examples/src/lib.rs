//! Runnable hosts for the auth crates: `chain-demo` (a chain and its audit events) and
//! `pg-gateway` (a PostgreSQL-wire gateway that psql and other clients log in to).

#![forbid(unsafe_code)]

pub mod gateway;
