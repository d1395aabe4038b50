//! OPS-2, CORE-8, CORE-15 across instances and front doors: two gateway processes count
//! on one Redis
//! (TLS with the harness's CA, an ACL user whose password the gateways read from their
//! wallet), with clients on network-namespace test hosts. Failures at either gateway lock
//! the user at both while the user's known network still logs in at both; 200 concurrent
//! wrong passwords split across both reach a verifier at most `user_failures` times; a
//! restarted gateway keeps the lock and the known network. Then the same lockout on a
//! three-node Redis Cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use auth_core::CredentialStore;
use auth_core::store::{Key, Precondition};
use auth_tests::eventually;
use auth_tests::gateway::{self, GatewayProcess};
use auth_tests::netns::TestHost;
use auth_tests::pki::run_ca;
use auth_tests::redis::{Redis, RedisCluster};

const RULES: &str = r#"
[[rule]]
name = "scram"
method = "scram"

[health]
interval = "1s"
required = ["wallet", "server_certificate", "redis"]
"#;

const REFUSED: &str = "too many failed attempts";
const WRONG: &str = "not-the-password";

/// Where the store is, as the gateways' `[redis]` section says it.
struct Store {
    urls: Vec<String>,
    user: String,
    password: String,
    ca_file: std::path::PathBuf,
}

impl Store {
    fn of(redis: &Redis) -> Self {
        Self {
            urls: vec![redis.url()],
            user: redis.acl_user().unwrap().to_owned(),
            password: redis.acl_password().unwrap().to_owned(),
            ca_file: redis.ca_file().unwrap().to_owned(),
        }
    }

    fn of_cluster(cluster: &RedisCluster) -> Self {
        Self {
            urls: cluster.urls(),
            user: cluster.acl_user().unwrap().to_owned(),
            password: cluster.acl_password().unwrap().to_owned(),
            ca_file: cluster.ca_file().unwrap().to_owned(),
        }
    }

    /// The `[redis]` section (the password is in the wallet, under `redis-gateway`).
    fn section(&self) -> String {
        let more: Vec<String> = self.urls[1..].iter().map(|u| format!("\"{u}\"")).collect();
        format!(
            "\n[redis]\nurl = \"{}\"\nmore_urls = [{}]\ncluster = {}\nuser = \"{}\"\n\
             password_wallet = \"redis-gateway\"\nca_file = \"{}\"\n\
             # a debug build on a loaded CI machine\nresponse_timeout = \"500ms\"\n",
            self.urls[0],
            more.join(", "),
            self.urls.len() > 1,
            self.user,
            self.ca_file.display(),
        )
    }
}

struct Setup {
    one: GatewayProcess,
    two: GatewayProcess,
    /// The data directory both copied, with the Redis password in its wallet.
    template: GatewayProcess,
    demo: String,
    /// Where demo logs in from.
    home: TestHost,
    /// Where a stranger guesses.
    stranger: TestHost,
    /// Where the flood comes from.
    flood: TestHost,
    store: Store,
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pg-gateway"))
}

async fn setup(store: Store) -> Setup {
    let home = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let stranger = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    let flood = TestHost::create().unwrap_or_else(|e| panic!("{e}"));
    // One data directory (users, passwords, the Redis password in the wallet) that both
    // instances copy, as instances behind a load balancer share their credentials.
    let mut template = GatewayProcess::start_at(binary(), home.gateway.into(), "10s", RULES, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    template.process.stop();
    template
        .wallet()
        .unwrap()
        .put(
            &Key::new("redis-gateway").unwrap(),
            store.password.as_bytes().to_vec().into(),
            Precondition::None,
        )
        .await
        .unwrap();
    let demo = template.demo_password.clone();
    let one = instance(&template, &home, &store);
    let two = instance(&template, &home, &store);
    Setup {
        one,
        two,
        template,
        demo,
        home,
        stranger,
        flood,
        store,
    }
}

/// A gateway on a copy of `template`, counting on `store`.
fn instance(template: &GatewayProcess, host: &TestHost, store: &Store) -> GatewayProcess {
    let section = store.section();
    GatewayProcess::start_on_copy_at(
        binary(),
        &template.data,
        host.gateway.into(),
        |text| text + &section,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// psql from `host` to `gw` as demo: Ok(current_user) or Err(stderr).
fn psql(host: &TestHost, gw: &GatewayProcess, password: &str) -> Result<String, String> {
    gateway::psql(
        host.command("psql"),
        &gw.conninfo("demo", "sslmode=disable"),
        password,
        "SELECT current_user",
    )
}

/// curl from `host`: the HTTP status of GET /whoami as demo with Basic credentials.
fn curl(host: &TestHost, gw: &GatewayProcess, password: &str) -> String {
    let (mut args, url) = gw.https("/whoami");
    args.extend(["-u".to_owned(), format!("demo:{password}")]);
    gateway::http_status(host.command("curl"), &args, &url)
}

/// A gRPC call from `host` as demo with Basic credentials: the status code's name.
fn grpc(host: &TestHost, gw: &GatewayProcess, password: &str) -> String {
    let out = gateway::preauth_client(host)
        .unwrap_or_else(|e| panic!("{e}"))
        .env("AUTH_TEST_CA", gw.ca_file())
        .args([
            "grpc-call",
            &gw.ip.to_string(),
            &gw.grpc_port.to_string(),
            "demo",
            password,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wrong(host: &TestHost, gw: &GatewayProcess) {
    let refused = psql(host, gw, WRONG).unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "a wrong password is refused as one, not locked yet: {refused}"
    );
}

fn locked(host: &TestHost, gw: &GatewayProcess, password: &str) {
    let refused = psql(host, gw, password).unwrap_err();
    assert!(refused.contains(REFUSED), "{refused}");
}

/// The lockout both instances share, and the known network that keeps working.
fn failures_at_either_gateway_lock_the_user_at_both(s: &Setup) {
    assert_eq!(psql(&s.home, &s.one, &s.demo).unwrap(), "demo");
    for _ in 0..3 {
        wrong(&s.stranger, &s.one);
    }
    for _ in 0..2 {
        wrong(&s.stranger, &s.two);
    }
    // 3 + 2 = 5 failures: the 3rd at gateway 2 finds the user locked, as does gateway 1.
    locked(&s.stranger, &s.two, WRONG);
    locked(&s.stranger, &s.one, &s.demo);
    // The lock is the engine's, so it holds on every front door of both gateways.
    for gw in [&s.one, &s.two] {
        assert_eq!(curl(&s.stranger, gw, &s.demo), "429", "HTTP Basic");
        assert_eq!(grpc(&s.stranger, gw, &s.demo), "RESOURCE_EXHAUSTED", "gRPC");
    }
    for gw in [&s.one, &s.two] {
        assert_eq!(
            psql(&s.home, gw, &s.demo).unwrap(),
            "demo",
            "the known network logs in at both gateways"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_share_lockouts_slots_and_known_networks() {
    let redis = Redis::start_secured(run_ca().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let s = setup(Store::of(&redis)).await;
    failures_at_either_gateway_lock_the_user_at_both(&s);

    // 200 wrong passwords at once, 100 at each gateway, from one address, for a user of
    // their own: at most 5 reach a verifier, counted from both audit logs.
    let floods: Vec<_> = [&s.one, &s.two]
        .into_iter()
        .map(|gw| {
            gateway::preauth_client(&s.flood)
                .unwrap()
                .args([
                    "pool",
                    &gw.ip.to_string(),
                    &gw.port.to_string(),
                    "carol",
                    WRONG,
                ])
                .args(["100", "100", "disable"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in floods {
        let out = child.wait_with_output().unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.contains("ok 0 failed 100"), "{printed}");
    }
    let verified: Vec<_> = [&s.one, &s.two]
        .into_iter()
        .flat_map(|gw| gw.audit("attempt_failed"))
        .filter(|e| e["username"] == "carol")
        .collect();
    let kinds: std::collections::BTreeMap<String, usize> = [&s.one, &s.two]
        .into_iter()
        .flat_map(|gw| gw.audit_events())
        .filter(|e| e["username"] == "carol")
        .fold(Default::default(), |mut m, e| {
            *m.entry(format!("{} {}", e["event"], e["outcome"]))
                .or_default() += 1;
            m
        });
    println!("200 wrong passwords for carol, across both gateways: {kinds:?}");
    assert!(
        (1..=5).contains(&verified.len()),
        "{} wrong passwords reached a verifier ({kinds:?}): {verified:#?}",
        verified.len()
    );

    // A restarted gateway (a new process on the same data) keeps the lock and the
    // known network: they are in Redis.
    let mut s = s;
    s.two.process.stop();
    let restarted = instance(&s.template, &s.home, &s.store);
    locked(&s.stranger, &restarted, &s.demo);
    assert_eq!(psql(&s.home, &restarted, &s.demo).unwrap(), "demo");

    // The store is a readiness dependency: up while it answers, and with it stopped the
    // gateway says it is not ready, and why.
    let redis_up = |gw: &GatewayProcess, up: bool| {
        eventually(Duration::from_secs(30), || {
            let (status, dependency) = readiness(gw, "redis");
            let want = if up { "200" } else { "503" };
            if status == want && dependency["up"] == up {
                Ok(dependency["detail"].as_str().unwrap_or_default().to_owned())
            } else {
                Err(format!("{status} {dependency}"))
            }
        })
    };
    assert!(redis_up(&restarted, true).starts_with("answers in"));
    let mut redis = redis;
    redis.stop();
    let detail = redis_up(&restarted, false);
    assert!(
        detail.contains("does not answer") && detail.contains("on_outage = refuse"),
        "{detail}"
    );
}

/// The `/readyz` status, and the dependency `name` from its body.
fn readiness(gw: &GatewayProcess, name: &str) -> (String, serde_json::Value) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/readyz", gw.admin_port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
    let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let dependency = body["dependencies"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == name).cloned())
        .unwrap_or_default();
    (status.to_owned(), dependency)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_the_lockout_on_a_three_node_redis_cluster() {
    let cluster = RedisCluster::start(Some(run_ca().unwrap())).unwrap_or_else(|e| panic!("{e}"));
    let s = setup(Store::of_cluster(&cluster)).await;
    failures_at_either_gateway_lock_the_user_at_both(&s);
}
