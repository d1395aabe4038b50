//! CORE-13 end to end: an active, a disabled and an expired user on every method of every
//! front door of the real gateway (15 cells, 45 cases), with real clients: psql (SCRAM,
//! cleartext against a hash and against a wallet secret, a Kerberos ticket, a client
//! certificate), curl (Basic against a hash and a wallet secret, a bearer token, an API
//! key, Negotiate, a client certificate) and grpcurl (Basic, bearer, API key, a client
//! certificate). Accounts are disabled and expired while the gateway runs,
//! so a change takes effect at the next login without a restart. Each refusal looks like
//! any failed login to the client, and the audit log says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use std::time::{Duration, SystemTime};

use auth_core::account::{Directory, UserStatus};
use auth_core::{ApiKeyAuthenticator, ApiKeyGrant, CredentialStore, Key, Precondition};
use auth_examples::api::LocalIssuer;
use auth_password::{Argon2Settings, Hasher, PasswordPolicy, Users};
use auth_tests::gateway::{self, GatewayProcess, run_printed_grpcurl};
use auth_tests::kdc::{Kdc, REALM};
use auth_tests::pki::{ClientFiles, TestCa};
use secrecy::{ExposeSecret, SecretString};

const STATES: [&str; 3] = ["active", "disabled", "expired"];

/// What the client saw: logged in (as whom), or refused (with what).
#[derive(Debug)]
enum Seen {
    In(String),
    Refused(String),
}

struct Setup {
    kdc: Kdc,
    gw: GatewayProcess,
    /// A credential cache per Kerberos user.
    caches: Vec<(String, PathBuf)>,
    /// A bearer token and an API key per hash user.
    tokens: Vec<(String, String)>,
    keys: Vec<(String, String)>,
    /// A client certificate per certificate user, from `_pki`'s CA.
    certs: Vec<(String, ClientFiles)>,
    _pki: tempfile::TempDir,
}

fn password(user: &str) -> String {
    format!("{user}-long-password-2026")
}

async fn setup() -> Setup {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_service("postgres/localhost", None).unwrap();
    kdc.add_service("HTTP/localhost", None).unwrap();
    let pki = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Matrix Client CA", pki.path()).unwrap();
    let ca_file = ca.write_ca("client-ca.crt").unwrap();
    let rules = format!(
        "[[rule]]\nname = \"certificate\"\ntype = \"hostssl\"\nusers = [\"cactive\", \"cdisabled\", \"cexpired\"]\nmethod = \"cert\"\n\
         [[rule]]\nname = \"kerberos\"\nusers = [\"kactive\", \"kdisabled\", \"kexpired\"]\nmethod = \"gss\"\n\
         [[rule]]\nname = \"cleartext\"\ntype = \"hostssl\"\ndatabases = [\"clear\"]\nmethod = \"password\"\n\
         [[rule]]\nname = \"scram\"\nmethod = \"scram\"\n\
         [kerberos]\nkeytab = \"{}\"\nrealms = [\"{REALM}\"]\n\
         [client_certificates]\nca_file = \"{}\"\napi_login = true\n",
        kdc.keytab().display(),
        ca_file.display()
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_pg-gateway"));
    let gw = GatewayProcess::start_with_env(binary, "10s", &rules, &kdc.env())
        .unwrap_or_else(|e| panic!("{e}"));
    let wallet = gw.wallet().unwrap_or_else(|e| panic!("{e}"));
    let users = Users::new(wallet.clone());
    let hasher = Hasher::new(Argon2Settings::default()).unwrap();
    let issuer = LocalIssuer::load_or_create(&gw.data).unwrap();
    let (mut caches, mut tokens, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    let mut certs = Vec::new();
    for (serial, state) in (1..).zip(STATES) {
        let c = format!("c{state}");
        users.update(&c, |_| {}).await.unwrap();
        certs.push((c.clone(), ca.client(&c, &c, serial).unwrap()));

        let h = format!("h{state}");
        users
            .set_password(
                &hasher,
                &PasswordPolicy::default(),
                &h,
                &SecretString::from(password(&h)),
            )
            .await
            .unwrap();
        tokens.push((
            h.clone(),
            issuer.issue(&h, "read", Duration::from_secs(3600)).unwrap(),
        ));
        let grant = ApiKeyGrant {
            principal: h.clone(),
            roles: vec![],
            scopes: vec!["read".into()],
        };
        let secret = SecretString::from(format!("{h}-api-key-secret-0123456789abcdef"));
        let key =
            ApiKeyAuthenticator::register(wallet.as_ref(), &format!("key-{h}"), &secret, grant)
                .await
                .unwrap();
        keys.push((h.clone(), key.expose_secret().to_owned()));

        let w = format!("w{state}");
        wallet
            .put(
                &Key::new(format!("pgwire-user-{w}")).unwrap(),
                password(&w).into_bytes().into(),
                Precondition::None,
            )
            .await
            .unwrap();
        users.update(&w, |_| {}).await.unwrap();

        let k = format!("k{state}");
        kdc.add_user(&k, &password(&k)).unwrap();
        users.update(&k, |_| {}).await.unwrap();
        let cache = kdc.dir().join(format!("{k}.cc"));
        kdc.kinit(&k, &password(&k), Some(&cache), None).unwrap();
        caches.push((k, cache));
    }
    Setup {
        kdc,
        gw,
        caches,
        tokens,
        keys,
        certs,
        _pki: pki,
    }
}

/// Disables the `*disabled` users and expires the `*expired` ones, on the running gateway.
async fn disable_and_expire(s: &Setup) {
    let directory = Directory::new(s.gw.wallet().unwrap_or_else(|e| panic!("{e}")));
    let past = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    for prefix in ["h", "w", "k", "c"] {
        directory
            .modify(&format!("{prefix}disabled"), |r| {
                r.status = UserStatus::Disabled
            })
            .await
            .unwrap();
        directory
            .modify(&format!("{prefix}expired"), |r| r.valid_until = Some(past))
            .await
            .unwrap();
    }
}

/// `program` in the realm's environment, with `cache` as its credential cache if given.
fn in_realm(s: &Setup, program: &str, cache: Option<&Path>) -> std::process::Command {
    let mut cmd = s.kdc.command(program);
    if let Some(cache) = cache {
        cmd.env("KRB5CCNAME", format!("FILE:{}", cache.display()));
    }
    cmd
}

fn psql(s: &Setup, user: &str, extra: &str, cache: Option<&Path>) -> Seen {
    let host = if cache.is_some() {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let conninfo = format!(
        "host={host} port={} user={user} {extra} gssencmode=disable",
        s.gw.port
    );
    let cmd = in_realm(s, "psql", cache);
    match gateway::psql(cmd, &conninfo, &password(user), "SELECT current_user") {
        Ok(who) => Seen::In(who),
        Err(why) => Seen::Refused(why),
    }
}

fn curl(s: &Setup, args: &[&str], cache: Option<&Path>) -> Seen {
    let (tls, url) = s.gw.https("/whoami");
    let mut cmd = in_realm(s, "curl", cache);
    cmd.args(tls).args(args).arg(url);
    let (body, status) = gateway::curl_reply(cmd).unwrap_or_else(|e| panic!("{e}"));
    if status == "200" {
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        Seen::In(json["user"].as_str().unwrap_or_default().to_owned())
    } else {
        Seen::Refused(format!("HTTP {status}"))
    }
}

/// grpcurl with `flags` (`-H '...'`, or `-cert .. -key ..`) over verified TLS.
fn grpcurl(s: &Setup, flags: &str) -> Seen {
    let line = format!(
        "grpcurl -cacert {} {flags} 127.0.0.1:{} auth.demo.v1.Demo/WhoAmI",
        s.gw.ca_file().display(),
        s.gw.grpc_port
    );
    let run = run_printed_grpcurl(&line).unwrap_or_else(|e| panic!("{e}"));
    if run.code == Some(0) {
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        Seen::In(json["user"].as_str().unwrap_or_default().to_owned())
    } else {
        Seen::Refused(run.stderr.trim().to_owned())
    }
}

fn basic(user: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{}", password(user));
    format!(
        "-H 'authorization: Basic {}'",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn cert<'a>(s: &'a Setup, user: &str) -> &'a ClientFiles {
    &s.certs.iter().find(|(c, _)| c == user).unwrap().1
}

/// The refusals in the audit log whose detail says why `user` was refused in `state`.
fn refusals(s: &Setup, user: &str, state: &str) -> usize {
    let why = match state {
        "disabled" => format!("account `{user}` is disabled"),
        _ => format!("account `{user}` expired at"),
    };
    s.gw.audit("attempt_failed")
        .iter()
        .filter(|e| e["detail"].as_str().is_some_and(|d| d.contains(&why)))
        .count()
}

fn lookup<'a>(list: &'a [(String, String)], user: &str) -> &'a str {
    &list.iter().find(|(u, _)| u == user).unwrap().1
}

#[tokio::test]
async fn every_method_of_every_front_door_refuses_disabled_and_expired_accounts() {
    let s = setup().await;
    disable_and_expire(&s).await;
    type Cell = (&'static str, &'static str, fn(&Setup, &str) -> Seen);
    let cells: [Cell; 15] = [
        ("psql certificate", "c", |s, u| {
            let f = cert(s, u);
            let extra = format!(
                "dbname={u} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
                s.gw.ca_file().display(),
                f.cert.display(),
                f.key.display()
            );
            psql(s, u, &extra, None)
        }),
        ("HTTP certificate", "c", |s, u| {
            let f = cert(s, u);
            let (crt, key) = (f.cert.display().to_string(), f.key.display().to_string());
            curl(s, &["--cert", &crt, "--key", &key], None)
        }),
        ("gRPC certificate", "c", |s, u| {
            let f = cert(s, u);
            grpcurl(
                s,
                &format!("-cert {} -key {}", f.cert.display(), f.key.display()),
            )
        }),
        ("psql SCRAM", "h", |s, u| {
            psql(s, u, &format!("dbname={u} sslmode=disable"), None)
        }),
        ("psql cleartext, hash", "h", |s, u| {
            psql(s, u, "dbname=clear sslmode=require", None)
        }),
        ("psql cleartext, wallet", "w", |s, u| {
            psql(s, u, "dbname=clear sslmode=require", None)
        }),
        ("psql Kerberos", "k", |s, u| {
            let cache = s.caches.iter().find(|(k, _)| k == u).unwrap().1.clone();
            psql(s, u, &format!("dbname={u} sslmode=disable"), Some(&cache))
        }),
        ("HTTP Basic, hash", "h", |s, u| {
            curl(s, &["-u", &format!("{u}:{}", password(u))], None)
        }),
        ("HTTP Basic, wallet", "w", |s, u| {
            curl(s, &["-u", &format!("{u}:{}", password(u))], None)
        }),
        ("HTTP bearer", "h", |s, u| {
            curl(
                s,
                &[
                    "-H",
                    &format!("Authorization: Bearer {}", lookup(&s.tokens, u)),
                ],
                None,
            )
        }),
        ("HTTP API key", "h", |s, u| {
            curl(
                s,
                &["-H", &format!("x-api-key: {}", lookup(&s.keys, u))],
                None,
            )
        }),
        ("HTTP Negotiate", "k", |s, u| {
            let cache = s.caches.iter().find(|(k, _)| k == u).unwrap().1.clone();
            curl(s, &["--negotiate", "-u", ":"], Some(&cache))
        }),
        ("gRPC Basic", "h", |s, u| grpcurl(s, &basic(u))),
        ("gRPC bearer", "h", |s, u| {
            grpcurl(
                s,
                &format!("-H 'authorization: Bearer {}'", lookup(&s.tokens, u)),
            )
        }),
        ("gRPC API key", "h", |s, u| {
            grpcurl(s, &format!("-H 'x-api-key: {}'", lookup(&s.keys, u)))
        }),
    ];
    let mut failures = Vec::new();
    let mut cases = 0;
    for (cell, prefix, run) in cells {
        for state in STATES {
            cases += 1;
            let user = format!("{prefix}{state}");
            let before = refusals(&s, &user, state);
            let got = run(&s, &user);
            let right = match (&got, state) {
                (Seen::In(who), "active") => *who == user,
                (Seen::Refused(what), "disabled" | "expired") => {
                    // Generic to the client: nothing says disabled or expired.
                    let what = what.replace(&user, "<user>");
                    let generic = !what.contains("disabled") && !what.contains("expired");
                    generic && refusals(&s, &user, state) == before + 1
                }
                _ => false,
            };
            if !right {
                let audited: Vec<String> =
                    s.gw.audit("attempt_failed")
                        .iter()
                        .filter(|e| e["detail"].as_str().is_some_and(|d| d.contains(&user)))
                        .map(|e| e["detail"].to_string())
                        .collect();
                failures.push(format!("{cell} / {user}: {got:?}, audited {audited:?}"));
            }
        }
    }
    assert_eq!(cases, 45);
    // The session stage on the HTTP and gRPC front doors: each request that got in is a
    // session, audited from OK to the response.
    let ended = s.gw.audit("session_ended");
    for (user, protocol) in [
        ("hactive", "http"),
        ("wactive", "http"),
        ("kactive", "http"),
        ("hactive", "grpc"),
    ] {
        assert!(
            ended
                .iter()
                .any(|e| e["username"] == user && e["protocol"] == protocol),
            "no {protocol} session_ended for {user}: {ended:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of 45 cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
