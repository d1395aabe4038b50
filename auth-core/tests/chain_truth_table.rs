//! Every cell of the chain's truth table (auth-core `chain` module docs), plus the
//! classic Linux-PAM stacking scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use auth_core::{Action, Chain, Control, OutcomeClass};
use common::{Scripted, decide, engine, remote_password};

use OutcomeClass::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Deny,
    NotRun,
}

/// One row of the documented table: (control name, control, outcome, action, continues,
/// result if last, result when a SUFFICIENT success follows).
type Row = (
    &'static str,
    Control,
    OutcomeClass,
    Action,
    bool,
    Verdict,
    Verdict,
);

fn table() -> Vec<Row> {
    use Verdict::*;
    let fallback = Control::CONCLUSIVE.fallback_on_unavailable();
    let mut rows: Vec<Row> = Vec::new();
    for (name, c, fail_action, fail_continues) in [
        ("REQUIRED", Control::REQUIRED, Action::Bad, true),
        ("REQUISITE", Control::REQUISITE, Action::Die, false),
        ("SUFFICIENT", Control::SUFFICIENT, Action::Ignore, true),
        ("OPTIONAL", Control::OPTIONAL, Action::Ignore, true),
        ("CONCLUSIVE", Control::CONCLUSIVE, Action::Die, false),
    ] {
        let (success_action, success_continues) = match name {
            "SUFFICIENT" | "CONCLUSIVE" => (Action::Done, false),
            _ => (Action::Ok, true),
        };
        rows.push((
            name,
            c,
            Success,
            success_action,
            success_continues,
            Allow,
            if success_continues { Allow } else { NotRun },
        ));
        rows.push((name, c, NotApplicable, Action::Ignore, true, Deny, Allow));
        for class in [Rejected, AccountRefused, Unavailable] {
            let then = match (fail_action, fail_continues) {
                (Action::Bad, _) => Deny,
                (_, false) => NotRun,
                _ => Allow,
            };
            rows.push((name, c, class, fail_action, fail_continues, Deny, then));
        }
    }
    rows.push((
        "CONCLUSIVE+fallback",
        fallback,
        Unavailable,
        Action::Ignore,
        true,
        Deny,
        Allow,
    ));
    rows
}

async fn run(links: &[(Arc<Scripted>, Control)]) -> Verdict {
    let mut b = Chain::builder();
    for (a, c) in links {
        b = b.link_with(a.clone(), *c);
    }
    let engine = engine(b.build())
        .audit(Arc::new(auth_core::audit::NullAuditSink))
        .build();
    let outcome = decide(&engine, &mut remote_password("alice", "pw")).await;
    if outcome.is_authenticated() {
        Verdict::Allow
    } else {
        Verdict::Deny
    }
}

#[tokio::test]
async fn every_cell_of_the_documented_truth_table() {
    let mut cells = 0;
    for (name, control, class, action, continues, if_last, then) in table() {
        let cell = format!("{name} / {class:?}");
        assert_eq!(control.action(class), action, "{cell}: action");
        cells += 1;

        // Alone: the result if it is the last link.
        let only = Scripted::new("only", class);
        assert_eq!(
            run(&[(only.clone(), control)]).await,
            if_last,
            "{cell}: result if last"
        );
        assert_eq!(only.calls(), 1, "{cell}: the link ran");
        cells += 1;

        // Followed by a sufficient success: whether the chain continues, and what the
        // following link can still change.
        let first = Scripted::new("first", class);
        let next = Scripted::new("next", Success);
        let result = run(&[(first, control), (next.clone(), Control::SUFFICIENT)]).await;
        assert_eq!(next.calls() == 1, continues, "{cell}: chain continues");
        cells += 1;
        let expected = if then == Verdict::NotRun {
            if_last
        } else {
            then
        };
        assert_eq!(result, expected, "{cell}: then");
        cells += 1;
    }
    // 5 presets x 5 outcomes + the fallback row, 4 checks each.
    assert_eq!(cells, 26 * 4);
    println!("truth table: {cells} cells checked");
}

#[tokio::test]
async fn pam_required_failure_is_not_rescued_by_a_later_sufficient_success() {
    let req = Scripted::new("req", Rejected);
    let suf = Scripted::new("suf", Success);
    let after = Scripted::new("after", Success);
    let r = run(&[
        (req, Control::REQUIRED),
        (suf.clone(), Control::SUFFICIENT),
        (after.clone(), Control::REQUIRED),
    ])
    .await;
    assert_eq!(r, Verdict::Deny);
    // Linux-PAM: `done` only ends the stack when the impression is positive, so the
    // remaining modules still run (and cannot rescue it).
    assert_eq!((suf.calls(), after.calls()), (1, 1));
}

#[tokio::test]
async fn pam_required_success_then_sufficient_success_stops_early() {
    let req = Scripted::new("req", Success);
    let suf = Scripted::new("suf", Success);
    let never = Scripted::new("never", Rejected);
    let r = run(&[
        (req, Control::REQUIRED),
        (suf, Control::SUFFICIENT),
        (never.clone(), Control::REQUIRED),
    ])
    .await;
    assert_eq!(r, Verdict::Allow);
    assert_eq!(never.calls(), 0);
}

#[tokio::test]
async fn pam_two_required_both_run_and_both_must_succeed() {
    for (a, b, expected) in [
        (Success, Success, Verdict::Allow),
        (Success, Rejected, Verdict::Deny),
        (Rejected, Success, Verdict::Deny),
        (Unavailable, Success, Verdict::Deny),
    ] {
        let first = Scripted::new("a", a);
        let second = Scripted::new("b", b);
        let r = run(&[
            (first, Control::REQUIRED),
            (second.clone(), Control::REQUIRED),
        ])
        .await;
        assert_eq!(r, expected, "{a:?} then {b:?}");
        assert_eq!(second.calls(), 1, "required does not stop the stack");
    }
}

#[tokio::test]
async fn pam_requisite_failure_stops_at_once() {
    let first = Scripted::new("a", Unavailable);
    let second = Scripted::new("b", Success);
    let r = run(&[
        (first, Control::REQUISITE),
        (second.clone(), Control::SUFFICIENT),
    ])
    .await;
    assert_eq!(r, Verdict::Deny);
    assert_eq!(second.calls(), 0);
}

#[tokio::test]
async fn optional_matters_only_when_alone() {
    assert_eq!(
        run(&[(Scripted::new("o", Rejected), Control::OPTIONAL)]).await,
        Verdict::Deny
    );
    let r = run(&[
        (Scripted::new("o", Rejected), Control::OPTIONAL),
        (Scripted::new("r", Success), Control::REQUIRED),
    ])
    .await;
    assert_eq!(r, Verdict::Allow);
}

#[tokio::test]
async fn all_abstain_fails_closed() {
    for control in [
        Control::REQUIRED,
        Control::REQUISITE,
        Control::SUFFICIENT,
        Control::OPTIONAL,
        Control::CONCLUSIVE,
    ] {
        let r = run(&[
            (Scripted::new("a", NotApplicable), control),
            (Scripted::new("b", NotApplicable), control),
        ])
        .await;
        assert_eq!(r, Verdict::Deny, "{control:?}");
    }
    assert_eq!(run(&[]).await, Verdict::Deny, "an empty chain denies");
}

#[tokio::test]
async fn ok_on_a_failure_makes_the_status_a_failure() {
    // [success=ok rejected=ok]: PAM's `ok` lets a failure code become the stack's status.
    let c = Control::REQUIRED.dangerous().on(Rejected, Action::Ok);
    let r = run(&[
        (Scripted::new("a", Rejected), c),
        (Scripted::new("b", Success), Control::REQUIRED),
    ])
    .await;
    assert_eq!(r, Verdict::Deny);
}

#[tokio::test]
async fn reset_forgets_earlier_failures() {
    let reset_on_success = Control::OPTIONAL.dangerous().on(Success, Action::Reset);
    let r = run(&[
        (Scripted::new("a", Rejected), Control::REQUIRED),
        (Scripted::new("b", Success), reset_on_success),
        (Scripted::new("c", Success), Control::REQUIRED),
    ])
    .await;
    assert_eq!(r, Verdict::Allow);
}
