//! Unix-domain sockets as PostgreSQL serves them: `.s.PGSQL.<port>` in a directory, so
//! `psql -h DIR -p PORT` (and every libpq client) connects to it.
//!
//! A Unix-socket client is on this machine: its connection is a
//! [`Peer::Unix`](auth_core::Peer::Unix) with the kernel's peer credentials
//! (`SO_PEERCRED`), which `type = local` rules match and
//! [`PeerAuthenticator`](auth_core::local::PeerAuthenticator) judges. There is no TLS on
//! a Unix socket (SSLRequest is answered `N`, as PostgreSQL does): the kernel carries the
//! bytes.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use auth_core::PeerCredentials;
use tokio::net::{UnixListener, UnixStream};

/// The longest socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// What the serve loop tells the authenticator about a Unix-socket connection (kept in
/// the connection's session extensions; a TCP connection has none).
#[derive(Debug, Clone)]
pub(crate) struct UnixTransport {
    pub(crate) path: Option<PathBuf>,
    pub(crate) credentials: Option<PeerCredentials>,
}

/// The socket file's name for `port`: `.s.PGSQL.<port>`, as libpq looks for it.
pub fn socket_name(port: u16) -> String {
    format!(".s.PGSQL.{port}")
}

/// A listening Unix-domain socket at `<dir>/.s.PGSQL.<port>`. Dropping it removes the
/// socket file (if it is still this socket's).
#[derive(Debug)]
pub struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the file this socket created, so drop never removes another
    /// server's socket.
    file: (u64, u64),
}

impl UnixSocket {
    /// Listens at `<dir>/.s.PGSQL.<port>` with permissions `mode` (PostgreSQL's
    /// `unix_socket_permissions`; connecting needs write permission, so `0o770` admits
    /// the owner and group only and `0o777` everyone, whom authentication then judges).
    ///
    /// The mode is set right after the socket is bound, as PostgreSQL does; until then
    /// the process umask decides (with the usual 022, only the owner may connect). Keep
    /// `dir` unwritable by other users (or sticky): someone who may write it could swap
    /// the socket between its creation and its `chmod`.
    ///
    /// A socket file left by a server that is gone is replaced; one that a live server
    /// answers on is an [`io::ErrorKind::AddrInUse`] error, and any other file at the
    /// path is refused rather than deleted.
    pub fn bind(dir: &Path, port: u16, mode: u32) -> io::Result<Self> {
        let path = dir.join(socket_name(port));
        let length = path.as_os_str().len();
        if length > MAX_SOCKET_PATH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the socket path {} is {length} bytes, longer than the {MAX_SOCKET_PATH} \
                     the kernel accepts; choose a shorter directory",
                    path.display()
                ),
            ));
        }
        remove_stale(&path)?;
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        let meta = std::fs::symlink_metadata(&path)?;
        Ok(Self {
            listener,
            path,
            file: (meta.dev(), meta.ino()),
        })
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection. Accept errors are logged and retried after a pause that
    /// doubles from 5 ms to 1 s, as [`crate::accept`] does for TCP.
    pub async fn accept(&self) -> UnixStream {
        let mut pause = Duration::from_millis(5);
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => return stream,
                Err(e) => {
                    tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "accept failed on the Unix socket; pausing");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes a socket file nobody listens on; refuses a live socket or a file that is not
/// a socket.
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; move it away",
                path.display()
            ),
        ));
    }
    if answers(path)? {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another server is listening on {}; stop it or use another port",
                path.display()
            ),
        ));
    }
    std::fs::remove_file(path)
}

/// Whether a server answers on the socket at `path`. The probe runs on its own thread
/// with a deadline: connecting to a live listener whose backlog is full blocks, and such
/// a listener is alive.
fn answers(path: &Path) -> io::Result<bool> {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(std::os::unix::net::UnixStream::connect(target));
    });
    match rx.recv_timeout(Duration::from_secs(1)) {
        Ok(Ok(_)) | Err(_) => Ok(true),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(false),
        Ok(Err(e)) => Err(e),
    }
}

/// The kernel's word on who runs the process at the other end.
pub(crate) fn peer_credentials(stream: &UnixStream) -> Option<PeerCredentials> {
    let cred = stream.peer_cred().ok()?;
    Some(PeerCredentials {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_with_the_mode_replaces_a_stale_socket_and_refuses_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixSocket::bind(dir.path(), 5999, 0o770).unwrap();
        assert_eq!(socket.path(), dir.path().join(".s.PGSQL.5999"));
        let mode = std::fs::metadata(socket.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o770);

        let live = UnixSocket::bind(dir.path(), 5999, 0o777).unwrap_err();
        assert_eq!(live.kind(), io::ErrorKind::AddrInUse, "{live}");

        // A socket whose server is gone (its listener closed without removing the file).
        let stale = dir.path().join(socket_name(6000));
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
        let replaced = UnixSocket::bind(dir.path(), 6000, 0o777).unwrap();
        drop(replaced);
        assert!(!stale.exists(), "dropping the socket removes its file");

        std::fs::write(dir.path().join(socket_name(6001)), b"data").unwrap();
        let file = UnixSocket::bind(dir.path(), 6001, 0o777).unwrap_err();
        assert!(file.to_string().contains("is not a socket"), "{file}");

        let long = dir.path().join("d".repeat(120));
        let err = UnixSocket::bind(&long, 1, 0o777).unwrap_err();
        assert!(err.to_string().contains("longer than the 107"), "{err}");
        drop(socket);
    }

    #[tokio::test]
    async fn the_peer_is_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixSocket::bind(dir.path(), 7000, 0o700).unwrap();
        let path = socket.path().to_owned();
        let client = tokio::spawn(async move { UnixStream::connect(path).await.unwrap() });
        let server = socket.accept().await;
        let _client = client.await.unwrap();
        let cred = peer_credentials(&server).unwrap();
        assert_eq!(cred.uid, nix_uid());
        assert_eq!(cred.pid, Some(std::process::id() as i32));
    }

    fn nix_uid() -> u32 {
        std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap()
    }
}
