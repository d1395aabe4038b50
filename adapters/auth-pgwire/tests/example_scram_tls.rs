//! The `scram_tls` example (a SCRAM-over-TLS server answering queries with `PgServer`)
//! run as its documentation says, against psql.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_tests::examples::{sh, start_example};

#[test]
fn the_scram_tls_example_serves_psql_as_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, line) = start_example(
        "scram_tls",
        &["--listen", "127.0.0.1:0"],
        tmp.path(),
        "connect: ",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains("sslmode=verify-full"), "{line}");
    let (ok, stdout, stderr) = sh(&line).unwrap();
    assert!(ok, "as printed: {line}\n{stderr}");
    assert_eq!(stdout, "HELLO", "the query handler answered");
    // SCRAM-SHA-256-PLUS over TLS: libpq insists on channel binding when told to.
    let (ok, stdout, stderr) =
        sh(&line.replace("sslmode=", "channel_binding=require sslmode=")).unwrap();
    assert!(ok && stdout == "HELLO", "channel binding: {stderr}");
    // A wrong password is refused as PostgreSQL refuses it.
    let (ok, _, stderr) = sh(&line.replacen("PGPASSWORD='", "PGPASSWORD='x", 1)).unwrap();
    assert!(!ok, "a wrong password logged in");
    assert!(
        stderr.contains("password authentication failed for user \"alice\""),
        "{stderr}"
    );
}
