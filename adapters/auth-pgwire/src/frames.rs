//! Frame lengths checked before pgwire's decoder sees them.
//!
//! pgwire 0.42 subtracts the 4-byte length field from a frame's declared length without
//! checking it (`p 00 00 00 00` after the startup packet panics the connection task), and
//! before authentication nothing bounds what a client may make the server buffer. The
//! real fix belongs in the pgwire crate; until then a guard running [`FrameCheck`] sits
//! between the socket (after TLS) and pgwire's codec and follows the framing byte by byte: the untyped
//! startup packet (4-byte length, then the body), then typed frames (a type byte, a 4-byte
//! length, the body). A length below 4, a startup packet over [`MAX_STARTUP_PACKET`], or,
//! before authentication, a typed frame over the pre-authentication cap ends the read with
//! an `InvalidData` error, which the connection loop answers with FATAL 08P01.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest startup packet PostgreSQL accepts (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: u32 = 10_000;

/// The default cap on one frame before authentication: a SASL or GSS message carrying
/// PostgreSQL's largest token (`PG_MAX_AUTH_TOKEN_LENGTH`, 65,535 bytes) plus room for the
/// mechanism name and lengths.
pub const DEFAULT_MAX_PRE_AUTH_FRAME: u32 = 65_535 + 1_024;

/// Where the guard stands in the byte stream.
#[derive(Debug, Clone, Copy)]
enum Position {
    /// Reading a frame header: `have` of `len` header bytes (4 untyped, 5 typed).
    Header {
        buf: [u8; 5],
        have: usize,
        typed: bool,
    },
    /// Inside a frame's body: `left` bytes to go.
    Body { left: u32 },
}

/// Follows a client's byte stream through the framing and refuses bad lengths; what the
/// connection's guard runs on every read, public so that fuzzing and other transports can
/// use the same check.
#[derive(Debug, Clone)]
pub struct FrameCheck {
    position: Position,
    max_pre_auth_frame: u32,
    authenticated: Arc<AtomicBool>,
}

impl FrameCheck {
    /// A check at the start of the startup packet.
    pub fn at_startup(max_pre_auth_frame: u32) -> Self {
        Self {
            position: Position::Header {
                buf: [0; 5],
                have: 0,
                typed: false,
            },
            max_pre_auth_frame,
            authenticated: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A check inside the startup packet's body, `left` bytes to go (the first bytes
    /// were read and checked during SSL/GSS negotiation).
    pub fn in_startup_body(left: u32, max_pre_auth_frame: u32) -> Self {
        Self {
            position: Position::Body { left },
            ..Self::at_startup(max_pre_auth_frame)
        }
    }

    /// Set once the connection is authenticated: the pre-authentication cap no longer
    /// applies (queries and COPY data may be large).
    pub fn authenticated(&self) -> Arc<AtomicBool> {
        self.authenticated.clone()
    }

    /// Follows `bytes` through the framing; the error describes the first bad length.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match &mut self.position {
                Position::Body { left } => {
                    let n = (*left as usize).min(bytes.len());
                    bytes = &bytes[n..];
                    *left -= n as u32;
                    if *left == 0 {
                        self.position = Position::Header {
                            buf: [0; 5],
                            have: 0,
                            typed: true,
                        };
                    }
                }
                Position::Header { buf, have, typed } => {
                    let size = if *typed { 5 } else { 4 };
                    let n = (size - *have).min(bytes.len());
                    buf[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have < size {
                        continue;
                    }
                    let at = size - 4;
                    let len = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
                    let typed = *typed;
                    self.position = Position::Body {
                        left: self.body_of(len, typed)?,
                    };
                    if let Position::Body { left: 0 } = self.position {
                        self.position = Position::Header {
                            buf: [0; 5],
                            have: 0,
                            typed: true,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// The body length of a frame declaring `len`, or why `len` is refused.
    fn body_of(&self, len: u32, typed: bool) -> Result<u32, String> {
        if len < 4 {
            return Err(format!("frame length {len} is below 4"));
        }
        if !typed {
            if !(8..=MAX_STARTUP_PACKET).contains(&len) {
                return Err(format!("invalid startup packet length {len}"));
            }
        } else if len > self.max_pre_auth_frame && !self.authenticated.load(Ordering::Acquire) {
            return Err(format!(
                "frame of {len} bytes before authentication exceeds {}",
                self.max_pre_auth_frame
            ));
        }
        Ok(len - 4)
    }
}

/// The checking reader around a connection's stream.
#[derive(Debug)]
pub(crate) struct FrameGuard<S> {
    inner: S,
    check: FrameCheck,
}

impl<S> FrameGuard<S> {
    /// A guard running `check` over `inner`.
    pub(crate) fn new(inner: S, check: FrameCheck) -> Self {
        Self { inner, check }
    }

    /// See [`FrameCheck::authenticated`].
    pub(crate) fn authenticated(&self) -> Arc<AtomicBool> {
        self.check.authenticated()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                match this.check.feed(fresh) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(why) => {
                        // What was read stays unread: the decoder must not see it.
                        buf.set_filled(before);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)))
                    }
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> FrameCheck {
        FrameCheck::at_startup(DEFAULT_MAX_PRE_AUTH_FRAME)
    }

    fn startup() -> Vec<u8> {
        let body = b"\0\x03\0\0user\0demo\0\0";
        let mut v = u32::try_from(4 + body.len())
            .unwrap()
            .to_be_bytes()
            .to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn well_formed_frames_pass_in_any_split() {
        let mut stream = startup();
        stream.extend_from_slice(b"p\0\0\0\x0asecret");
        stream.extend_from_slice(b"Q\0\0\0\x04");
        for chunk in 1..stream.len() {
            let mut g = guard();
            for piece in stream.chunks(chunk) {
                g.feed(piece).unwrap();
            }
        }
    }

    #[test]
    fn short_lengths_are_refused_at_every_stage() {
        for bad in [b"p\0\0\0\0".as_slice(), b"p\0\0\0\x03", b"d\0\0\0\x02"] {
            let mut g = guard();
            g.feed(&startup()).unwrap();
            assert!(g.feed(bad).unwrap_err().contains("below 4"));
        }
        assert!(guard().feed(b"\0\0\0\x02").is_err());
        assert!(guard().feed(b"\0\0\0\x07\0\x03\0").is_err());
    }

    #[test]
    fn oversized_frames_are_refused_before_authentication_only() {
        let mut g = guard();
        assert!(g.feed(&10_001u32.to_be_bytes()).is_err(), "startup packet");
        let mut g = guard();
        g.feed(&startup()).unwrap();
        let mut big = b"p".to_vec();
        big.extend_from_slice(&(DEFAULT_MAX_PRE_AUTH_FRAME + 1).to_be_bytes());
        assert!(g.feed(&big).unwrap_err().contains("before authentication"));

        let mut g = guard();
        g.feed(&startup()).unwrap();
        g.authenticated().store(true, Ordering::Release);
        let mut query = b"Q".to_vec();
        query.extend_from_slice(&1_000_000u32.to_be_bytes());
        g.feed(&query).unwrap();
        // A SASL message of PostgreSQL's largest token fits.
        let mut g = guard();
        g.feed(&startup()).unwrap();
        let mut sasl = b"p".to_vec();
        sasl.extend_from_slice(&(65_535u32 + 4 + 14 + 4).to_be_bytes());
        g.feed(&sasl).unwrap();
    }
}
