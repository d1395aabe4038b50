//! An OAuth token endpoint in the test process, over HTTPS with a certificate of the run
//! CA, that answers every request with whatever answer the test set last: how a test makes
//! a provider refuse, fail or time out in each way a real one can, and sees what it was
//! sent.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::process::HarnessError;

/// One answer of the endpoint: an HTTP status, a content type (none when empty) and a body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`, or `""` for none.
    pub content_type: &'static str,
    /// The body.
    pub body: Cow<'static, str>,
}

impl Answer {
    /// An answer with a body made at run time.
    pub fn new(status: u16, content_type: &'static str, body: &str) -> Self {
        Self {
            status,
            content_type,
            body: Cow::Owned(body.to_owned()),
        }
    }
}

/// A request the endpoint got: its head (request line and headers) and its body.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request line and the headers.
    pub head: String,
    /// The body.
    pub body: String,
}

impl Request {
    /// The value of the header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// The endpoint on `https://localhost:<port>/token` (and 127.0.0.1): one thread per
/// connection, each answer closing its connection. It stops with the test process.
#[derive(Debug)]
pub struct TokenEndpoint {
    /// The port on 127.0.0.1.
    pub port: u16,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<Mutex<Vec<Request>>>,
    _dir: tempfile::TempDir,
}

impl TokenEndpoint {
    /// Starts it, answering `first` until told otherwise.
    pub fn start(first: Answer) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(HarnessError::io("a directory for its key"))?;
        let tls = tls_config(dir.path())?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(HarnessError::io("bind"))?;
        let port = listener
            .local_addr()
            .map_err(HarnessError::io("its address"))?
            .port();
        let answer = Arc::new(Mutex::new(first));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (answer.clone(), requests.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (tls, a, r) = (tls.clone(), a.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = serve(tcp, tls, &a, &r);
                });
            }
        });
        Ok(Self {
            port,
            answer,
            requests,
            _dir: dir,
        })
    }

    /// `https://localhost:<port>/token`.
    pub fn token_endpoint(&self) -> String {
        format!("https://localhost:{}/token", self.port)
    }

    /// Answers every later request with `answer`.
    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
    }

    /// The requests so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The token requests (`POST`) so far, oldest first: without the `GET`s a gateway's
    /// readiness check sends to see that the endpoint answers.
    pub fn token_requests(&self) -> Vec<Request> {
        let mut requests = self.requests();
        requests.retain(|r| r.head.starts_with("POST "));
        requests
    }
}

/// The run CA's certificate for `localhost` and 127.0.0.1, as a rustls server config.
fn tls_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, HarnessError> {
    let files = crate::pki::run_ca()?.server_in(dir, "provider")?;
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid("its certificate", e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| invalid("its key", e))?;
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| invalid("its TLS configuration", e))?;
    Ok(Arc::new(config))
}

fn invalid(context: &str, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::io(context)(std::io::Error::other(e.to_string()))
}

/// Reads one HTTP/1.1 request on `tcp` over TLS, records it, and writes the current
/// answer.
fn serve(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    answer: &Mutex<Answer>,
    requests: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let server = rustls::ServerConnection::new(tls).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(server, tcp);
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        read.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&read[..head_end]).into_owned();
    let request = Request {
        head,
        body: String::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while read.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        read.extend_from_slice(&chunk[..n]);
    }
    let end = read.len().min(head_end + length);
    let body = String::from_utf8_lossy(&read[head_end..end]).into_owned();
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Request { body, ..request });
    let a = answer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut out = format!("HTTP/1.1 {} Answer\r\n", a.status);
    if !a.content_type.is_empty() {
        out.push_str(&format!("Content-Type: {}\r\n", a.content_type));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        a.body.len(),
        a.body
    ));
    stream.write_all(out.as_bytes())?;
    stream.conn.send_close_notify();
    stream.flush()
}
