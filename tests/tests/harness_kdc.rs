//! The throwaway realm works: principals, keytabs, tickets, stop and restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_tests::kdc::{Kdc, REALM};

#[test]
fn a_user_gets_a_ticket_from_the_throwaway_realm() {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("alice", "alice-password").unwrap();
    kdc.add_service("postgres/localhost", None).unwrap();
    assert!(kdc.keytab().is_file(), "ktadd wrote the keytab");

    kdc.kinit("alice", "alice-password", None, None).unwrap();
    let list = kdc.klist().unwrap();
    assert!(list.contains(&format!("alice@{REALM}")), "{list}");
    assert!(list.contains(&format!("krbtgt/{REALM}@{REALM}")), "{list}");
}

#[test]
fn a_wrong_password_is_refused_by_the_kdc() {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("bob", "right-password").unwrap();
    let err = kdc.kinit("bob", "wrong-password", None, None).unwrap_err();
    assert!(err.to_string().contains("kinit"), "{err}");
}

#[test]
fn a_stopped_kdc_refuses_and_a_restarted_one_serves_again() {
    let mut kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_user("carol", "carol-password").unwrap();
    let pid = kdc.pid().unwrap();
    kdc.stop();
    assert!(kdc.pid().is_none());
    assert!(!auth_tests::process_alive(pid), "the KDC process is gone");
    let err = kdc
        .kinit("carol", "carol-password", None, None)
        .unwrap_err();
    assert!(err.to_string().contains("Cannot contact any KDC"), "{err}");
    kdc.restart().unwrap();
    kdc.kinit("carol", "carol-password", None, None).unwrap();
}

#[test]
fn rekeying_a_service_rotates_its_kvno() {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("{e}"));
    kdc.add_service("HTTP/localhost", None).unwrap();
    kdc.add_service("HTTP/localhost", None).unwrap();
    let out = kdc
        .command("klist")
        .args(["-k"])
        .arg(kdc.keytab())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("   2 HTTP/localhost@TEST.REALM"), "{text}");
    assert!(text.contains("   3 HTTP/localhost@TEST.REALM"), "{text}");
}
