//! Debian's logrotate rotates the gateway's audit log while logins run, with the
//! `postrotate` deployments use (`kill -HUP`): no event is lost, every line is whole, and
//! the file the gateway makes after each rotation is readable by its owner only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use auth_tests::gateway::{GatewayProcess, psql};

const RULES: &str = r#"
[[rule]]
name = "scram"
method = "scram"
"#;

const LOGINS: usize = 60;
const ROTATIONS: usize = 3;

fn rotate(conf: &Path, state: &Path) {
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(state)
        .arg(conf)
        .output()
        .expect("logrotate runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "logrotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn logrotate_rotates_the_audit_log_while_logins_run_and_nothing_is_lost() {
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start(binary, "30s", RULES).unwrap_or_else(|e| panic!("{e}"));
    let pid = gw.process.pid().unwrap();
    let log = gw.data.join("audit.jsonl");
    let conf = gw.data.join("logrotate.conf");
    let state = gw.data.join("logrotate.state");
    // As a deployment writes it; `nocreate`: the gateway makes the new file itself.
    std::fs::write(
        &conf,
        format!(
            "{log} {{\n  rotate 10\n  nocompress\n  nocreate\n  missingok\n  postrotate\n    kill -HUP {pid}\n  endscript\n}}\n",
            log = log.display()
        ),
    )
    .unwrap();
    let before = gw.audit("attempt_succeeded").len();

    let conninfo = gw.conninfo("demo", "sslmode=require");
    let password = gw.demo_password.clone();
    let logins = std::thread::spawn(move || {
        (0..LOGINS)
            .map(|_| psql(Command::new("psql"), &conninfo, &password, "SELECT 1"))
            .filter(Result::is_ok)
            .count()
    });
    for _ in 0..ROTATIONS {
        rotate(&conf, &state);
    }
    let succeeded = logins.join().unwrap();
    assert_eq!(succeeded, LOGINS, "logins go on while the log rotates");
    // One more rotation after the logins, so the newest file is one the gateway made: it
    // exists once the gateway has handled the SIGHUP.
    rotate(&conf, &state);
    auth_tests::eventually(std::time::Duration::from_secs(10), || {
        log.exists()
            .then_some(())
            .ok_or_else(|| "no new audit.jsonl yet".to_owned())
    });
    let login = psql(
        Command::new("psql"),
        &gw.conninfo("demo", "sslmode=require"),
        &gw.demo_password,
        "SELECT 1",
    );
    assert!(login.is_ok(), "{login:?}");
    gw.flush_audit();

    // A rotation that finds no file (the gateway had not yet made the new one) is
    // skipped (`missingok`); every file there is counted.
    let files: Vec<_> = std::fs::read_dir(&gw.data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name == "audit.jsonl"
                || name
                    .strip_prefix("audit.jsonl.")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    assert!(files.len() >= 3, "rotated files: {files:?}");
    let mut successes = 0;
    let mut dropped = 0;
    for file in &files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for line in text.lines() {
            let event: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("a whole line: {e}: {line}"));
            if event["event"] == "attempt_succeeded" {
                successes += 1;
            }
            dropped += event["audit_dropped"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(dropped, 0, "nothing dropped");
    assert_eq!(
        successes,
        before + LOGINS + 1,
        "every login's event is in one of the files"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file made after the rotation is private");
    let newest = std::fs::read_to_string(&log).unwrap();
    assert!(
        newest.contains("attempt_succeeded"),
        "the gateway writes to the new file after SIGHUP: {newest}"
    );
}
