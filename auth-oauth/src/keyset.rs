//! A trusted issuer's keys: fetched from its JWKS (directly or through discovery), cached
//! for the TTL the issuer's Cache-Control gives, refetched on an unknown `kid` at most
//! once per interval however many requests ask (single flight), and kept when the issuer
//! is down (stale-if-error).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::key::{Alg, VerifyingKey, parse_jwks};

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An explicit JWKS URL.
    Jwks(String),
    /// OpenID / RFC 8414 discovery from the issuer URL; the document's `issuer` must equal
    /// the configured issuer exactly.
    Discovery,
    /// Keys configured locally (HMAC secrets, pinned public keys); never fetched.
    Static(Arc<Vec<Arc<VerifyingKey>>>),
}

/// The largest JWKS or discovery document read.
const MAX_DOCUMENT: usize = 1024 * 1024;

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
    fetched: Option<Instant>,
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

    fn fresh(&self) -> bool {
        self.ttl == Duration::MAX || self.fetched.is_some_and(|t| t.elapsed() < self.ttl)
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
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(3),
        }
    }
}

/// One issuer's key set.
pub(crate) struct KeySet {
    issuer: String,
    source: KeySource,
    settings: FetchSettings,
    http: reqwest::Client,
    keys: RwLock<Arc<Keys>>,
    /// Serializes fetches; holds when the last fetch for an unknown key id was attempted.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
    /// When the last background refresh of stale keys started.
    background: std::sync::Mutex<Option<Instant>>,
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
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let mut initial = Keys::default();
        if let KeySource::Static(keys) = &source {
            initial.fetched = Some(Instant::now());
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
            http,
            keys: RwLock::new(Arc::new(initial)),
            fetch: tokio::sync::Mutex::new(None),
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

    async fn get(&self, url: &str) -> Result<(Vec<u8>, reqwest::header::HeaderMap), String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if body.len() > MAX_DOCUMENT {
            return Err(format!("GET {url}: larger than 1 MiB"));
        }
        Ok((body.to_vec(), headers))
    }

    async fn download(&self) -> Result<Keys, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let jwks_url = match &self.source {
            KeySource::Static(_) => return Err("static keys are never fetched".into()),
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery => {
                let base = self.issuer.trim_end_matches('/');
                let (doc, _) = self
                    .get(&format!("{base}/.well-known/openid-configuration"))
                    .await?;
                let doc: serde_json::Value =
                    serde_json::from_slice(&doc).map_err(|e| format!("discovery document: {e}"))?;
                if doc.get("issuer").and_then(serde_json::Value::as_str)
                    != Some(self.issuer.as_str())
                {
                    return Err("the discovery document names another issuer".into());
                }
                doc.get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?
                    .to_owned()
            }
        };
        let (body, headers) = self.get(&jwks_url).await?;
        let (usable, refused) = parse_jwks(&body).map_err(|e| e.to_string())?;
        for e in refused {
            tracing::warn!(issuer = %self.issuer, error = %e, "a key in the JWKS was skipped");
        }
        let mut keys = Keys {
            fetched: Some(Instant::now()),
            ttl: max_age(&headers).unwrap_or(self.settings.ttl),
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
    async fn refresh(&self, seen: &Arc<Keys>, for_unknown_kid: bool) -> Result<(), String> {
        let mut last_kid_fetch = self.fetch.lock().await;
        if !Arc::ptr_eq(seen, &self.current()) {
            return Ok(()); // someone fetched while we waited: single flight
        }
        if for_unknown_kid {
            if last_kid_fetch.is_some_and(|t| t.elapsed() < self.settings.refetch_interval) {
                return Ok(());
            }
            *last_kid_fetch = Some(Instant::now());
        }
        let keys = self.download().await?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(())
    }

    /// Starts one refresh task unless one is running or one started within the
    /// refetch interval (a down issuer is retried at that pace, not per request).
    fn refresh_in_background(self: &Arc<Self>, seen: &Arc<Keys>) {
        {
            let mut last = self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < self.settings.refetch_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let me = Arc::clone(self);
        let seen = Arc::clone(seen);
        tokio::spawn(async move {
            if let Err(e) = me.refresh(&seen, false).await {
                tracing::warn!(issuer = %me.issuer, error = %e, "could not refresh the issuer's keys; the cached keys stay in use");
            }
        });
    }

    /// The key for `kid` (or the only key for `alg` when there is no kid).
    pub(crate) async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Alg,
    ) -> Result<Arc<VerifyingKey>, LookupError> {
        let mut keys = self.current();
        let mut fetch_error = None;
        if !keys.fresh() {
            if keys.fetched.is_some() {
                // Stale keys keep serving while one background task refreshes them, so a
                // slow or down issuer never stalls requests (stale-while-revalidate and
                // stale-if-error).
                self.refresh_in_background(&keys);
            } else {
                if let Err(e) = self.refresh(&keys, false).await {
                    tracing::warn!(issuer = %self.issuer, error = %e, "could not fetch the issuer's keys");
                    fetch_error = Some(e);
                }
                keys = self.current();
            }
        }
        if let Some(k) = keys.find(kid, alg) {
            return Ok(k);
        }
        if keys.fetched.is_none() {
            return Err(LookupError::Unavailable(
                fetch_error.unwrap_or_else(|| "never fetched".into()),
            ));
        }
        // An unknown kid may mean the issuer rotated its keys: look again, rate limited.
        if fetch_error.is_none()
            && let Err(e) = self.refresh(&keys, true).await
        {
            tracing::warn!(issuer = %self.issuer, error = %e, "could not refetch the issuer's keys");
        }
        self.current()
            .find(kid, alg)
            .ok_or_else(|| LookupError::UnknownKey(kid.unwrap_or("(none)").to_owned()))
    }
}
