//! The pre-authentication byte stream of a pgwire connection, as the server reads it: the
//! frame check first (in chunks, as reads deliver them), then pgwire's decoder on what the
//! check let through, stopping where the server would when a decode does not end on a
//! frame boundary, and what the startup handler does with password messages:
//! our own SASLInitialResponse parser (pgwire's panics), pgwire's SASLResponse and
//! cleartext password coercions.
#![no_main]

use auth_pgwire::frames::{DEFAULT_MAX_PRE_AUTH_FRAME, FrameCheck};
use auth_pgwire::messages::sasl_initial_response;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::messages::startup::PasswordMessageFamily;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut check = FrameCheck::at_startup(DEFAULT_MAX_PRE_AUTH_FRAME);
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    ctx.awaiting_frontend_ssl = false;
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        if check.feed(piece).is_err() {
            return;
        }
        buf.extend_from_slice(piece);
        loop {
            let consumed = check.offset() - buf.len() as u64;
            if consumed > 0 && !check.aligned(consumed) {
                return;
            }
            // Password messages are decoded raw and coerced by what the handler expects;
            // each coercion consumes the message, so each gets its own decoding.
            let snapshot = buf.clone();
            let again = || PgWireFrontendMessage::decode(&mut snapshot.clone(), &ctx);
            match PgWireFrontendMessage::decode(&mut buf, &ctx) {
                Ok(Some(PgWireFrontendMessage::Startup(_))) => ctx.awaiting_frontend_startup = false,
                Ok(Some(PgWireFrontendMessage::PasswordMessageFamily(m))) => {
                    if let PasswordMessageFamily::Raw(body) = &m {
                        let _ = sasl_initial_response(body);
                    }
                    if let Ok(Some(PgWireFrontendMessage::PasswordMessageFamily(m))) = again() {
                        let _ = m.into_sasl_response();
                    }
                    if let Ok(Some(PgWireFrontendMessage::PasswordMessageFamily(m))) = again() {
                        let _ = m.into_password();
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
});
