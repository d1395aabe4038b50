//! CORE-9/ADAPT-5 with real clients: the gateway's Unix socket, `peer` authentication
//! through the identity map, and `trust` only where it matches nothing but this machine.
//! psql runs as the OS user that maps and, through `setpriv`, as another one (`nobody`,
//! which every Debian-like system has); the non-local client is a test host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use auth_core::account::Directory;
use auth_tests::HarnessError;
use auth_tests::gateway::{self, GatewayProcess, printed_line};
use auth_tests::netns::TestHost;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pg-gateway"))
}

/// `line` (a command the gateway printed) run by `sh` as this process's user, or through
/// `setpriv` as `nobody`: (succeeded, stdout, stderr).
fn run_as(nobody: bool, line: &str) -> (bool, String, String) {
    let mut cmd = if nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--reset-env",
            "sh",
        ]);
        c
    } else {
        Command::new("sh")
    };
    let out = cmd
        .arg("-c")
        .arg(format!("{line} -X -A -t"))
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn this_os_user() -> String {
    auth_core::local::SystemUsers
        .this_process()
        .unwrap()
        .expect("this process's user has a name")
}

#[tokio::test]
async fn a_fresh_gateway_lets_its_os_user_in_over_the_unix_socket_as_printed_and_nobody_else() {
    let gw = GatewayProcess::start_fresh(binary()).unwrap_or_else(|e| panic!("{e}"));
    let output = gw.process.output();

    // The socket PostgreSQL clients look for, open to every local user (0777), whom
    // authentication then judges.
    let socket = gw.socket_dir().join(format!(".s.PGSQL.{}", gw.port));
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o777);

    // The printed line, as printed, as the OS user who made the data directory.
    let line =
        printed_line(&output, "local:").unwrap_or_else(|| panic!("no `local:` line in:\n{output}"));
    assert!(
        line.contains(&format!("-h {}", gw.socket_dir().display())),
        "{line}"
    );
    let (ok, out, err) = run_as(false, &line);
    assert!(ok, "{err}");
    assert_eq!(out, "postgres");
    let started = gw.audit("session_started").pop().unwrap();
    assert_eq!(started["method"], "peer");
    let source = started["source"].as_str().unwrap();
    assert!(
        source.starts_with("unix:") && source.contains(" uid="),
        "{source}"
    );

    // The same line as another OS user: refused, generically; the reason is audited.
    let (ok, _, err) = run_as(true, &line);
    assert!(!ok);
    assert!(
        err.contains("peer authentication failed for user \"postgres\""),
        "{err}"
    );
    assert_eq!(
        gw.newest_refusal()["detail"],
        "identity `nobody` (peer) may not act as the requested user `postgres`"
    );

    // `postgres` is a system account with no password: over TCP, even from here, there
    // is nothing to log in with.
    let tcp = gateway::psql(
        Command::new("psql"),
        &gw.conninfo("postgres", "sslmode=disable"),
        "a guess",
        "SELECT 1",
    );
    let err = tcp.unwrap_err();
    assert!(
        err.contains("password authentication failed for user \"postgres\""),
        "{err}"
    );

    // Everyone else on the socket logs in with a password (the `local` SCRAM rule), as
    // any OS user.
    let demo = format!(
        "PGPASSWORD='{}' psql -h {} -p {} -U demo -d demo -c 'SELECT current_user'",
        gw.demo_password,
        gw.socket_dir().display(),
        gw.port
    );
    let (ok, out, err) = run_as(true, &demo);
    assert!(ok && out == "demo", "{err}");
}

/// An identity map that lets `nobody` act as `demo` over the socket, and only as `demo`.
#[tokio::test]
async fn peer_follows_the_identity_map() {
    let me = this_os_user();
    let rules = format!(
        "unix_socket_directory = \".\"\n[[rule]]\nname = \"local-peer\"\ntype = \"local\"\nmethod = \"peer\"\n\
         [[identity_map]]\nmethod = \"peer\"\nidentity = \"nobody\"\nuser = \"demo\"\n\
         [[identity_map]]\nmethod = \"peer\"\nidentity = \"/^{me}$\"\nuser = \"maint\"\n"
    );
    let gw = GatewayProcess::start(binary(), "10s", &rules).unwrap_or_else(|e| panic!("{e}"));
    let users = auth_password::Users::new(gw.wallet().unwrap());
    Directory::new(users.store().clone())
        .update("maint", |r| r.system = true)
        .await
        .unwrap();
    // The harness's work directory is private; let `nobody` reach the socket.
    std::fs::set_permissions(
        gw.data.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let line = |user: &str| {
        format!(
            "psql -h {} -p {} -U {user} -d {user} -c 'SELECT current_user'",
            gw.socket_dir().display(),
            gw.port
        )
    };
    assert_eq!(run_as(true, &line("demo")).1, "demo");
    assert_eq!(run_as(false, &line("maint")).1, "maint", "a regex entry");
    let (ok, _, err) = run_as(true, &line("maint"));
    assert!(!ok, "nobody is not maint");
    assert!(err.contains("peer authentication failed"), "{err}");
    let (ok, _, _) = run_as(false, &line("demo"));
    assert!(!ok, "{me} is not demo");
    assert_eq!(
        gw.newest_refusal()["detail"],
        format!("identity `{me}` (peer) may not act as the requested user `demo`")
    );
    // A disabled account is refused by peer too.
    Directory::new(users.store().clone())
        .modify("demo", |r| {
            r.status = auth_core::account::UserStatus::Disabled
        })
        .await
        .unwrap();
    let (ok, _, err) = run_as(true, &line("demo"));
    assert!(!ok, "disabled");
    assert!(err.contains("peer authentication failed"), "{err}");
    assert_eq!(gw.newest_refusal()["detail"], "account `demo` is disabled");
}

#[tokio::test]
async fn trust_starts_only_behind_a_local_rule_and_then_admits_only_this_machine() {
    // A trust rule that can match another machine: the gateway refuses to start.
    let open = "[[rule]]\nname = \"maint-anywhere\"\nusers = [\"maint\"]\nmethod = \"trust\"\n";
    match GatewayProcess::start(binary(), "10s", open) {
        Err(HarnessError::NotReady { output, .. }) => {
            assert!(
                output.contains("rule `maint-anywhere`: method = \"trust\" lets clients in without any credential")
                    && output.contains("addresses = [\"localhost\"]"),
                "{output}"
            );
        }
        other => panic!("a trust rule for every address started: {other:?}"),
    }

    // Local-only trust for a system account, SCRAM for the rest, listening on a test
    // host's address (so a client there is not on this machine).
    let rules = "unix_socket_directory = \".\"\n[[rule]]\nname = \"maint-local\"\ntype = \"all\"\naddresses = [\"localhost\"]\n\
                 users = [\"maint\"]\nmethod = \"trust\"\n\
                 [[rule]]\nname = \"local-password\"\ntype = \"local\"\nmethod = \"password\"\n\
                 [[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let gw = GatewayProcess::start_at(binary(), host.gateway.into(), "10s", rules, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let users = auth_password::Users::new(gw.wallet().unwrap());
    Directory::new(users.store().clone())
        .update("maint", |r| r.system = true)
        .await
        .unwrap();

    // On this machine (the Unix socket): no password asked.
    let local = format!(
        "psql -h {} -p {} -U maint -d maint -c 'SELECT current_user'",
        gw.socket_dir().display(),
        gw.port
    );
    let (ok, out, err) = run_as(false, &local);
    assert!(ok && out == "maint", "{err}");
    let started = gw.audit("session_started").pop().unwrap();
    assert_eq!(started["method"], "trust");

    // A cleartext password needs no TLS on the socket: the kernel carries it.
    let demo = format!(
        "PGPASSWORD='{}' psql -h {} -p {} -U demo -d demo -c 'SELECT current_user'",
        gw.demo_password,
        gw.socket_dir().display(),
        gw.port
    );
    let (ok, out, err) = run_as(false, &demo);
    assert!(ok && out == "demo", "{err}");

    // From the test host: the trust rule does not match; the SCRAM rule finds no
    // password for maint.
    let remote = gateway::psql(
        host.command("psql"),
        &gw.conninfo("maint", "sslmode=disable"),
        "anything at all",
        "SELECT 1",
    );
    let err = remote.unwrap_err();
    assert!(
        err.contains("password authentication failed for user \"maint\""),
        "{err}"
    );
    assert_eq!(
        gw.audit("session_started").len(),
        2,
        "no session from the test host"
    );
}
