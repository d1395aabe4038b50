//! Frame lengths and layouts checked before pgwire's decoder sees them.
//!
//! pgwire 0.42 trusts the client more than it should: it subtracts the 4-byte length field
//! from a frame's declared length without checking it (`p 00 00 00 00` after the startup
//! packet panics the connection task); its startup-packet decoder reads parameters until no
//! NUL is left in the buffer, whatever the declared length, so a packet whose layout does
//! not end where its length says leaves bytes that the next decode takes for a frame
//! header; and before authentication it decodes any message type (Bind, Parse, ...),
//! whose decoders read counts and lengths unchecked. The real fixes belong in the pgwire
//! crate; until then [`FrameCheck`] follows the client's byte stream and refuses:
//!
//! - a length below 4, a startup packet outside 8..=10,004 bytes (PostgreSQL's 10,000
//!   plus the length word), or, before
//!   authentication, a typed frame over the pre-authentication cap;
//! - a startup packet whose layout is not `protocol (key NUL value NUL)* NUL` ending
//!   exactly at its length (a CancelRequest is 16 bytes);
//! - before authentication, any message but a password-family message (`p`) or Terminate
//!   (`X`), as PostgreSQL expects nothing else then.
//!
//! It also records where each frame ends, so the connection loop can check after every
//! decoded message that pgwire consumed exactly whole frames ([`FrameCheck::aligned`]):
//! a decoder that took more or less ends the connection before the next decode can read
//! a header out of the middle of a frame.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest startup packet body PostgreSQL accepts (`MAX_STARTUP_PACKET_LENGTH`, not
/// counting the 4-byte length word).
pub const MAX_STARTUP_PACKET: u32 = 10_000;

/// The protocol code of a CancelRequest, in the startup packet's place.
const CANCEL_REQUEST: u32 = 80_877_102;

/// The default cap on one frame before authentication: a SASL or GSS message carrying
/// PostgreSQL's largest token (`PG_MAX_AUTH_TOKEN_LENGTH`, 65,535 bytes) plus room for the
/// mechanism name and lengths.
pub const DEFAULT_MAX_PRE_AUTH_FRAME: u32 = 65_535 + 1_024;

/// Where the check stands in the byte stream.
#[derive(Debug, Clone)]
enum Position {
    /// Reading a frame header: `have` of its 4 (untyped) or 5 (typed) bytes.
    Header {
        buf: [u8; 5],
        have: usize,
        typed: bool,
    },
    /// Inside the startup packet: its bytes so far (after the length), `left` to go.
    Startup { body: Vec<u8>, left: u32 },
    /// Inside a typed frame's body: `left` bytes to go.
    Body { left: u32 },
}

impl Position {
    fn next_typed() -> Self {
        Self::Header {
            buf: [0; 5],
            have: 0,
            typed: true,
        }
    }
}

/// Follows a client's byte stream through the framing and refuses what pgwire must not
/// decode (see the module docs); what the connection's guard runs on every read, public
/// so that fuzzing and other transports can use the same check.
#[derive(Debug, Clone)]
pub struct FrameCheck {
    position: Position,
    max_pre_auth_frame: u32,
    authenticated: Arc<AtomicBool>,
    /// Bytes followed so far.
    offset: u64,
    /// Stream offsets where frames end, not yet passed by the decoder.
    boundaries: VecDeque<u64>,
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
            offset: 0,
            boundaries: VecDeque::new(),
        }
    }

    /// A check for a startup packet whose first 8 bytes (`len`, then the protocol `code`)
    /// were read during SSL/GSS negotiation; the stream offset counts them.
    pub fn after_startup_header(
        len: u32,
        code: u32,
        max_pre_auth_frame: u32,
    ) -> Result<Self, String> {
        let mut check = Self::at_startup(max_pre_auth_frame);
        let mut head = len.to_be_bytes().to_vec();
        head.extend_from_slice(&code.to_be_bytes());
        check.feed(&head)?;
        Ok(check)
    }

    /// Set once the connection is authenticated: the pre-authentication cap and type
    /// restriction no longer apply (queries and COPY data may be large).
    pub fn authenticated(&self) -> Arc<AtomicBool> {
        self.authenticated.clone()
    }

    /// Bytes followed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether a decoder that has consumed `consumed` bytes of the stream stands exactly
    /// at the end of a frame. Frame ends before it are forgotten.
    pub fn aligned(&mut self, consumed: u64) -> bool {
        while self.boundaries.front().is_some_and(|b| *b < consumed) {
            self.boundaries.pop_front();
        }
        self.boundaries.front() == Some(&consumed)
    }

    /// Follows `bytes` through the framing; the error says what was refused.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            let n = match &mut self.position {
                Position::Body { left } => {
                    let n = (*left as usize).min(bytes.len());
                    *left -= n as u32;
                    if *left == 0 {
                        self.position = Position::next_typed();
                    }
                    n
                }
                Position::Startup { body, left } => {
                    let n = (*left as usize).min(bytes.len());
                    body.extend_from_slice(&bytes[..n]);
                    *left -= n as u32;
                    if *left == 0 {
                        check_startup(body)?;
                        self.position = Position::next_typed();
                    }
                    n
                }
                Position::Header { buf, have, typed } => {
                    let size = if *typed { 5 } else { 4 };
                    let n = (size - *have).min(bytes.len());
                    buf[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    if *have == size {
                        let (kind, typed) = (buf[0], *typed);
                        let at = size - 4;
                        let len =
                            u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
                        self.position = self.frame(kind, len, typed)?;
                    }
                    n
                }
            };
            bytes = &bytes[n..];
            self.offset += n as u64;
            if let Position::Header { have: 0, .. } = self.position {
                self.boundaries.push_back(self.offset);
            }
        }
        Ok(())
    }

    /// What follows a frame header: its body, or the next header for an empty body.
    fn frame(&self, kind: u8, len: u32, typed: bool) -> Result<Position, String> {
        if len < 4 {
            return Err(format!("frame length {len} is below 4"));
        }
        if !typed {
            if !(8..=MAX_STARTUP_PACKET + 4).contains(&len) {
                return Err(format!("invalid startup packet length {len}"));
            }
            return Ok(Position::Startup {
                body: Vec::with_capacity(len as usize - 4),
                left: len - 4,
            });
        }
        if !self.authenticated.load(Ordering::Acquire) {
            if !matches!(kind, b'p' | b'X') {
                return Err(format!(
                    "message type {:?} before authentication",
                    char::from(kind)
                ));
            }
            if len > self.max_pre_auth_frame {
                return Err(format!(
                    "frame of {len} bytes before authentication exceeds {}",
                    self.max_pre_auth_frame
                ));
            }
        }
        Ok(match len - 4 {
            0 => Position::next_typed(),
            left => Position::Body { left },
        })
    }
}

/// A startup packet's body (after the length) as PostgreSQL lays it out: the protocol
/// code, then for protocol 3 `(key NUL value NUL)* NUL` ending at the last byte, with
/// non-empty keys; a CancelRequest is the code and 8 bytes.
fn check_startup(body: &[u8]) -> Result<(), String> {
    let (code, rest) = body
        .split_first_chunk::<4>()
        .ok_or("startup packet shorter than its protocol code")?;
    match u32::from_be_bytes(*code) {
        CANCEL_REQUEST if rest.len() == 8 => return Ok(()),
        code if code >> 16 == 3 => {}
        _ => return Err("unsupported startup packet".to_owned()),
    }
    let Some((&0, mut pairs)) = rest.split_last() else {
        return Err("invalid startup packet layout: expected terminator as last byte".into());
    };
    while !pairs.is_empty() {
        let key_end = pairs
            .iter()
            .position(|b| *b == 0)
            .ok_or("startup parameter without value")?;
        if key_end == 0 {
            return Err("startup parameter with an empty name".into());
        }
        let value = &pairs[key_end + 1..];
        let value_end = value
            .iter()
            .position(|b| *b == 0)
            .ok_or("startup parameter without value")?;
        pairs = &value[value_end + 1..];
    }
    Ok(())
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

    /// See [`FrameCheck::aligned`]; `unread` is what the decoder holds but has not
    /// consumed.
    pub(crate) fn aligned(&mut self, unread: usize) -> bool {
        let consumed = self.check.offset().saturating_sub(unread as u64);
        self.check.aligned(consumed)
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
        let body = b"\0\x03\0\0user\0demo\0database\0demo\0\0";
        let mut v = u32::try_from(4 + body.len())
            .unwrap()
            .to_be_bytes()
            .to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn well_formed_frames_pass_in_any_split_and_mark_their_ends() {
        let mut stream = startup();
        let ends = [stream.len(), stream.len() + 11, stream.len() + 16];
        stream.extend_from_slice(b"p\0\0\0\x0asecret");
        stream.extend_from_slice(b"X\0\0\0\x04");
        for chunk in 1..stream.len() {
            let mut g = guard();
            for piece in stream.chunks(chunk) {
                g.feed(piece).unwrap();
            }
            assert!(!g.aligned(3));
            for end in ends {
                assert!(g.aligned(end as u64), "{end}");
            }
        }
    }

    #[test]
    fn short_lengths_and_unexpected_types_are_refused() {
        for bad in [b"p\0\0\0\0".as_slice(), b"p\0\0\0\x03", b"X\0\0\0\x02"] {
            let mut g = guard();
            g.feed(&startup()).unwrap();
            assert!(g.feed(bad).unwrap_err().contains("below 4"), "{bad:?}");
        }
        for kind in [b'd', b'B', b'P', b'Q', b'E', b'H', b'S'] {
            let mut g = guard();
            g.feed(&startup()).unwrap();
            let frame = [kind, 0, 0, 0, 8, 1, 2, 3, 4];
            assert!(
                g.feed(&frame)
                    .unwrap_err()
                    .contains("before authentication")
            );
        }
        assert!(guard().feed(b"\0\0\0\x02").is_err());
        assert!(guard().feed(b"\0\0\0\x07\0\x03\0").is_err());
    }

    #[test]
    fn startup_packets_must_end_where_their_length_says() {
        let packet = |body: &[u8]| {
            let mut v = u32::try_from(4 + body.len())
                .unwrap()
                .to_be_bytes()
                .to_vec();
            v.extend_from_slice(body);
            v
        };
        for bad in [
            b"\0\x03\0\0user\0demo\0".as_slice(),
            b"\0\x03\0\0user\0demo",
            b"\0\x03\0\0user\0demo\0\0p\0\0\0\0",
            b"\0\x03\0\0user\0\0",
            b"\0\x03\0\0\0user\0demo\0\0",
            b"\0\x09\0\0user\0demo\0\0",
            b"\x04\xd2\x16\x2e\0\0",
        ] {
            assert!(guard().feed(&packet(bad)).is_err(), "{bad:?}");
        }
        guard().feed(&packet(b"\0\x03\0\0\0")).unwrap();
        guard()
            .feed(&packet(b"\x04\xd2\x16\x2e\0\0\x04\xd2\0\0\0\x01"))
            .unwrap();
    }

    #[test]
    fn oversized_frames_are_refused_before_authentication_only() {
        let mut g = guard();
        assert!(g.feed(&10_005u32.to_be_bytes()).is_err(), "startup packet");
        assert!(
            guard().feed(&10_004u32.to_be_bytes()).is_ok(),
            "as PostgreSQL"
        );
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

    #[test]
    fn the_first_eight_bytes_read_during_negotiation_count() {
        let s = startup();
        let len = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
        let code = u32::from_be_bytes([s[4], s[5], s[6], s[7]]);
        let mut g =
            FrameCheck::after_startup_header(len, code, DEFAULT_MAX_PRE_AUTH_FRAME).unwrap();
        g.feed(&s[8..]).unwrap();
        assert!(g.aligned(s.len() as u64));
        assert!(FrameCheck::after_startup_header(20_000, code, 100).is_err());
    }
}
