//! A JSON-lines audit file written behind the login path: [`AuditFile`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use super::{AuditEvent, AuditSink};

/// The counter of events the audit file could not take (`metrics` facade; it does nothing
/// until the program installs a recorder).
pub const DROPPED_METRIC: &str = "auth_audit_dropped_total";

/// How an [`AuditFile`] queues and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditFileSettings {
    /// Events waiting to be written, at most; beyond, a login waits for room.
    pub capacity: usize,
    /// How long a login waits for room before its event is dropped and counted.
    pub wait: Duration,
    /// How often a failing disk is reported (the first failure at once).
    pub report_every: Duration,
}

impl Default for AuditFileSettings {
    fn default() -> Self {
        Self {
            capacity: 16_384,
            wait: Duration::from_millis(100),
            report_every: Duration::from_secs(60),
        }
    }
}

enum Message {
    Line(Vec<u8>),
    Reopen,
    Flush(Sender<()>),
}

/// A JSON-lines audit file that no login waits for: events go through a bounded queue to
/// one writer thread, which writes them in batches. The file is created readable by its
/// owner only (0600); [`AuditFile::reopen`] (on SIGHUP, after logrotate moved the file)
/// starts a new one. When the queue is full a login waits at most
/// [`AuditFileSettings::wait`], then its event is dropped and counted: the next event
/// written says how many were lost (`"audit_dropped": n`), as does the
/// [`DROPPED_METRIC`] counter. A full or unwritable disk never fails a login: the batch
/// is dropped and counted, the failure reported once per interval, and writing resumes
/// when space returns (a partly written batch is cut off, so every line stays whole).
///
/// ```
/// use auth_core::audit::{AuditEvent, AuditEventKind, AuditFile, AuditSink};
/// use auth_core::Peer;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("audit.jsonl");
/// let audit = AuditFile::open(&path).unwrap();
/// let peer = Peer::Tcp("192.0.2.1:5000".parse().unwrap());
/// let event = AuditEvent::new(
///     AuditEventKind::AttemptFailed,
///     std::time::SystemTime::now(),
///     (&peer, 1, "pgwire"),
///     "rejected",
/// );
/// audit.record(&event);
/// audit.flush();
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.contains("\"event\":\"attempt_failed\""));
/// # use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
/// ```
pub struct AuditFile {
    queue: Sender<Message>,
    dropped: Arc<AtomicU64>,
    settings: AuditFileSettings,
    path: PathBuf,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AuditFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditFile")
            .field("path", &self.path)
            .field("queued", &self.queue.len())
            .finish()
    }
}

/// Opens `path` for appending, creating it 0600.
fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl AuditFile {
    /// Opens (or creates, 0600) the log at `path` with the default settings.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        Self::with_settings(path, AuditFileSettings::default())
    }

    /// The same with `settings`.
    pub fn with_settings(
        path: impl Into<PathBuf>,
        settings: AuditFileSettings,
    ) -> io::Result<Self> {
        let path = path.into();
        let file = open_log(&path)?;
        let (queue, received) = crossbeam_channel::bounded(settings.capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            path: path.clone(),
            file: Some(file),
            dropped: dropped.clone(),
            report_every: settings.report_every,
            last_report: None,
            failing_since: None,
            reported: 0,
        };
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(&received))?;
        Ok(Self {
            queue,
            dropped,
            settings,
            path,
            writer: Some(writer),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file and opens `path` again (creating it 0600): what logrotate's
    /// `postrotate` asks for with SIGHUP. Events before the call go to the old file.
    pub fn reopen(&self) {
        // Blocking: a reopen must not be lost to a full queue.
        let _ = self.queue.send(Message::Reopen);
    }

    /// Waits until every event recorded before the call has been written (or dropped).
    pub fn flush(&self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Events lost since the last one written (to a full queue or a failing disk).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DROPPED_METRIC).increment(1);
    }
}

impl AuditSink for AuditFile {
    fn record(&self, event: &AuditEvent<'_>) {
        let Some(line) = super::json_line(event) else {
            return;
        };
        match self.queue.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(line)) => {
                match self.queue.send_timeout(line, self.settings.wait) {
                    Ok(()) => {}
                    Err(SendTimeoutError::Timeout(_) | SendTimeoutError::Disconnected(_)) => {
                        self.drop_one();
                    }
                }
            }
            Err(TrySendError::Disconnected(_)) => self.drop_one(),
        }
    }
}

impl Drop for AuditFile {
    fn drop(&mut self) {
        // Hang up the queue: the writer writes what is queued, then ends.
        let (queue, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.queue, queue));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    file: Option<File>,
    dropped: Arc<AtomicU64>,
    report_every: Duration,
    last_report: Option<Instant>,
    failing_since: Option<Instant>,
    /// The losses the batch being built reports in its first line.
    reported: u64,
}

/// Lines written per batch at most (one `write` each).
const BATCH: usize = 1024;

impl Writer {
    fn run(mut self, received: &Receiver<Message>) {
        let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut lines = 0u64;
        while let Ok(first) = received.recv() {
            let mut acks = Vec::new();
            for message in std::iter::once(first).chain(received.try_iter().take(BATCH)) {
                match message {
                    Message::Line(line) => {
                        if lines == 0 {
                            self.note_dropped(&mut batch, line);
                        } else {
                            batch.extend_from_slice(&line);
                        }
                        lines += 1;
                    }
                    Message::Reopen => {
                        self.write(&mut batch, &mut lines);
                        // At once, so the new file is there before any event (logrotate's
                        // `nocreate` leaves making it to us); a failure is retried at the
                        // next write.
                        self.file = open_log(&self.path).ok();
                    }
                    Message::Flush(ack) => acks.push(ack),
                }
            }
            self.write(&mut batch, &mut lines);
            for ack in acks {
                let _ = ack.send(());
            }
        }
        self.write(&mut batch, &mut lines);
    }

    /// `line` into the batch, saying first how many events were lost before it.
    fn note_dropped(&mut self, batch: &mut Vec<u8>, line: Vec<u8>) {
        let lost = self.dropped.load(Ordering::Relaxed);
        // `{..."x":1}\n` becomes `{..."x":1,"audit_dropped":n}\n`.
        if lost > 0 && line.ends_with(b"}\n") {
            batch.extend_from_slice(&line[..line.len() - 2]);
            batch.extend_from_slice(format!(",\"audit_dropped\":{lost}}}\n").as_bytes());
            self.reported = lost;
        } else {
            batch.extend_from_slice(&line);
        }
    }

    /// Writes the batch; on failure drops (and counts) it, cutting off what was half
    /// written, so the next write starts on a line of its own.
    fn write(&mut self, batch: &mut Vec<u8>, lines: &mut u64) {
        if batch.is_empty() {
            return;
        }
        let result = self.file().and_then(|file| {
            let before = file.metadata()?.len();
            file.write_all(batch).inspect_err(|_| {
                let _ = file.set_len(before);
            })
        });
        match result {
            Ok(()) => {
                // What the first line reported is told; losses since stay counted.
                self.dropped.fetch_sub(self.reported, Ordering::Relaxed);
                if let Some(since) = self.failing_since.take() {
                    tracing::warn!(target: "auth::audit", path = %self.path.display(), failing_for = ?since.elapsed(), "audit log writable again");
                }
            }
            Err(e) => {
                self.dropped.fetch_add(*lines, Ordering::Relaxed);
                metrics::counter!(DROPPED_METRIC).increment(*lines);
                self.failing_since.get_or_insert_with(Instant::now);
                let due = self
                    .last_report
                    .is_none_or(|at| at.elapsed() >= self.report_every);
                if due {
                    self.last_report = Some(Instant::now());
                    tracing::error!(target: "auth::audit", path = %self.path.display(), error = %e, lost = self.dropped.load(Ordering::Relaxed), "audit events could not be written; logins go on");
                }
                // A file that failed is opened afresh next time (the disk may have been
                // remounted, the file removed).
                self.file = None;
            }
        }
        batch.clear();
        *lines = 0;
        self.reported = 0;
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(open_log(&self.path)?);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("no file"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::time::SystemTime;

    use super::*;
    use crate::audit::AuditEventKind;
    use crate::connection::Peer;

    fn record(audit: &AuditFile, id: u64) {
        let peer = Peer::Tcp("192.0.2.1:5000".parse().unwrap_or_else(|_| unreachable!()));
        audit.record(&AuditEvent::new(
            AuditEventKind::AttemptFailed,
            SystemTime::now(),
            (&peer, id, "pgwire"),
            "rejected",
        ));
    }

    fn ids(text: &str) -> Vec<u64> {
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                v["connection_id"].as_u64().unwrap_or(u64::MAX)
            })
            .collect()
    }

    #[test]
    fn events_are_written_in_order_and_a_reopen_starts_a_new_0600_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("audit.jsonl");
        let audit = AuditFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        for id in 0..500 {
            record(&audit, id);
        }
        // logrotate: rename, then SIGHUP.
        let rotated = dir.path().join("audit.jsonl.1");
        audit.flush();
        std::fs::rename(&path, &rotated).unwrap_or_else(|e| panic!("{e}"));
        record(&audit, 500);
        audit.reopen();
        record(&audit, 501);
        audit.flush();
        let old = std::fs::read_to_string(&rotated).unwrap_or_default();
        let new = std::fs::read_to_string(&path).unwrap_or_default();
        // The event before the reopen went to the renamed file, as logrotate expects.
        assert_eq!(ids(&old), (0..=500).collect::<Vec<_>>());
        assert_eq!(ids(&new), [501]);
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        assert_eq!(audit.dropped(), 0);
    }

    #[test]
    fn a_writer_that_cannot_keep_up_drops_and_counts_and_says_so_in_the_next_event() {
        // A FIFO nobody reads: the writer blocks once the pipe is full, like a stalled disk.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("audit.fifo");
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let reader_path = path.clone();
        let (opened, reader_open) = crossbeam_channel::bounded(1);
        let (go, start_reading) = crossbeam_channel::bounded::<()>(1);
        let reader = std::thread::spawn(move || {
            let file = File::open(&reader_path).unwrap_or_else(|e| panic!("{e}"));
            let _ = opened.send(());
            let _ = start_reading.recv();
            BufReader::new(file)
                .lines()
                .map(|l| l.unwrap_or_default())
                .collect::<Vec<_>>()
        });
        let settings = AuditFileSettings {
            capacity: 4,
            wait: Duration::from_millis(1),
            ..AuditFileSettings::default()
        };
        let audit = AuditFile::with_settings(&path, settings).unwrap_or_else(|e| panic!("{e}"));
        reader_open.recv().unwrap_or_else(|e| panic!("{e}"));
        // More than the pipe (64 KiB), one batch in flight (1025 lines) and the queue hold.
        let total = 2000;
        for id in 0..total {
            record(&audit, id);
        }
        let dropped = audit.dropped();
        assert!(dropped > 0, "a stalled writer must drop, not block logins");
        let _ = go.send(());
        record(&audit, total);
        drop(audit);
        let lines = reader.join().unwrap_or_default();
        let reported: u64 = lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                assert!(v.is_object(), "every line whole: {l}");
                v["audit_dropped"].as_u64().unwrap_or(0)
            })
            .sum();
        assert_eq!(
            lines.len() as u64 + reported,
            total + 1,
            "every event written or counted"
        );
        assert!(
            reported >= dropped,
            "{reported} reported, {dropped} counted at the time"
        );
    }
}
