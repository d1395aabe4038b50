//! What auth-listen records through the [`metrics`] facade (see `auth_core::metrics` for
//! the engine's series and how to install a recorder). Labels are bounded codes:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `auth_connections_refused_total` | counter | `protocol`, `reason` | connections refused or closed before they could authenticate ([`RefusalReason::code`](crate::RefusalReason::code)) |
//! | `auth_tls_handshake_failures_total` | counter | `protocol` | TLS handshakes that failed or timed out |
//! | `auth_unauthenticated_connections` | gauge | `state` | connections holding a place (`placed`) or waiting for one (`waiting`) before they authenticate |

use auth_core::Protocol;

/// `auth_connections_refused_total`.
pub const CONNECTIONS_REFUSED: &str = "auth_connections_refused_total";
/// `auth_tls_handshake_failures_total`.
pub const TLS_HANDSHAKE_FAILURES: &str = "auth_tls_handshake_failures_total";

/// `auth_unauthenticated_connections`.
pub const UNAUTHENTICATED: &str = "auth_unauthenticated_connections";

/// One more (`1.0`) or one fewer (`-1.0`) unauthenticated connection in `state`.
pub(crate) fn unauthenticated(state: &'static str, change: f64) {
    metrics::gauge!(UNAUTHENTICATED, "state" => state).increment(change);
}

/// A handshake on `protocol`'s door that failed.
pub fn handshake_failed(protocol: Protocol) {
    metrics::counter!(TLS_HANDSHAKE_FAILURES, "protocol" => protocol.as_str()).increment(1);
}
