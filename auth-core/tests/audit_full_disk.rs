//! The audit file on a small filesystem that fills up (a tmpfs of 256 KiB): recording
//! never fails or blocks, the events that cannot be written are counted, and once space
//! is freed writing resumes with the count in the next event. Needs root for `mount`, as
//! CI has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use auth_core::Peer;
use auth_core::audit::{AuditEvent, AuditEventKind, AuditFile, AuditSink};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        assert!(
            nix_is_root(),
            "this test mounts a tmpfs and needs root (CI runs as root); run it as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mount -t tmpfs failed");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Fills the filesystem: a file grown until the disk refuses.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    filler
}

fn record(audit: &AuditFile, id: u64) {
    let peer = Peer::Tcp("192.0.2.1:5000".parse().unwrap());
    audit.record(&AuditEvent::new(
        AuditEventKind::AttemptFailed,
        SystemTime::now(),
        (&peer, id, "pgwire"),
        "rejected",
    ));
}

#[test]
fn a_full_disk_loses_events_counted_and_writing_resumes_when_space_returns() {
    let disk = SmallDisk::mount("256k");
    let log = disk.path().join("audit.jsonl");
    let audit = AuditFile::open(&log).unwrap();
    record(&audit, 0);
    audit.flush();
    let filler = fill(disk.path());

    let started = Instant::now();
    for id in 1..=200 {
        record(&audit, id);
    }
    audit.flush();
    assert!(
        started.elapsed().as_secs() < 5,
        "recording on a full disk must not stall: {:?}",
        started.elapsed()
    );
    // The log's last page may still take a few lines (each then reporting the losses
    // before it, which are then no longer pending); the rest is refused and counted.
    let reported_so_far: u64 = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["audit_dropped"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        audit.dropped() + reported_so_far > 0,
        "events lost on the full disk are counted"
    );

    std::fs::remove_file(filler).unwrap();
    record(&audit, 201);
    audit.flush();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line whole"))
        .collect();
    let ids: Vec<u64> = lines
        .iter()
        .map(|v| v["connection_id"].as_u64().unwrap())
        .collect();
    let reported: u64 = lines
        .iter()
        .map(|v| v["audit_dropped"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        ids.len() as u64 + reported,
        202,
        "every event written or reported lost: {ids:?}"
    );
    assert!(reported > 150, "the disk refused most events: {reported}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    assert_eq!(ids.last(), Some(&201));
    // Each loss is said by the first line written after it: the event after the outage
    // when the disk took nothing more, or a line the last page still took.
    let first_after_loss = lines
        .iter()
        .position(|v| v["audit_dropped"].as_u64() > Some(0))
        .expect("a line says what was lost");
    assert!(ids[first_after_loss] > 1, "{ids:?}");
    assert_eq!(
        audit.dropped(),
        0,
        "once said, the loss is no longer pending"
    );
}
