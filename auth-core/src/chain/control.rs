//! What a chain does with each link's outcome: Linux-PAM's control values.

use std::fmt;

use crate::outcome::OutcomeClass;

/// What the chain does with one link's outcome, as Linux-PAM's `[value=action]` syntax
/// defines the actions (`pam.conf(5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Contribute the outcome to the chain's result, if the chain has not already failed,
    /// and continue.
    Ok,
    /// As `Ok`, then stop at once if the chain's result is positive.
    Done,
    /// Mark the chain failed (the first failure sets the status) and continue.
    Bad,
    /// As `Bad`, then stop at once.
    Die,
    /// The outcome does not affect the result; continue.
    Ignore,
    /// Forget the result so far and continue.
    Reset,
}

impl Action {
    /// The lower-case PAM name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Done => "done",
            Self::Bad => "bad",
            Self::Die => "die",
            Self::Ignore => "ignore",
            Self::Reset => "reset",
        }
    }
}

/// A link's table from [`OutcomeClass`] to [`Action`].
///
/// The presets mean exactly what the Linux-PAM control keywords mean, with
/// [`OutcomeClass::NotApplicable`] playing PAM_IGNORE:
///
/// | preset | success | not applicable | rejected | account refused | unavailable |
/// |---|---|---|---|---|---|
/// | [`REQUIRED`](Self::REQUIRED) | ok | ignore | bad | bad | bad |
/// | [`REQUISITE`](Self::REQUISITE) | ok | ignore | die | die | die |
/// | [`SUFFICIENT`](Self::SUFFICIENT) | done | ignore | ignore | ignore | ignore |
/// | [`OPTIONAL`](Self::OPTIONAL) | ok | ignore | ignore | ignore | ignore |
/// | [`CONCLUSIVE`](Self::CONCLUSIVE) (the default) | done | ignore | die | die | die |
///
/// `CONCLUSIVE` is the fail-closed default for fallback chains such as OAuth -> Kerberos
/// -> wallet -> password: the first method that can judge the credential decides, so a
/// wrong secret never silently succeeds further down, and an unavailable backend denies
/// unless the link opts in with [`fallback_on_unavailable`](Self::fallback_on_unavailable).
///
/// # Example
///
/// An OAuth server that is down, in front of API keys: under `CONCLUSIVE` its outage
/// decides the attempt; with `fallback_on_unavailable()` the next link gets to judge.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use auth_core::secrecy::SecretString;
/// use auth_core::{
///     Action, ApiKeyAuthenticator, ApiKeyGrant, Attempt, Authenticator, Chain, ConnectionInfo,
///     Control, Credential, CredentialKind, MemoryStore, Outcome, OutcomeClass, Protocol,
/// };
///
/// /// A backend that cannot be reached.
/// #[derive(Debug)]
/// struct Down;
///
/// #[async_trait]
/// impl Authenticator for Down {
///     fn name(&self) -> &str {
///         "down"
///     }
///     fn accepts(&self) -> &[CredentialKind] {
///         &[CredentialKind::ApiKey]
///     }
///     async fn authenticate(&self, _: &mut Attempt) -> Outcome {
///         Outcome::unavailable("connection refused")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(Control::REQUIRED.action(OutcomeClass::Rejected), Action::Bad);
/// assert_eq!(Control::SUFFICIENT.action(OutcomeClass::Rejected), Action::Ignore);
/// assert_eq!(Control::CONCLUSIVE.action(OutcomeClass::Unavailable), Action::Die);
/// let fallback = Control::CONCLUSIVE.fallback_on_unavailable();
/// assert_eq!(fallback.action(OutcomeClass::Unavailable), Action::Ignore);
/// assert_eq!(fallback.action(OutcomeClass::Rejected), Action::Die); // still fail-closed
///
/// let store = Arc::new(MemoryStore::new());
/// let secret = SecretString::from("0123456789abcdef0123456789abcdef".to_owned());
/// let grant = ApiKeyGrant { principal: "ci".into(), roles: vec![], scopes: vec![] };
/// let key = ApiKeyAuthenticator::register(store.as_ref(), "ci", &secret, grant).await?;
/// let api_keys = Arc::new(ApiKeyAuthenticator::new(store));
/// let peer = "10.0.0.5:40000".parse()?;
/// let attempt = || {
///     let connection = ConnectionInfo::tcp(Protocol::Http, peer);
///     Attempt::new(connection, Credential::ApiKey(key.clone()))
/// };
///
/// let strict = Chain::builder().link(Arc::new(Down)).link(api_keys.clone()).build();
/// let outcome = strict.authenticate(&mut attempt()).await;
/// assert_eq!(outcome.class(), OutcomeClass::Unavailable);
///
/// let lenient = Chain::builder().link_with(Arc::new(Down), fallback).link(api_keys).build();
/// let outcome = lenient.authenticate(&mut attempt()).await;
/// assert_eq!(outcome.session().map(|s| s.principal()), Some("ci"));
/// # Ok(())
/// # }
/// ```
///
/// The table is read with [`action`](Self::action); only the presets,
/// [`fallback_on_unavailable`](Self::fallback_on_unavailable) and
/// [`dangerous`](Self::dangerous) change it, so no policy lets a wrong secret through by
/// accident.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Control {
    /// Action for [`OutcomeClass::Success`].
    success: Action,
    /// Action for [`OutcomeClass::NotApplicable`] (including links whose `supports()`
    /// declined).
    not_applicable: Action,
    /// Action for [`OutcomeClass::Rejected`].
    rejected: Action,
    /// Action for [`OutcomeClass::AccountRefused`].
    account_refused: Action,
    /// Action for [`OutcomeClass::Unavailable`] (including the link's timeout).
    unavailable: Action,
}

impl Control {
    /// PAM `required`: `[success=ok ignore=ignore default=bad]`.
    pub const REQUIRED: Control = Control::uniform(Action::Ok, Action::Bad);
    /// PAM `requisite`: `[success=ok ignore=ignore default=die]`.
    pub const REQUISITE: Control = Control::uniform(Action::Ok, Action::Die);
    /// PAM `sufficient`: `[success=done default=ignore]`.
    pub const SUFFICIENT: Control = Control::uniform(Action::Done, Action::Ignore);
    /// PAM `optional`: `[success=ok default=ignore]`.
    pub const OPTIONAL: Control = Control::uniform(Action::Ok, Action::Ignore);
    /// The default: `[success=done ignore=ignore default=die]`: the first link that
    /// applies decides.
    pub const CONCLUSIVE: Control = Control::uniform(Action::Done, Action::Die);

    const fn uniform(success: Action, failure: Action) -> Control {
        Control {
            success,
            not_applicable: Action::Ignore,
            rejected: failure,
            account_refused: failure,
            unavailable: failure,
        }
    }

    /// The action for `class`.
    pub fn action(&self, class: OutcomeClass) -> Action {
        match class {
            OutcomeClass::Success => self.success,
            OutcomeClass::NotApplicable => self.not_applicable,
            OutcomeClass::Rejected => self.rejected,
            OutcomeClass::AccountRefused => self.account_refused,
            OutcomeClass::Unavailable => self.unavailable,
        }
    }

    /// This table with `class` mapped to `action`: the raw PAM table, which can let a wrong
    /// secret through, so users reach it only through [`dangerous`](Self::dangerous).
    #[must_use]
    pub(crate) fn on(mut self, class: OutcomeClass, action: Action) -> Self {
        match class {
            OutcomeClass::Success => self.success = action,
            OutcomeClass::NotApplicable => self.not_applicable = action,
            OutcomeClass::Rejected => self.rejected = action,
            OutcomeClass::AccountRefused => self.account_refused = action,
            OutcomeClass::Unavailable => self.unavailable = action,
        }
        self
    }

    /// Lets an unavailable or timed-out backend fall through to the next link (the seed's
    /// "OAuth server down -> fall back to password").
    #[must_use]
    pub fn fallback_on_unavailable(self) -> Self {
        self.on(OutcomeClass::Unavailable, Action::Ignore)
    }

    /// The options of this control that can let an attacker in, as rustls keeps its own
    /// behind `dangerous()`: each says why on [`DangerousControl`].
    pub fn dangerous(self) -> DangerousControl {
        DangerousControl(self)
    }
}

/// The risky options of a [`Control`], reached through [`Control::dangerous`].
///
/// ```
/// use auth_core::{Action, Control, OutcomeClass};
///
/// // Two stores that hold different passwords for the same user: a wrong password in the
/// // first must not end the attempt.
/// assert_eq!(Control::CONCLUSIVE.action(OutcomeClass::Rejected), Action::Die);
/// let control = Control::CONCLUSIVE.dangerous().fallback_on_rejected();
/// assert_eq!(control.action(OutcomeClass::Rejected), Action::Ignore);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DangerousControl(Control);

impl DangerousControl {
    /// Lets a wrong secret fall through to the next link.
    ///
    /// Dangerous because every link after this one then gets a guess at the same secret:
    /// an attacker's wrong password is tried against each store, and a weaker later
    /// method (or a store with a stale password) decides. Only for policies that really
    /// mean it, such as two stores holding different passwords for the same user.
    #[must_use]
    pub fn fallback_on_rejected(self) -> Control {
        self.0.on(OutcomeClass::Rejected, Action::Ignore)
    }

    /// This table with `class` mapped to `action`, any action, as a PAM stack line would.
    ///
    /// Dangerous because a table can make a rejection or a refused account count as a
    /// pass (`rejected=ok`). The presets and
    /// [`fallback_on_unavailable`](Control::fallback_on_unavailable) cover what a policy
    /// normally needs.
    #[must_use]
    pub fn on(self, class: OutcomeClass, action: Action) -> Control {
        self.0.on(class, action)
    }
}

impl Default for Control {
    fn default() -> Self {
        Self::CONCLUSIVE
    }
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[success={} not_applicable={} rejected={} account_refused={} unavailable={}]",
            self.success.as_str(),
            self.not_applicable.as_str(),
            self.rejected.as_str(),
            self.account_refused.as_str(),
            self.unavailable.as_str()
        )
    }
}

/// PAM's "impression" of the stack so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impression {
    Undefined,
    Positive,
    Negative,
}

/// What the evaluator tells the chain after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// What a step did to the result, so the chain knows which outcome to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The outcome became the chain's status.
    SetStatus,
    /// The outcome was counted as a reason to fail but the status was already set.
    Counted,
    /// The outcome changed nothing.
    Nothing,
    /// The result so far was forgotten.
    Reset,
}

/// The Linux-PAM dispatch algorithm (`libpam/pam_dispatch.c`, `_pam_dispatch_aux`) over
/// outcome classes, free of I/O so every cell of the truth table can be tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evaluator {
    impression: Impression,
    status: Option<OutcomeClass>,
}

impl Evaluator {
    pub(crate) fn new() -> Self {
        Self {
            impression: Impression::Undefined,
            status: None,
        }
    }

    /// Applies one link's outcome under its action.
    pub(crate) fn step(&mut self, class: OutcomeClass, action: Action) -> (Flow, Effect) {
        match action {
            Action::Ok | Action::Done => {
                let mut effect = Effect::Nothing;
                let may_set = match self.impression {
                    Impression::Undefined => true,
                    Impression::Positive => self.status == Some(OutcomeClass::Success),
                    Impression::Negative => false,
                };
                // As in PAM's auth stack, even a PAM_IGNORE return (not applicable) becomes
                // the status under an explicit `ok`/`done`; the presets never ask for that.
                if may_set {
                    self.impression = Impression::Positive;
                    effect = if self.status == Some(class) && class == OutcomeClass::Success {
                        Effect::Nothing
                    } else {
                        Effect::SetStatus
                    };
                    self.status = Some(class);
                }
                if action == Action::Done && self.impression == Impression::Positive {
                    (Flow::Stop, effect)
                } else {
                    (Flow::Continue, effect)
                }
            }
            Action::Bad | Action::Die => {
                let effect = if self.impression == Impression::Negative {
                    Effect::Counted
                } else {
                    self.impression = Impression::Negative;
                    // PAM: a PAM_IGNORE under `bad` fails with PAM_MUST_FAIL_CODE; here
                    // the status stays a failure with nothing more specific.
                    self.status = Some(class);
                    Effect::SetStatus
                };
                let flow = if action == Action::Die {
                    Flow::Stop
                } else {
                    Flow::Continue
                };
                (flow, effect)
            }
            Action::Ignore => (Flow::Continue, Effect::Nothing),
            Action::Reset => {
                self.impression = Impression::Undefined;
                self.status = None;
                (Flow::Continue, Effect::Reset)
            }
        }
    }

    /// Whether the chain has been marked failed (a `bad`/`die`, or an `ok` that made a
    /// non-success the status).
    pub(crate) fn failed(&self) -> bool {
        match self.impression {
            Impression::Negative => true,
            Impression::Positive => self.status != Some(OutcomeClass::Success),
            Impression::Undefined => false,
        }
    }

    /// Whether the chain, ending now, succeeds: only a positive impression whose status is
    /// a success. An undefined impression (every link abstained) fails closed.
    pub(crate) fn succeeded(&self) -> bool {
        self.impression == Impression::Positive && self.status == Some(OutcomeClass::Success)
    }
}
