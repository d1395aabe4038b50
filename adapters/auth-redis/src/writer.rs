//! One task sends every step of one client (the limiter, the revocations) to the store,
//! in the order the steps were made: an ending sent without awaiting its answer is
//! applied before any later admission of this process. Every step is a call of the
//! client's one Lua script. Whatever has queued while a batch was out goes as the next pipeline,
//! so many logins at once cost few round trips.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use redis::{Cmd, Value};
use tokio::sync::{mpsc, oneshot};

use crate::connect::Store;
use crate::outage::Health;

/// Why a step got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoAnswer {
    /// The store is down (or was, when the step was sent).
    Down,
    /// The store answered this step with an error.
    Error(String),
}

struct Request {
    cmd: Cmd,
    reply: Option<oneshot::Sender<Result<Value, NoAnswer>>>,
}

/// Round trips counted by kind (for the benchmark and the closing note).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) awaited: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) pipelines: AtomicU64,
}

/// The sending half; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Request>,
    pub(crate) health: Arc<Health>,
    pub(crate) counts: Arc<Counts>,
}

/// The most steps one pipeline carries.
const BATCH: usize = 512;
/// The most pipelines out at once.
const IN_FLIGHT: usize = 8;

impl Writer {
    /// Opens the store `options` names and starts `component`'s task on it, reporting its
    /// outages to `audit`; every step calls `script`.
    pub(crate) fn open(
        options: &crate::settings::RedisOptions,
        component: crate::outage::Component,
        audit: Option<Arc<dyn auth_core::audit::AuditSink>>,
        clock: auth_core::clock::SharedClock,
        script: &'static str,
    ) -> Result<Self, crate::limiter::StartError> {
        let o = options;
        let store = Store::open(o).map_err(|e| crate::limiter::StartError(e.to_string()))?;
        let name = o
            .endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let health = Arc::new(Health::new(component, o.on_outage, name, audit, clock));
        Ok(Self::start(
            store,
            health,
            Timeouts {
                connect: o.connect_timeout,
                response: o.response_timeout,
                retry: o.retry_interval,
                report: o.report_interval,
            },
            script,
        ))
    }

    /// Starts the task on the current runtime; every step calls `script`.
    pub(crate) fn start(
        store: Store,
        health: Arc<Health>,
        timeouts: Timeouts,
        script: &'static str,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let counts = Arc::new(Counts::default());
        let task = Task {
            store: Arc::new(store),
            health: health.clone(),
            counts: counts.clone(),
            sha: redis_sha1(script),
            script,
            timeouts,
            probing: Arc::new(AtomicBool::new(false)),
            connected: AtomicBool::new(false),
        };
        tokio::spawn(task.run(rx));
        Self { tx, health, counts }
    }

    /// Sends `cmd` and awaits its answer (at most the response timeout while the store
    /// answers; at once while it is down).
    pub(crate) async fn call(&self, cmd: Cmd) -> Result<Value, NoAnswer> {
        let (reply, answer) = oneshot::channel();
        self.counts.awaited.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Request {
                cmd,
                reply: Some(reply),
            })
            .map_err(|_| NoAnswer::Down)?;
        answer.await.unwrap_or(Err(NoAnswer::Down))
    }

    /// Sends `cmd` without awaiting it; works without a runtime (from a `Drop`).
    pub(crate) fn send(&self, cmd: Cmd) {
        self.counts.sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Request { cmd, reply: None });
    }
}

struct Task {
    store: Arc<Store>,
    health: Arc<Health>,
    counts: Arc<Counts>,
    sha: String,
    /// The Lua source every step calls.
    script: &'static str,
    timeouts: Timeouts,
    probing: Arc<AtomicBool>,
    /// A pipeline has been answered: the connection is made.
    connected: AtomicBool,
}

/// The writer's timeouts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// The first batch connects (a TLS handshake, the ACL login): it gets this long.
    pub(crate) connect: Duration,
    /// Every later batch.
    pub(crate) response: Duration,
    /// How often a down store is tried.
    pub(crate) retry: Duration,
    /// How often an outage is audited.
    pub(crate) report: Duration,
}

impl Task {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let task = Arc::new(self);
        // Several pipelines may be out at once: each is handed to the connection (which
        // writes in that order) before the next is made, so order holds while the store
        // works on one and this process on the next.
        let mut out = FuturesOrdered::new();
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                biased;
                Some(()) = out.next(), if !out.is_empty() => {}
                n = rx.recv_many(&mut batch, BATCH), if out.len() < IN_FLIGHT => {
                    if n == 0 {
                        break;
                    }
                    if !task.health.is_up() {
                        // Fire-and-forget steps are lost; the leases give their counts back.
                        answer_all(&mut batch, || Err(NoAnswer::Down));
                        continue;
                    }
                    task.counts.pipelines.fetch_add(1, Ordering::Relaxed);
                    let this = std::mem::replace(&mut batch, Vec::with_capacity(64));
                    out.push_back(task.clone().pipeline(this));
                }
            }
        }
        while out.next().await.is_some() {}
    }

    /// One pipeline, to its answers.
    async fn pipeline(self: Arc<Self>, mut batch: Vec<Request>) {
        let limit = if self.connected.load(Ordering::Acquire) {
            self.timeouts.response
        } else {
            self.timeouts.connect
        };
        let started = tokio::time::Instant::now();
        let sent = match tokio::time::timeout(limit, self.send(&batch)).await {
            // A connection found dropped (a restarted or failed-over server): once more
            // within what is left of the limit, while the manager reconnects, so the
            // first logins after a restart are not refused for a connection that was
            // already dead. A step the old server ran just before the connection broke
            // runs twice: at most one extra counted failure, at that instant.
            Ok(Err(e)) if e.is_connection_dropped() || e.is_io_error() => {
                let left = limit.saturating_sub(started.elapsed());
                tokio::time::timeout(left, self.send(&batch)).await
            }
            other => other,
        };
        match sent {
            Ok(Ok(values)) => {
                self.connected.store(true, Ordering::Release);
                for (request, value) in batch.drain(..).zip(values) {
                    if let Some(reply) = request.reply {
                        let _ = reply.send(match value {
                            Value::ServerError(e) => Err(NoAnswer::Error(e.to_string())),
                            v => Ok(v),
                        });
                    }
                }
            }
            Ok(Err(e)) => self.down(&mut batch, &e.to_string()),
            Err(_) => self.down(&mut batch, &format!("no answer within {limit:?}")),
        }
    }

    /// Sends the batch as one pipeline of EVALSHAs; steps the store had no script for
    /// (a restarted or failed-over server) go again with the source, once.
    async fn send(&self, batch: &[Request]) -> redis::RedisResult<Vec<Value>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for r in batch {
            pipe.add_command(with_script(&r.cmd, Script::Sha(&self.sha)));
        }
        let mut values = self.store.query(&pipe).await?;
        let missing: Vec<usize> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v, Value::ServerError(e) if e.code() == "NOSCRIPT"))
            .map(|(i, _)| i)
            .collect();
        if !missing.is_empty() {
            let mut again = redis::pipe();
            again.ignore_errors();
            for &i in &missing {
                again.add_command(with_script(&batch[i].cmd, Script::Source(self.script)));
            }
            for (i, v) in missing.into_iter().zip(self.store.query(&again).await?) {
                values[i] = v;
            }
        }
        Ok(values)
    }

    /// The store failed: this batch gets no answer, and a probe tries it again every
    /// retry interval until it answers.
    fn down(&self, batch: &mut Vec<Request>, why: &str) {
        answer_all(batch, || Err(NoAnswer::Down));
        self.health.went_down(why);
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let probe = Probe {
            store: self.store.clone(),
            health: self.health.clone(),
            probing: self.probing.clone(),
            timeout: self.timeouts.connect.max(self.timeouts.response),
            retry_interval: self.timeouts.retry,
            report_interval: self.timeouts.report,
        };
        tokio::spawn(probe.run());
    }
}

fn answer_all(batch: &mut Vec<Request>, answer: impl Fn() -> Result<Value, NoAnswer>) {
    for request in batch.drain(..) {
        if let Some(reply) = request.reply {
            let _ = reply.send(answer());
        }
    }
}

/// Tries a down store every retry interval, reports the outage every report interval,
/// and ends when the store answers.
struct Probe {
    store: Arc<Store>,
    health: Arc<Health>,
    probing: Arc<AtomicBool>,
    timeout: Duration,
    retry_interval: Duration,
    report_interval: Duration,
}

impl Probe {
    async fn run(self) {
        let mut report = tokio::time::interval(self.report_interval);
        report.tick().await;
        let mut retry = tokio::time::interval(self.retry_interval);
        loop {
            tokio::select! {
                _ = retry.tick() => {
                    let mut ping = redis::pipe();
                    ping.cmd("PING");
                    if let Ok(Ok(_)) = tokio::time::timeout(self.timeout, self.store.query(&ping)).await {
                        self.health.came_back();
                        self.probing.store(false, Ordering::Release);
                        return;
                    }
                }
                _ = report.tick() => self.health.report(),
            }
        }
    }
}

enum Script<'a> {
    Sha(&'a str),
    Source(&'static str),
}

/// `cmd` holds the step's key count, keys and arguments (a nameless `Cmd::new()`); this
/// puts the script in front.
fn with_script(cmd: &Cmd, script: Script<'_>) -> Cmd {
    let mut out = match script {
        Script::Sha(sha) => {
            let mut c = redis::cmd("EVALSHA");
            c.arg(sha);
            c
        }
        Script::Source(source) => {
            let mut c = redis::cmd("EVAL");
            c.arg(source);
            c
        }
    };
    for arg in cmd.args_iter() {
        if let redis::Arg::Simple(bytes) = arg {
            out.arg(bytes);
        }
    }
    out
}

/// The SHA-1 Redis names a script by.
fn redis_sha1(source: &str) -> String {
    redis::Script::new(source).get_hash().to_owned()
}
