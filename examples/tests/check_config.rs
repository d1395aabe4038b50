//! The command line and `--check-config`, run as a user runs them: `--help` starts
//! nothing, a mistyped flag is refused, the README's configuration passes, and broken
//! files are refused with every problem, its line and a hint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pg-gateway"));
    // Only this test's variables: the environment of the test run must not change what
    // the gateway reads.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn check(dir: &Path, file: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    std::fs::write(dir.join("gateway.toml"), file).unwrap();
    let mut cmd = gateway();
    cmd.arg("--check-config").arg("--data-dir").arg(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (out, stdout, stderr) = run(&mut cmd);
    (out.status.success(), stdout, stderr)
}

#[test]
fn help_and_version_start_nothing_and_a_mistyped_flag_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let (out, stdout, _) = run(gateway().current_dir(cwd.path()).arg("--help"));
    assert!(out.status.success());
    assert!(stdout.contains("Usage: pg-gateway"), "{stdout}");
    for flag in [
        "--data-dir",
        "--listen",
        "--http-listen",
        "--check-config",
        "AUTH_RATE_LIMIT__USER_FAILURES",
    ] {
        assert!(stdout.contains(flag), "{flag} in {stdout}");
    }
    assert!(
        stdout.contains("[env: GATEWAY_LISTEN="),
        "every flag is also a variable: {stdout}"
    );
    let (out, stdout, _) = run(gateway().current_dir(cwd.path()).arg("--version"));
    assert!(out.status.success());
    assert!(stdout.starts_with("pg-gateway "), "{stdout}");

    let (out, _, stderr) = run(gateway().current_dir(cwd.path()).args(["--lisen", "x"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unexpected argument '--lisen'"), "{stderr}");
    assert!(stderr.contains("'--listen'"), "a suggestion: {stderr}");
    let (out, _, stderr) = run(gateway()
        .current_dir(cwd.path())
        .args(["--listen", "nowhere"]));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'nowhere'"), "{stderr}");

    let made: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(
        made.is_empty(),
        "--help, --version and refused flags create nothing: {made:?}"
    );
}

#[test]
fn check_config_without_a_file_checks_the_default_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (out, stdout, stderr) = run(gateway().arg("--check-config").arg("--data-dir").arg(&data));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("does not exist yet"), "{stderr}");
    let effective: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(effective["listen"].as_str(), Some("127.0.0.1:6432"));
    assert_eq!(
        effective["rate_limit"]["user_failures"].as_integer(),
        Some(5),
        "defaults included"
    );
    assert!(!data.exists(), "--check-config writes nothing");
}

#[test]
fn the_readmes_configuration_passes_and_prints_its_effective_settings() {
    let readme = include_str!("../../README.md");
    let mut blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(blocks.len() >= 3);
    // Blocks of top-level keys go first, as they would in one file.
    blocks.sort_by_key(|b| {
        b.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with('['))
    });
    let dir = tempfile::tempdir().unwrap();
    // The files the README's configuration names, as a deployment has them: the check
    // reads them as the start would.
    let ca = auth_tests::pki::run_ca().unwrap();
    std::fs::write(dir.path().join("client-ca.crt"), ca.pem()).unwrap();
    std::fs::write(
        dir.path().join("client-ca.crl"),
        ca.crl_pem(&[], (2026, 1, 1), (2099, 1, 1)).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("idp-ca.crt"), ca.pem()).unwrap();
    let (ok, stdout, stderr) = check(dir.path(), &blocks.concat(), &[]);
    assert!(ok, "{stderr}");
    let effective: toml::Table = toml::from_str(&stdout).unwrap();
    let rules = effective["rule"].as_array().unwrap();
    assert!(rules.iter().any(|r| {
        r["method"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str() == Some("oauthbearer"))
    }));
    assert!(
        !stdout.contains("client_secret ="),
        "secrets are referenced, never printed"
    );
    // Each block alone, with a rule where it has none, passes too.
    for block in blocks {
        let file = if block.contains("[[rule]]") {
            block.to_owned()
        } else {
            format!("{block}\n[[rule]]\nname = \"all\"\nmethod = \"scram\"\n")
        };
        let (_, _, stderr) = check(dir.path(), &file, &[]);
        assert!(!stderr.contains("no such setting"), "{block}\n{stderr}");
    }
}

/// A broken file: what it says, the line its problem is on, words of the message and
/// of the hint.
struct Broken {
    file: &'static str,
    line: usize,
    message: &'static str,
    hint: &'static str,
}

const RULE: &str = "[[rule]]\nname = \"all\"\nmethod = \"scram\"\n";

fn broken() -> Vec<Broken> {
    let b = |file, line, message, hint| Broken {
        file,
        line,
        message,
        hint,
    };
    vec![
        b(
            "lisen = \"127.0.0.1:1\"\n",
            1,
            "no such setting",
            "did you mean `listen`?",
        ),
        b("listen = \"localhost\"\n", 1, "invalid socket address", ""),
        b(
            "auth_timeout = \"soon\"\n",
            1,
            "is not a duration; write it like \"60s\"",
            "",
        ),
        b(
            "unix_socket_permissions = 777\n",
            1,
            "at most 0o777",
            "0o770",
        ),
        b(
            "max_unauthenticated_per_address = 0\n",
            1,
            "would refuse every connection",
            "positive",
        ),
        b(
            "max_unauthenticated_connections = 4\nsilent_timeout = \"0s\"\n",
            2,
            "must be longer than 0",
            "10s",
        ),
        b(
            "trusted_proxies = [\"10.0.0.1\", \"proxy.example\"]\n",
            1,
            "not an IP address",
            "10.0.0.0/8",
        ),
        b(
            "\n[rate_limit]\nuser_failures = 0\n",
            3,
            "lock everyone out",
            "positive",
        ),
        b(
            "[rate_limit]\nlockout = \"2h\"\nmax_lockout = \"1h\"\n",
            3,
            "shorter than lockout",
            "at least lockout",
        ),
        b(
            "[rate_limit]\nuser_failure = 3\n",
            2,
            "unknown field",
            "did you mean `user_failures`?",
        ),
        b("[password]\nargon2_memory_kib = 1024\n", 2, "argon2", "19"),
        b(
            "[client_certificates]\nname = \"subject\"\n",
            2,
            "name = \"subject\"",
            "cn, dn, dns, email or uri",
        ),
        b(
            "[kerberos]\ncase = \"title\"\n",
            2,
            "unknown variant `title`",
            "",
        ),
        b(
            "[[oauth_issuer]]\nissuer = \"http://idp.example\"\naudience = \"pg\"\n",
            2,
            "https",
            "",
        ),
        b(
            "[oauth_password]\ntoken_endpoint = \"https://idp.example/token\"\nclient_id = \"gw\"\n",
            1,
            "name the client secret's source, either client_secret_env",
            "",
        ),
        b(
            "[oauth_password]\ntoken_endpoint = \"https://idp.example/token\"\nclient_id = \"gw\"\nclient_auth = \"private_key_jwt\"\n",
            1,
            "private_key_file",
            "",
        ),
        b(
            "[[identity_map]]\nmap = \"m\"\nidentity = \"/(unclosed\"\nuser = \"b\"\n",
            3,
            "identity `/(unclosed`",
            "",
        ),
        b(
            "[[rule]]\nname = \"x\"\ntype = \"hots\"\nmethod = \"scram\"\n",
            3,
            "unknown type `hots`",
            "hostssl",
        ),
        b(
            "[[rule]]\nname = \"x\"\naddresses = [\"10.0.0.0/33\"]\nmethod = \"scram\"\n",
            3,
            "not a CIDR network",
            "address/bits",
        ),
        b(
            "[[rule]]\nname = \"x\"\nmethod = \"trust\"\n",
            3,
            "must match only this machine",
            "type = \"local\"",
        ),
        b(
            "[[rule]]\nname = \"x\"\nmethod = \"bearer\"\n",
            3,
            "HTTP and gRPC APIs",
            "protocols = [\"http\", \"grpc\"]",
        ),
        b(
            "[[rule]]\nname = \"x\"\nmethod = \"oauthbearer\"\nissuer = \"https://idp.example\"\n",
            4,
            "not configured",
            "[[oauth_issuer]]",
        ),
        b(
            "[client_certificates]\nca_file = \"missing-ca.crt\"\n",
            2,
            "missing-ca.crt: No such file",
            "",
        ),
        b(
            "[[oauth_issuer]]\nissuer = \"https://idp.example\"\naudience = \"pg\"\nca_file = \"idp-ca.crt\"\n",
            4,
            "idp-ca.crt",
            "",
        ),
        b(
            "[wallet]\nmaster_key_env = \"not a name\"\n",
            2,
            "not an environment variable's name",
            "name the variable",
        ),
    ]
}

#[test]
fn broken_files_are_refused_with_their_line_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cases = broken();
    assert!(cases.len() >= 20);
    for case in cases {
        if case.file.starts_with("[kerberos]") && !cfg!(feature = "kerberos") {
            // A build without Kerberos keeps the section as written (CI builds with it).
            continue;
        }
        let file = if case.file.contains("[[rule]]") {
            case.file.to_owned()
        } else {
            // The rule after the broken part, so the broken line keeps its number.
            format!("{}\n{RULE}", case.file)
        };
        let (ok, _, stderr) = check(dir.path(), &file, &[]);
        assert!(!ok, "refused:\n{file}");
        let at = format!("gateway.toml:{}:", case.line);
        let problem = stderr
            .split("\n")
            .enumerate()
            .find(|(_, l)| l.contains(&at) && l.contains(case.message))
            .map(|(i, _)| i);
        let Some(i) = problem else {
            panic!(
                "expected `{}` at line {} for\n{file}\ngot:\n{stderr}",
                case.message, case.line
            );
        };
        if !case.hint.is_empty() {
            let hint = stderr.lines().nth(i + 1).unwrap_or_default();
            assert!(
                hint.contains("hint:") && hint.contains(case.hint),
                "hint `{}` for\n{file}\ngot:\n{stderr}",
                case.hint
            );
        }
    }
}

#[test]
fn every_problem_is_listed_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let file = "lisen = \"x\"\n[rate_limit]\nuser_failures = 0\n[[rule]]\nname = \"a\"\ntype = \"hots\"\nmethod = \"scram\"\n[[rule]]\nname = \"b\"\nmethod = \"sso\"\n";
    let (ok, _, stderr) = check(dir.path(), file, &[]);
    assert!(!ok);
    for line in [1, 3, 6, 10] {
        assert!(
            stderr.contains(&format!("gateway.toml:{line}:")),
            "line {line}:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
}

#[test]
fn the_environment_overrides_the_file_and_its_problems_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = check(
        dir.path(),
        RULE,
        &[
            ("AUTH_LISTEN", "0.0.0.0:7777"),
            ("AUTH_RATE_LIMIT__USER_FAILURES", "9"),
            ("AUTH_RULE__0__METHOD", "[\"scram\", \"password\"]"),
            ("AUTH_SERVICE_HOST", "10.0.0.7"),
        ],
    );
    assert!(ok, "{stderr}");
    let effective: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(effective["listen"].as_str(), Some("0.0.0.0:7777"));
    assert_eq!(
        effective["rate_limit"]["user_failures"].as_integer(),
        Some(9)
    );
    assert_eq!(effective["rule"][0]["method"].as_array().unwrap().len(), 2);
    assert!(
        stderr.contains("environment variable AUTH_SERVICE_HOST: service_host: ignored"),
        "another program's variable is reported, not fatal: {stderr}"
    );

    let (ok, _, stderr) = check(
        dir.path(),
        RULE,
        &[("AUTH_RATE_LIMIT__USER_FAILURES", "many")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("environment variable AUTH_RATE_LIMIT__USER_FAILURES"),
        "{stderr}"
    );
}
