//! OPS-3 as an operator sees it: a real Prometheus scrapes a running gateway's admin
//! listener while clients on a test host (not loopback) log in over psql, curl and gRPC,
//! and PromQL sees their attempts, outcomes and the lockout; `/readyz` and
//! `grpc.health.v1` follow a required identity provider (oidc-provider over HTTPS) going
//! down and coming back, and a CRL that expires; an identity provider that is not
//! required is reported without taking the gateway out of its load balancer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use auth_tests::eventually;
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::netns::TestHost;
use auth_tests::oidc::OidcProvider;
use auth_tests::pki::TestCa;
use auth_tests::prometheus::Prometheus;

const WAIT: Duration = Duration::from_secs(30);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pg-gateway"))
}

/// `GET http://127.0.0.1:<admin>/<path>`: the status and the body.
fn admin(gw: &GatewayProcess, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{}{path}", gw.admin_port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
    (status.to_owned(), body.to_owned())
}

/// The `/readyz` status, and the dependency `name` from its body.
fn readiness(gw: &GatewayProcess, name: &str) -> (String, serde_json::Value) {
    let (status, body) = admin(gw, "/readyz");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let dependency = body["dependencies"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == name).cloned())
        .unwrap_or_default();
    (status, dependency)
}

/// What `grpc.health.v1.Health/Check` answers for the whole server.
fn grpc_health(gw: &GatewayProcess) -> String {
    let line = format!(
        "grpcurl -cacert {} -d '{{\"service\": \"\"}}' 127.0.0.1:{} grpc.health.v1.Health/Check",
        gw.ca_file().display(),
        gw.grpc_port
    );
    let run = gateway::run_printed_grpcurl(&line).unwrap_or_else(|e| panic!("{e}"));
    run.stdout + &run.stderr
}

#[test]
fn prometheus_sees_the_attempts_outcomes_and_lockouts_of_every_door() {
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let rules = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n\n\
                 [rate_limit]\nuser_failures = 2\nlockout = \"300s\"\n";
    let gw = GatewayProcess::start_at(binary(), host.gateway.into(), "10s", rules, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let prometheus = Prometheus::start(&[format!("127.0.0.1:{}", gw.admin_port)])
        .unwrap_or_else(|e| panic!("{e}"));
    let psql = |user: &str, password: &str| {
        gateway::psql(
            host.command("psql"),
            &gw.conninfo(user, "sslmode=require"),
            password,
            "SELECT current_user",
        )
    };
    assert_eq!(psql("demo", &gw.demo_password), Ok("demo".into()));
    for _ in 0..3 {
        assert!(psql("carol", "wrong").is_err());
    }
    let locked = psql("carol", "wrong").unwrap_err();
    assert!(locked.contains("too many failed attempts"), "{locked}");
    let (mut args, url) = gw.https("/whoami");
    args.extend(["-u".to_owned(), format!("demo:{}", gw.demo_password)]);
    assert_eq!(
        gateway::http_status(host.command("curl"), &args, &url),
        "200"
    );
    let grpc = gateway::preauth_client(&host)
        .unwrap_or_else(|e| panic!("{e}"))
        .env("AUTH_TEST_CA", gw.ca_file())
        .args([
            "grpc-call",
            &gw.ip.to_string(),
            &gw.grpc_port.to_string(),
            "demo",
            &gw.demo_password,
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&grpc.stdout).trim(), "OK");

    // The banner's admin lines work as printed.
    let output = gw.process.output();
    for label in ["metrics:", "ready:"] {
        let line = gateway::printed_line(&output, label).unwrap_or_else(|| panic!("{output}"));
        let (body, status) = gateway::run_printed(&line).unwrap();
        assert_eq!(status, "200", "{line}: {body}");
    }
    // Prometheus scrapes every second: wait until it has what the clients did.
    let seen = |protocol: &str, outcome: &str| {
        prometheus
            .value(&format!(
                "sum(auth_attempts_total{{protocol=\"{protocol}\",outcome=\"{outcome}\"}})"
            ))
            .unwrap()
            .unwrap_or(0.0)
    };
    eventually(WAIT, || {
        let got = [
            seen("postgres", "success"),
            seen("http", "success"),
            seen("grpc", "success"),
            seen("postgres", "rejected"),
            prometheus
                .value("sum(auth_limiter_refusals_total{kind=\"lockout\",scope=\"user\"})")
                .unwrap()
                .unwrap_or(0.0),
        ];
        // Two wrong passwords judged, then the lockout refuses twice.
        (got[..3] == [1.0, 1.0, 1.0] && got[3] == 2.0 && got[4] == 2.0)
            .then_some(())
            .ok_or_else(|| format!("{got:?}"))
    });
    // The decision latency is a histogram with buckets, so it adds up across instances.
    let p99 = prometheus
        .value("histogram_quantile(0.99, sum by (le) (auth_decision_seconds_bucket))")
        .unwrap();
    assert!(p99.is_some_and(|v| v > 0.0), "{p99:?}");
    // No series names a user or an address.
    let series = prometheus
        .query("{__name__=~\"auth_.*\"}")
        .unwrap()
        .to_string();
    assert!(!series.contains("carol") && !series.contains(&host.address.to_string()));
}

#[test]
fn readiness_follows_a_required_provider_and_an_expired_crl_but_not_an_optional_one() {
    let mut provider = OidcProvider::start().unwrap_or_else(|e| panic!("{e}"));
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Readiness Client CA", pki.path()).unwrap();
    let ca_file = ca.write_ca("client-ca.crt").unwrap();
    let crl = ca.write_crl("client-ca.crl", &[]).unwrap();
    let issuer_ca = pki.path().join("issuer-ca.pem");
    std::fs::write(&issuer_ca, provider.ca_pem().unwrap()).unwrap();
    let issuer = provider.issuer();
    let config = |required: &str| {
        format!(
            "[client_certificates]\nca_file = \"{}\"\ncrl_file = \"{}\"\n\n\
             [[oauth_issuer]]\nissuer = \"{issuer}\"\naudience = \"urn:api\"\nca_file = \"{}\"\n\n\
             [health]\ninterval = \"1s\"\nrequired = [{required}]\n\n\
             [[rule]]\nname = \"scram\"\nmethod = \"scram\"\n",
            ca_file.display(),
            crl.display(),
            issuer_ca.display()
        )
    };
    let strict = GatewayProcess::start(
        binary(),
        "10s",
        &config("\"wallet\", \"server_certificate\", \"crl\", \"oauth_issuer\""),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let lenient = GatewayProcess::start(binary(), "10s", &config("\"wallet\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let named = format!("oauth_issuer {issuer}");

    for gw in [&strict, &lenient] {
        eventually(WAIT, || match readiness(gw, &named) {
            (status, d) if status == "200" && d["up"] == true => Ok(()),
            other => Err(format!("{other:?}")),
        });
    }
    assert!(grpc_health(&strict).contains("SERVING"));

    provider.stop();
    let stopped = Instant::now();
    let dependency = eventually(WAIT, || match readiness(&strict, &named) {
        (status, d) if status == "503" => Ok(d),
        other => Err(format!("{other:?}")),
    });
    println!(
        "readiness reaction to a stopped provider: {:?} (interval 1 s)",
        stopped.elapsed()
    );
    assert_eq!(dependency["up"], false);
    assert_eq!(dependency["required"], true);
    eventually(WAIT, || {
        let answer = grpc_health(&strict);
        answer.contains("NOT_SERVING").then_some(()).ok_or(answer)
    });
    // Not required: still ready, with the failure reported and its gauge at 0.
    let (status, dependency) = eventually(WAIT, || match readiness(&lenient, &named) {
        (status, d) if d["up"] == false => Ok((status, d)),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(status, "200");
    assert!(!dependency["detail"].as_str().unwrap().is_empty());
    let (_, metrics) = admin(&lenient, "/metrics");
    assert!(
        metrics.contains(&format!("auth_dependency_up{{dependency=\"{named}\"}} 0")),
        "{metrics}"
    );

    provider.restart().unwrap_or_else(|e| panic!("{e}"));
    eventually(WAIT, || match readiness(&strict, &named) {
        (status, d) if status == "200" && d["up"] == true => Ok(()),
        other => Err(format!("{other:?}")),
    });
    eventually(WAIT, || {
        let answer = grpc_health(&strict);
        (answer.contains("SERVING") && !answer.contains("NOT_SERVING"))
            .then_some(())
            .ok_or(answer)
    });

    // A CRL whose next update has passed: its CA's certificates would be refused.
    std::fs::write(&crl, ca.crl_pem(&[], (2025, 1, 1), (2026, 1, 1)).unwrap()).unwrap();
    let crl_name = format!("crl {}", crl.display());
    let dependency = eventually(WAIT, || match readiness(&strict, &crl_name) {
        (status, d) if status == "503" => Ok(d),
        other => Err(format!("{other:?}")),
    });
    assert!(
        dependency["detail"].as_str().unwrap().contains("expired"),
        "{dependency}"
    );
    let (status, _) = admin(&strict, "/livez");
    assert_eq!(status, "200", "alive, though not ready");
}

/// `preauth.py pool`: `count` psycopg logins as demo from `host`, 2 at a time.
fn pool(host: &TestHost, gw: &GatewayProcess, count: usize) {
    let out = gateway::preauth_client(host)
        .unwrap_or_else(|e| panic!("{e}"))
        .args([
            "pool",
            &gw.ip.to_string(),
            &gw.port.to_string(),
            "demo",
            &gw.demo_password,
            "2",
            &count.to_string(),
            "require",
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with(&format!("ok {count} failed 0")),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A short load run (logins, wrong passwords, a lockout, an identity provider outage)
/// scraped by Prometheus and drawn by `scripts/operator-picture.py`: the README's
/// picture comes from a run of the same (`AUTH_PICTURE_OUT=examples/media/operator-view.png`
/// keeps it).
#[test]
fn a_load_run_draws_the_operators_picture() {
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let mut provider = OidcProvider::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let issuer_ca = dir.path().join("issuer-ca.pem");
    std::fs::write(&issuer_ca, provider.ca_pem().unwrap()).unwrap();
    let rules = format!(
        "[[oauth_issuer]]\nissuer = \"{}\"\naudience = \"urn:api\"\nca_file = \"{}\"\n\n\
         [health]\ninterval = \"1s\"\nrequired = [\"wallet\", \"oauth_issuer\"]\n\n\
         [rate_limit]\nuser_failures = 2\nlockout = \"300s\"\n\n\
         [[rule]]\nname = \"scram\"\nmethod = \"scram\"\n",
        provider.issuer(),
        issuer_ca.display()
    );
    let gw = GatewayProcess::start_at(binary(), host.gateway.into(), "10s", &rules, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let prometheus = Prometheus::start(&[format!("127.0.0.1:{}", gw.admin_port)])
        .unwrap_or_else(|e| panic!("{e}"));
    let ready = |want: &str| {
        eventually(WAIT, || match admin(&gw, "/readyz") {
            (status, _) if status == want => Ok(()),
            other => Err(format!("{other:?}")),
        });
    };
    ready("200");
    let start = unix_now() - 2.0;
    // Each phase waits until Prometheus has scraped what it did, so every phase is in
    // the picture however fast this machine runs it.
    let mut logins = 0.0;
    let mut batch = |n: usize| {
        pool(&host, &gw, n);
        logins += n as f64;
        let want = logins;
        eventually(WAIT, || {
            let seen = prometheus
                .value("sum(auth_attempts_total{outcome=\"success\"})")
                .unwrap()
                .unwrap_or(0.0);
            (seen >= want)
                .then_some(())
                .ok_or_else(|| format!("{seen} of {want} logins scraped"))
        });
    };
    for _ in 0..3 {
        batch(20);
    }
    for _ in 0..3 {
        let refused = gateway::psql(
            host.command("psql"),
            &gw.conninfo("carol", "sslmode=require"),
            "wrong",
            "SELECT 1",
        );
        assert!(refused.is_err());
    }
    let (mut args, url) = gw.https("/whoami");
    args.extend(["-u".to_owned(), "dave:wrong".to_owned()]);
    for _ in 0..2 {
        assert_eq!(
            gateway::http_status(host.command("curl"), &args, &url),
            "401"
        );
    }
    provider.stop();
    ready("503");
    for _ in 0..2 {
        batch(15);
    }
    provider.restart().unwrap_or_else(|e| panic!("{e}"));
    ready("200");
    for _ in 0..2 {
        batch(15);
    }
    // Until Prometheus has scraped the end of the run.
    eventually(WAIT, || {
        let up = prometheus.value("auth_ready").unwrap().unwrap_or(0.0);
        (up == 1.0)
            .then_some(())
            .ok_or_else(|| format!("ready {up}"))
    });
    let end = unix_now() + 1.0;
    let picture = dir.path().join("operator-view.png");
    let python = auth_tests::venv_python("matplotlib").unwrap_or_else(|e| panic!("{e}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/operator-picture.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(prometheus.url())
        .arg(format!("{start:.0}"))
        .arg(format!("{end:.0}"))
        .arg(&picture)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{printed}");
    let png = std::fs::read(&picture).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{}",
        png.len()
    );
    if let Some(keep) = std::env::var_os("AUTH_PICTURE_OUT") {
        std::fs::copy(&picture, keep).unwrap();
    }
}

#[test]
fn the_admin_listener_off_loopback_speaks_only_tls() {
    let host = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let port = auth_tests::free_port().unwrap();
    let place = format!("{}:{port}", host.gateway);
    let rules = "[[rule]]\nname = \"scram\"\nmethod = \"scram\"\n";
    let gw = GatewayProcess::start_at(
        binary(),
        host.gateway.into(),
        "10s",
        rules,
        &[("GATEWAY_ADMIN_LISTEN".to_owned(), place.clone())],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let banner = gw.process.output();
    assert!(
        banner.contains(&format!("metrics:  curl -k https://{place}/metrics")),
        "{banner}"
    );
    // Verified against the gateway's certificate, which names localhost.
    let args = [
        "--cacert".to_owned(),
        gw.ca_file().display().to_string(),
        "--connect-to".to_owned(),
        format!("localhost:{port}:{}:{port}", host.gateway),
    ];
    let url = format!("https://localhost:{port}/livez");
    assert_eq!(
        gateway::http_status(host.command("curl"), &args, &url),
        "200"
    );
    let plain = format!("http://{place}/livez");
    assert_ne!(
        gateway::http_status(host.command("curl"), &[] as &[String], &plain),
        "200",
        "plain HTTP off loopback"
    );
}
