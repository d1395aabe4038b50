//! A bounded pool of hashing threads, so password hashing never blocks the async runtime
//! and memory stays bounded however many logins arrive at once.
//!
//! Each worker owns one argon2 working area ([`Scratch`]) allocated at start, so `n`
//! workers use `n x 19 MiB` at most (with the default parameters) instead of one fresh
//! allocation per login. Requests queue in FIFO order; waiting in the queue counts against
//! the caller's timeout, and a request whose caller has given up is dropped unrun.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crate::hash::{Argon2Settings, Scratch};

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// The pool's threads are gone (only after a worker panicked in every thread, or at
/// shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the password hashing pool is not running")]
pub struct PoolClosed;

/// A fixed set of hashing threads with reusable argon2 memory.
#[derive(Debug, Clone)]
pub struct HashingPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: Mutex<mpsc::Sender<Job>>,
    workers: usize,
    queued: Arc<AtomicUsize>,
}

impl HashingPool {
    /// A pool of `workers` threads (at least one), each with argon2 memory for `settings`.
    pub fn new(workers: usize, settings: &Argon2Settings) -> Self {
        let workers = workers.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..workers {
            let receiver = receiver.clone();
            let queued = queued.clone();
            let settings = *settings;
            let spawned = thread::Builder::new()
                .name(format!("auth-hash-{i}"))
                .spawn(move || worker(&receiver, &queued, &settings));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            inner: Arc::new(Inner {
                sender: Mutex::new(sender),
                workers,
                queued,
            }),
        }
    }

    /// A pool with one thread per available core.
    pub fn per_core(settings: &Argon2Settings) -> Self {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores, settings)
    }

    /// The number of threads.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// Requests waiting for a thread.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Runs `f` on a hashing thread and returns its result. If the returned future is
    /// dropped (the caller timed out) before a thread takes the request, it never runs.
    pub async fn run<R, F>(&self, f: F) -> Result<R, PoolClosed>
    where
        R: Send + 'static,
        F: FnOnce(&mut Scratch) -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f(scratch));
        });
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        let sent = self
            .inner
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job);
        if sent.is_err() {
            self.inner.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(PoolClosed);
        }
        rx.await.map_err(|_| PoolClosed)
    }
}

fn worker(receiver: &Mutex<mpsc::Receiver<Job>>, queued: &AtomicUsize, settings: &Argon2Settings) {
    let mut scratch = Scratch::for_settings(settings);
    loop {
        let job = {
            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            receiver.recv()
        };
        let Ok(job) = job else { return };
        queued.fetch_sub(1, Ordering::Relaxed);
        // A panicking job loses its own answer (the caller sees PoolClosed), not the
        // thread.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut scratch))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn small() -> Argon2Settings {
        Argon2Settings {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[tokio::test]
    async fn runs_jobs_on_named_threads() {
        let pool = HashingPool::new(2, &small());
        let name = pool
            .run(|_| thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("auth-hash-"));
        assert_eq!(pool.workers(), 2);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_worker_survives() {
        let pool = HashingPool::new(1, &small());
        let r: Result<(), _> = pool.run(|_| panic!("boom")).await;
        assert_eq!(r, Err(PoolClosed));
        assert_eq!(pool.run(|_| 7).await, Ok(7));
    }

    #[tokio::test]
    async fn abandoned_requests_are_not_run() {
        let pool = HashingPool::new(1, &small());
        let (block_tx, block_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        // Occupy the only worker until told to finish.
        let p = pool.clone();
        let busy = tokio::spawn(async move {
            p.run(move |_| {
                let _ = started_tx.send(());
                let _ = block_rx.recv();
            })
            .await
        });
        started_rx.await.unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        // This caller gives up before the worker is free.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(10),
            pool.run(move |_| ran2.fetch_add(1, Ordering::SeqCst)),
        )
        .await;
        assert!(abandoned.is_err());
        assert_eq!(pool.queued(), 1);
        block_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // A later job runs after the abandoned one was skipped.
        assert_eq!(pool.run(|_| 1).await, Ok(1));
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the abandoned job never ran");
        assert_eq!(pool.queued(), 0);
    }
}
