//! The contract every [`CredentialStore`] keeps.
//!
//! # Example
//!
//! The in-memory reference store on a clock the suite controls, so timestamps are
//! checked exactly (a store without an injectable clock uses [`StoreFixture::new`] alone):
//!
//! ```
//! use std::sync::Arc;
//! use auth_core::contract::store::{StoreFixture, run_all};
//! use auth_core::{ManualClock, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = ManualClock::at_fixed_epoch();
//! let store = MemoryStore::with_clock(Arc::new(clock.clone()));
//! // Panics with `contract property `NAME` broken: ...` on the first broken property.
//! run_all(&store, &StoreFixture::new("contract-").with_clock(clock)).await;
//! # }
//! ```

use std::time::Duration;

use futures::future::join_all;
use secrecy::ExposeSecret;

use super::{broken, check};
use crate::clock::{Clock, ManualClock};
use crate::store::{CredentialStore, Key, Precondition, StoreError};

/// What the suite needs to know about the store under test.
#[derive(Debug, Clone)]
pub struct StoreFixture {
    /// Every key the suite creates starts with this, so the suite can share a backend
    /// with other data (and other runs) without touching it.
    pub prefix: String,
    /// The clock the store reads, when the test controls it; then timestamps are checked
    /// exactly, otherwise only their order.
    pub clock: Option<ManualClock>,
    /// Writers in the compare-and-set property.
    pub writers: usize,
    /// Increments per writer in the compare-and-set property.
    pub increments: usize,
}

impl StoreFixture {
    /// A fixture with keys under `prefix`, no controlled clock, 8 writers x 5 increments.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            clock: None,
            writers: 8,
            increments: 5,
        }
    }

    /// Checks timestamps exactly against `clock`, which the store must read.
    #[must_use]
    pub fn with_clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    fn key(&self, property: &str, name: &str) -> Key {
        Key::new(format!("{}{property}/{name}", self.prefix))
            .unwrap_or_else(|e| broken(property, format!("fixture prefix makes a bad key: {e}")))
    }

    fn tick(&self) {
        if let Some(c) = &self.clock {
            c.advance(Duration::from_secs(1));
        }
    }
}

/// Runs every property.
pub async fn run_all(store: &dyn CredentialStore, fixture: &StoreFixture) {
    put_then_get_round_trips(store, fixture).await;
    missing_keys_read_as_none(store, fixture).await;
    values_are_binary_safe(store, fixture).await;
    preconditions_are_enforced(store, fixture).await;
    list_is_by_prefix_and_ordered(store, fixture).await;
    timestamps_move_as_documented(store, fixture).await;
    compare_and_set_loses_no_update(store, fixture).await;
    batch_operations_match_single_ones(store, fixture).await;
}

/// `read_many` returns what `get` would, in order, without counting as an access;
/// `put_many` applies each item's precondition on its own.
pub async fn batch_operations_match_single_ones(
    store: &dyn CredentialStore,
    fixture: &StoreFixture,
) {
    const P: &str = "batch_operations_match_single_ones";
    let keys: Vec<Key> = (0..3).map(|i| fixture.key(P, &format!("k{i}"))).collect();
    for k in &keys {
        clean(store, P, k).await;
    }
    let v0 = ok(
        P,
        "put",
        store
            .put(&keys[0], b"zero".to_vec().into(), Precondition::None)
            .await,
    );
    let results = ok(
        P,
        "put_many",
        store
            .put_many(vec![
                (
                    keys[0].clone(),
                    b"zero-2".to_vec().into(),
                    Precondition::Version(v0),
                ),
                (
                    keys[1].clone(),
                    b"one".to_vec().into(),
                    Precondition::Absent,
                ),
                (
                    keys[2].clone(),
                    b"two".to_vec().into(),
                    Precondition::Version(77),
                ),
            ])
            .await,
    );
    check(results.len() == 3, P, || {
        format!("{} results for 3 items", results.len())
    });
    check(results[0] == Ok(v0 + 1) && results[1].is_ok(), P, || {
        format!("put_many gave {results:?}")
    });
    check(
        results[2] == Err(StoreError::Conflict { current: None }),
        P,
        || format!("a failing precondition in a batch gave {:?}", results[2]),
    );
    let read = ok(P, "read_many", store.read_many(&keys).await);
    let values: Vec<Option<Vec<u8>>> = read
        .iter()
        .map(|r| r.as_ref().map(|r| r.value.expose_secret().to_vec()))
        .collect();
    check(
        values == vec![Some(b"zero-2".to_vec()), Some(b"one".to_vec()), None],
        P,
        || "read_many returned other values than were written".into(),
    );
    let metas = ok(
        P,
        "list",
        store.list(&format!("{}{P}/", fixture.prefix)).await,
    );
    check(metas.iter().all(|m| m.last_accessed.is_none()), P, || {
        "read_many counted as an access".into()
    });
    for k in &keys {
        clean(store, P, k).await;
    }
}

async fn clean(store: &dyn CredentialStore, property: &str, key: &Key) {
    if let Err(e) = store.delete(key, Precondition::None).await {
        broken(property, format!("cleanup delete of {key} failed: {e}"));
    }
}

fn ok<T>(property: &str, what: &str, r: Result<T, StoreError>) -> T {
    r.unwrap_or_else(|e| broken(property, format!("{what} failed: {e}")))
}

/// A created record reads back with its value, version 1 and `created == updated`, and
/// its `Debug` hides the value.
pub async fn put_then_get_round_trips(store: &dyn CredentialStore, fixture: &StoreFixture) {
    const P: &str = "put_then_get_round_trips";
    let key = fixture.key(P, "a");
    clean(store, P, &key).await;
    let v = ok(
        P,
        "create",
        store
            .put(&key, b"s3cret-value".to_vec().into(), Precondition::Absent)
            .await,
    );
    check(v >= 1, P, || format!("a new record has version {v}"));
    let rec =
        ok(P, "get", store.get(&key).await).unwrap_or_else(|| broken(P, "the record is missing"));
    check(rec.value.expose_secret() == b"s3cret-value", P, || {
        "value changed".into()
    });
    check(rec.meta.key == key, P, || {
        format!("meta.key is {}", rec.meta.key)
    });
    check(rec.meta.version == v, P, || {
        format!("meta.version is {}", rec.meta.version)
    });
    check(rec.meta.created == rec.meta.updated, P, || {
        "created != updated on a new record".into()
    });
    check(!format!("{rec:?}").contains("s3cret-value"), P, || {
        "Record Debug shows the value".into()
    });
    check(!format!("{store:?}").contains("s3cret-value"), P, || {
        "store Debug shows a value".into()
    });
    clean(store, P, &key).await;
}

/// Reading or deleting a key that was never written is not an error.
pub async fn missing_keys_read_as_none(store: &dyn CredentialStore, fixture: &StoreFixture) {
    const P: &str = "missing_keys_read_as_none";
    let key = fixture.key(P, "never-written");
    check(ok(P, "get", store.get(&key).await).is_none(), P, || {
        "got a record".into()
    });
    check(
        !ok(P, "delete", store.delete(&key, Precondition::None).await),
        P,
        || "delete of a missing key reported a deletion".into(),
    );
}

/// Every byte value, the empty value and a 64 KiB value survive unchanged.
pub async fn values_are_binary_safe(store: &dyn CredentialStore, fixture: &StoreFixture) {
    const P: &str = "values_are_binary_safe";
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..65_536u32).map(|i| (i * 31 % 251) as u8).collect();
    for (name, value) in [
        ("all-bytes", all_bytes),
        ("empty", Vec::new()),
        ("large", large),
    ] {
        let key = fixture.key(P, name);
        clean(store, P, &key).await;
        ok(
            P,
            "put",
            store
                .put(&key, value.clone().into(), Precondition::None)
                .await,
        );
        let rec = ok(P, "get", store.get(&key).await).unwrap_or_else(|| broken(P, "missing"));
        check(rec.value.expose_secret() == value.as_slice(), P, || {
            format!("value `{name}` changed")
        });
        clean(store, P, &key).await;
    }
}

/// `Absent` only creates, `Version(n)` only updates version `n`, versions grow by one per
/// write and are never reused after a delete, and a conflict reports the version found
/// and changes nothing.
pub async fn preconditions_are_enforced(store: &dyn CredentialStore, fixture: &StoreFixture) {
    const P: &str = "preconditions_are_enforced";
    let key = fixture.key(P, "k");
    clean(store, P, &key).await;
    let put = |value: &'static [u8], pre| store.put(&key, value.to_vec().into(), pre);

    let r = put(b"x", Precondition::Version(1)).await;
    check(r == Err(StoreError::Conflict { current: None }), P, || {
        format!("Version(1) on a missing key gave {r:?}")
    });
    let v1 = ok(P, "create", put(b"v1", Precondition::Absent).await);
    check(v1 >= 1, P, || "a created record has version 0".into());
    let r = put(b"x", Precondition::Absent).await;
    check(
        r == Err(StoreError::Conflict { current: Some(v1) }),
        P,
        || format!("Absent on an existing key gave {r:?}"),
    );
    let v2 = ok(P, "cas", put(b"v2", Precondition::Version(v1)).await);
    check(v2 == v1 + 1, P, || {
        format!("a write moved the version from {v1} to {v2}")
    });
    let r = put(b"stale", Precondition::Version(v1)).await;
    check(
        r == Err(StoreError::Conflict { current: Some(v2) }),
        P,
        || format!("a stale Version({v1}) gave {r:?}"),
    );
    let v3 = ok(P, "blind put", put(b"v3", Precondition::None).await);
    check(v3 == v2 + 1, P, || {
        format!("a write moved the version from {v2} to {v3}")
    });
    let rec = ok(P, "get", store.get(&key).await).unwrap_or_else(|| broken(P, "missing"));
    check(rec.value.expose_secret() == b"v3", P, || {
        "a refused write changed the value".into()
    });

    let r = store.delete(&key, Precondition::Version(v2)).await;
    check(
        r == Err(StoreError::Conflict { current: Some(v3) }),
        P,
        || format!("a stale delete gave {r:?}"),
    );
    check(
        ok(
            P,
            "delete",
            store.delete(&key, Precondition::Version(v3)).await,
        ),
        P,
        || "delete at the right version deleted nothing".into(),
    );
    check(ok(P, "get", store.get(&key).await).is_none(), P, || {
        "deleted record still there".into()
    });
    let again = ok(P, "create again", put(b"again", Precondition::Absent).await);
    check(again > v3, P, || {
        format!(
            "a re-created record has version {again} <= {v3}: a writer from before the delete could overwrite it"
        )
    });
    let r = put(b"aba", Precondition::Version(v3)).await;
    check(r.is_err(), P, || {
        "a version from before the delete matched the new record".into()
    });
    clean(store, P, &key).await;
}

/// `list(prefix)` returns exactly the records under the prefix, ordered by key, and does
/// not count as an access.
pub async fn list_is_by_prefix_and_ordered(store: &dyn CredentialStore, fixture: &StoreFixture) {
    const P: &str = "list_is_by_prefix_and_ordered";
    let inside = [
        fixture.key(P, "ns/b"),
        fixture.key(P, "ns/a"),
        fixture.key(P, "ns/c"),
    ];
    let outside = fixture.key(P, "ns-other/a");
    for k in inside.iter().chain([&outside]) {
        clean(store, P, k).await;
        ok(
            P,
            "put",
            store.put(k, b"v".to_vec().into(), Precondition::None).await,
        );
    }
    let prefix = format!("{}{P}/ns/", fixture.prefix);
    let listed = ok(P, "list", store.list(&prefix).await);
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    let mut expected: Vec<&str> = inside.iter().map(Key::as_str).collect();
    expected.sort_unstable();
    check(keys == expected, P, || {
        format!("list gave {keys:?}, expected {expected:?}")
    });
    check(listed.iter().all(|m| m.last_accessed.is_none()), P, || {
        "list counted as an access".into()
    });
    for k in inside.iter().chain([&outside]) {
        clean(store, P, k).await;
    }
    let after = ok(P, "list", store.list(&prefix).await);
    check(after.is_empty(), P, || {
        format!("deleted records still listed: {after:?}")
    });
}

/// `created` is set once, `updated` moves on every write, `last_accessed` on every `get`
/// and only then; with a controlled clock, to the exact time.
pub async fn timestamps_move_as_documented(store: &dyn CredentialStore, fixture: &StoreFixture) {
    const P: &str = "timestamps_move_as_documented";
    let key = fixture.key(P, "t");
    clean(store, P, &key).await;
    let t0 = fixture.clock.as_ref().map(Clock::now);
    ok(
        P,
        "create",
        store
            .put(&key, b"1".to_vec().into(), Precondition::Absent)
            .await,
    );
    let meta0 = ok(P, "list", store.list(key.as_str()).await)
        .into_iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| broken(P, "the record is not listed"));
    check(meta0.last_accessed.is_none(), P, || {
        "a new record was already accessed".into()
    });
    if let Some(t0) = t0 {
        check(meta0.created == t0 && meta0.updated == t0, P, || {
            format!(
                "created/updated {:?}/{:?} != clock {t0:?}",
                meta0.created, meta0.updated
            )
        });
    }

    fixture.tick();
    let t1 = fixture.clock.as_ref().map(Clock::now);
    let read = ok(P, "get", store.get(&key).await).unwrap_or_else(|| broken(P, "missing"));
    let accessed = read
        .meta
        .last_accessed
        .unwrap_or_else(|| broken(P, "get did not set last_accessed"));
    check(accessed >= meta0.updated, P, || {
        "last_accessed is before the write".into()
    });
    check(read.meta.updated == meta0.updated, P, || {
        "get moved updated".into()
    });
    if let Some(t1) = t1 {
        check(accessed == t1, P, || {
            format!("last_accessed {accessed:?} != clock {t1:?}")
        });
    }

    fixture.tick();
    let t2 = fixture.clock.as_ref().map(Clock::now);
    ok(
        P,
        "update",
        store
            .put(
                &key,
                b"2".to_vec().into(),
                Precondition::Version(meta0.version),
            )
            .await,
    );
    let meta2 = ok(P, "list", store.list(key.as_str()).await)
        .into_iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| broken(P, "the record is not listed"));
    check(meta2.created == meta0.created, P, || {
        "an update moved created".into()
    });
    check(meta2.updated >= meta0.updated, P, || {
        "updated moved backwards".into()
    });
    check(meta2.last_accessed == Some(accessed), P, || {
        "a write or list changed last_accessed".into()
    });
    if let Some(t2) = t2 {
        check(meta2.updated == t2, P, || {
            format!("updated {:?} != clock {t2:?}", meta2.updated)
        });
    }
    clean(store, P, &key).await;
}

/// Several writers doing read-modify-write with `Version` preconditions on one counter,
/// interleaved between their read and their write: every increment lands.
pub async fn compare_and_set_loses_no_update(store: &dyn CredentialStore, fixture: &StoreFixture) {
    const P: &str = "compare_and_set_loses_no_update";
    let key = fixture.key(P, "counter");
    clean(store, P, &key).await;
    let v0 = ok(
        P,
        "create",
        store
            .put(&key, b"0".to_vec().into(), Precondition::Absent)
            .await,
    );

    let writer = |_: usize| async {
        let mut conflicts = 0usize;
        for _ in 0..fixture.increments {
            loop {
                let rec =
                    ok(P, "get", store.get(&key).await).unwrap_or_else(|| broken(P, "missing"));
                let n: u64 = std::str::from_utf8(rec.value.expose_secret())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| broken(P, "the counter is not a number"));
                // Let the other writers read the same version before this one writes.
                tokio::task::yield_now().await;
                let next = (n + 1).to_string().into_bytes();
                match store
                    .put(&key, next.into(), Precondition::Version(rec.meta.version))
                    .await
                {
                    Ok(_) => break,
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(e) => broken(P, format!("put failed: {e}")),
                }
            }
        }
        conflicts
    };
    let conflicts: usize = join_all((0..fixture.writers).map(writer))
        .await
        .into_iter()
        .sum();
    let rec = ok(P, "get", store.get(&key).await).unwrap_or_else(|| broken(P, "missing"));
    let total = fixture.writers * fixture.increments;
    let value = std::str::from_utf8(rec.value.expose_secret())
        .unwrap_or("?")
        .to_owned();
    check(value == total.to_string(), P, || {
        format!("counter is {value} after {total} increments: updates were lost")
    });
    check(rec.meta.version == v0 + total as u64, P, || {
        format!(
            "version {} after {total} updates of a new record",
            rec.meta.version
        )
    });
    check(fixture.writers < 2 || conflicts > 0, P, || {
        "no writer ever conflicted: the suite did not interleave writers".into()
    });
    clean(store, P, &key).await;
}
