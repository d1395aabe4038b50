//! A trusted issuer's keys: fetched from its JWKS (directly or through OpenID or RFC 8414
//! discovery), cached for the TTL the issuer's Cache-Control gives, refetched on an
//! unknown `kid` at most once per interval however many requests ask (single flight), and
//! kept when the issuer is down (stale-if-error) up to a maximum age. Time is the
//! caller's (the authenticator's injected clock).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use crate::http::{HttpClient, HttpError, MAX_DOCUMENT, check_url, redacted};
use crate::key::{Alg, VerifyingKey, parse_jwks};

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An explicit JWKS URL.
    Jwks(String),
    /// Discovery from the issuer URL: OpenID (`/.well-known/openid-configuration`), and
    /// when the issuer has none, RFC 8414 (`/.well-known/oauth-authorization-server`,
    /// before the issuer's path). The document's `issuer` must equal the configured issuer
    /// exactly, and its `jwks_uri` must be `https://` (or loopback).
    Discovery,
    /// Keys configured locally (HMAC secrets, pinned public keys); never fetched.
    Static(Arc<Vec<Arc<VerifyingKey>>>),
}

/// Why no key could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The issuer has no key with this id (after the allowed refetch).
    #[error("no key `{0}` for this issuer")]
    UnknownKey(String),
    /// The keys could not be fetched and none are cached.
    #[error("the issuer's keys could not be fetched: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    unkeyed: Vec<Arc<VerifyingKey>>,
    fetched: Option<SystemTime>,
    ttl: Duration,
}

impl Keys {
    fn find(&self, kid: Option<&str>, alg: Alg) -> Option<Arc<VerifyingKey>> {
        match kid {
            Some(k) => self.by_kid.get(k).cloned(),
            // Without a kid, only an unambiguous key for the algorithm will do.
            None => {
                let mut fitting = self
                    .by_kid
                    .values()
                    .chain(self.unkeyed.iter())
                    .filter(|key| key.alg == alg);
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }

    /// How long ago the keys were fetched (zero for a clock that went backwards).
    fn age(&self, now: SystemTime) -> Option<Duration> {
        self.fetched
            .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
    }

    /// Whether the keys were fetched, less than `max` ago.
    fn young_enough(&self, now: SystemTime, max: Duration) -> bool {
        self.age(now).is_some_and(|age| age < max)
    }

    fn fresh(&self, now: SystemTime) -> bool {
        self.ttl == Duration::MAX || self.age(now).is_some_and(|age| age < self.ttl)
    }
}

/// Fetching settings.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Key lifetime when the issuer sends no Cache-Control max-age.
    pub ttl: Duration,
    /// The least time between two fetches caused by unknown key ids.
    pub refetch_interval: Duration,
    /// Time limit of one HTTP request.
    pub timeout: Duration,
    /// The longest keys are used after they were fetched when the issuer cannot be
    /// reached to refresh them (stale-if-error has a limit: a key the issuer withdrew
    /// must not verify tokens forever because its JWKS is down).
    pub stale_max_age: Duration,
    /// The HTTP client (its CAs and client identity).
    pub http: HttpClient,
}

impl Default for FetchSettings {
    /// TTL 5 minutes, refetch at most every 30 s, 3 s per request, stale keys at most a
    /// day old, the platform's and the webpki roots.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(3),
            stale_max_age: Duration::from_secs(24 * 3600),
            http: HttpClient::default(),
        }
    }
}

/// What the fetches so far said, kept under the fetch lock.
#[derive(Default)]
struct FetchState {
    /// When the last fetch for an unknown key id was attempted.
    for_unknown_kid: Option<SystemTime>,
    /// The last fetch that failed, and why, until one succeeds.
    failed: Option<(SystemTime, String)>,
}

/// One issuer's key set.
pub(crate) struct KeySet {
    issuer: String,
    source: KeySource,
    settings: FetchSettings,
    keys: RwLock<Arc<Keys>>,
    /// Serializes fetches.
    fetch: tokio::sync::Mutex<FetchState>,
    fetches: AtomicU64,
    /// When the last background refresh of stale keys started.
    background: std::sync::Mutex<Option<SystemTime>>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("issuer", &self.issuer)
            .finish()
    }
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|d| {
        d.trim()
            .strip_prefix("max-age=")
            .and_then(|n| n.parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.clamp(60, 86_400)))
    })
}

impl KeySet {
    pub(crate) fn new(
        issuer: String,
        source: KeySource,
        settings: FetchSettings,
    ) -> Result<Self, HttpError> {
        match &source {
            KeySource::Jwks(url) => drop(check_url(url)?),
            KeySource::Discovery => drop(check_url(&issuer)?),
            KeySource::Static(_) => {}
        }
        let mut initial = Keys::default();
        if let KeySource::Static(keys) = &source {
            initial.fetched = Some(SystemTime::UNIX_EPOCH);
            initial.ttl = Duration::MAX;
            for k in keys.iter() {
                match &k.kid {
                    Some(kid) => {
                        initial.by_kid.insert(kid.clone(), k.clone());
                    }
                    None => initial.unkeyed.push(k.clone()),
                }
            }
        }
        Ok(Self {
            issuer,
            source,
            settings,
            keys: RwLock::new(Arc::new(initial)),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
            background: std::sync::Mutex::new(None),
        })
    }

    /// How many fetches were made.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn current(&self) -> Arc<Keys> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `GET url`, at most [`MAX_DOCUMENT`] bytes; `Ok(None)` for 404.
    async fn get(
        &self,
        url: &str,
    ) -> Result<Option<(Vec<u8>, reqwest::header::HeaderMap)>, String> {
        let answer = self
            .settings
            .http
            .get(url, self.settings.timeout, MAX_DOCUMENT)
            .await
            .map_err(|e| format!("GET {}: {e}", redacted(url)))?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(format!("GET {}: HTTP {}", redacted(url), answer.status));
        }
        Ok(Some((answer.body, answer.headers)))
    }

    /// The `jwks_uri` of the issuer's discovery document: OpenID's, else RFC 8414's.
    async fn discover(&self) -> Result<String, String> {
        let openid = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc = match self.get(&openid).await? {
            Some((doc, _)) => doc,
            None => {
                let rfc8414 = rfc8414_url(&self.issuer)?;
                self.get(&rfc8414)
                    .await?
                    .ok_or_else(|| format!("no discovery document at {openid} nor {rfc8414}"))?
                    .0
            }
        };
        let doc: serde_json::Value =
            serde_json::from_slice(&doc).map_err(|e| format!("discovery document: {e}"))?;
        if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(self.issuer.as_str()) {
            return Err("the discovery document names another issuer".into());
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or("the discovery document has no jwks_uri")?;
        // Fetching it goes through `HttpClient`, which refuses plain http off loopback.
        Ok(jwks_uri.to_owned())
    }

    async fn download(&self, now: SystemTime) -> Result<Keys, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = self.download_keys(now).await;
        // The issuer label is bounded by the configuration: only configured issuers fetch.
        metrics::counter!(
            crate::JWKS_FETCHES_METRIC,
            "issuer" => self.issuer.clone(),
            "result" => if fetched.is_ok() { "ok" } else { "failed" }
        )
        .increment(1);
        fetched
    }

    async fn download_keys(&self, now: SystemTime) -> Result<Keys, String> {
        let jwks_url = match &self.source {
            KeySource::Static(_) => return Err("static keys are never fetched".into()),
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery => self.discover().await?,
        };
        let (body, headers) = self
            .get(&jwks_url)
            .await?
            .ok_or_else(|| format!("GET {}: HTTP 404 Not Found", redacted(&jwks_url)))?;
        let (usable, refused) = parse_jwks(&body).map_err(|e| e.to_string())?;
        for e in refused {
            tracing::warn!(issuer = %self.issuer, error = %e, "a key in the JWKS was skipped");
        }
        let mut keys = Keys {
            fetched: Some(now),
            // Never fresher than the stale limit: keys must be refetched before then.
            ttl: max_age(&headers)
                .unwrap_or(self.settings.ttl)
                .min(self.settings.stale_max_age),
            ..Keys::default()
        };
        for k in usable {
            let k = Arc::new(k);
            match k.kid.clone() {
                Some(kid) => {
                    keys.by_kid.insert(kid, k);
                }
                None => keys.unkeyed.push(k),
            }
        }
        Ok(keys)
    }

    /// Fetches unless another caller just did, or (for an unknown kid) one was already
    /// made for an unknown kid within the refetch interval.
    async fn refresh(
        &self,
        seen: &Arc<Keys>,
        for_unknown_kid: bool,
        now: SystemTime,
    ) -> Result<(), String> {
        let mut state = self.fetch.lock().await;
        if !Arc::ptr_eq(seen, &self.current()) {
            return Ok(()); // someone fetched while we waited: single flight
        }
        // A fetch that just failed answers everyone who queued behind it, so a down
        // issuer costs one time limit per interval, not one per waiting request.
        if let Some((at, why)) = &state.failed
            && within(*at, now, self.settings.refetch_interval)
        {
            return Err(why.clone());
        }
        if for_unknown_kid {
            if state
                .for_unknown_kid
                .is_some_and(|t| within(t, now, self.settings.refetch_interval))
            {
                return Ok(());
            }
            state.for_unknown_kid = Some(now);
        }
        match self.download(now).await {
            Ok(keys) => {
                state.failed = None;
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                Ok(())
            }
            Err(why) => {
                state.failed = Some((now, why.clone()));
                Err(why)
            }
        }
    }

    /// Fetches the keys now, whatever the cache holds: a readiness check asks whether the
    /// issuer answers, which cached keys cannot tell. On success the fetched keys are
    /// the ones in use. Returns how many usable keys it published.
    pub(crate) async fn probe(&self, now: SystemTime) -> Result<usize, String> {
        if matches!(self.source, KeySource::Static(_)) {
            return Ok(self.current().by_kid.len() + self.current().unkeyed.len());
        }
        let mut state = self.fetch.lock().await;
        match self.download(now).await {
            Ok(keys) => {
                state.failed = None;
                let count = keys.by_kid.len() + keys.unkeyed.len();
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                Ok(count)
            }
            Err(why) => Err(why),
        }
    }

    /// How long ago the keys in use were fetched (`None`: never).
    pub(crate) fn age(&self, now: SystemTime) -> Option<Duration> {
        self.current().age(now)
    }

    /// Starts one refresh task unless one is running or one started within the
    /// refetch interval (a down issuer is retried at that pace, not per request).
    fn refresh_in_background(self: &Arc<Self>, seen: &Arc<Keys>, now: SystemTime) {
        {
            let mut last = self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| within(t, now, self.settings.refetch_interval)) {
                return;
            }
            *last = Some(now);
        }
        let me = Arc::clone(self);
        let seen = Arc::clone(seen);
        tokio::spawn(async move {
            if let Err(e) = me.refresh(&seen, false, now).await {
                tracing::warn!(issuer = %me.issuer, error = %e, "could not refresh the issuer's keys; the cached keys stay in use");
            }
        });
    }

    /// The key for `kid` (or the only key for `alg` when there is no kid) at `now`.
    pub(crate) async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Alg,
        now: SystemTime,
    ) -> Result<Arc<VerifyingKey>, LookupError> {
        let mut keys = self.current();
        let mut fetch_error = None;
        if !keys.fresh(now) {
            if keys.young_enough(now, self.settings.stale_max_age) {
                // Stale keys keep serving while one background task refreshes them, so a
                // slow or down issuer never stalls requests (stale-while-revalidate and
                // stale-if-error).
                self.refresh_in_background(&keys, now);
            } else {
                if let Err(e) = self.refresh(&keys, false, now).await {
                    tracing::warn!(issuer = %self.issuer, error = %e, "could not fetch the issuer's keys");
                    fetch_error = Some(e);
                }
                keys = self.current();
                if !keys.young_enough(now, self.settings.stale_max_age) {
                    let why = fetch_error.unwrap_or_else(|| "never fetched".into());
                    return Err(LookupError::Unavailable(match keys.fetched {
                        Some(_) => format!(
                            "the cached keys are older than the maximum age and a refresh failed: {why}"
                        ),
                        None => why,
                    }));
                }
            }
        }
        if let Some(k) = keys.find(kid, alg) {
            return Ok(k);
        }
        // An unknown kid may mean the issuer rotated its keys: look again, rate limited.
        if fetch_error.is_none()
            && let Err(e) = self.refresh(&keys, true, now).await
        {
            tracing::warn!(issuer = %self.issuer, error = %e, "could not refetch the issuer's keys");
        }
        self.current()
            .find(kid, alg)
            .ok_or_else(|| LookupError::UnknownKey(kid.unwrap_or("(none)").to_owned()))
    }
}

/// Whether `now` is less than `interval` after `then` (a clock gone backwards counts as
/// within).
fn within(then: SystemTime, now: SystemTime, interval: Duration) -> bool {
    now.duration_since(then).map_or(true, |d| d < interval)
}

/// RFC 8414 section 3.1: the well-known segment goes between the host and the issuer's
/// path (`https://as/tenant` -> `https://as/.well-known/oauth-authorization-server/tenant`).
fn rfc8414_url(issuer: &str) -> Result<String, String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("issuer `{issuer}`: {e}"))?;
    let path = url.path().trim_end_matches('/');
    let mut out = url.clone();
    out.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    out.set_query(None);
    Ok(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_puts_the_well_known_segment_before_the_path() {
        assert_eq!(
            rfc8414_url("https://as.example.com").unwrap(),
            "https://as.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            rfc8414_url("https://as.example.com/tenant/1/").unwrap(),
            "https://as.example.com/.well-known/oauth-authorization-server/tenant/1"
        );
    }
}
