//! What auth-listen records through the [`metrics`] facade (see `auth_core::metrics` for
//! the engine's series and how to install a recorder). Labels are bounded codes:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `auth_connections_refused_total` | counter | `protocol`, `reason` | connections refused or closed before they could authenticate ([`RefusalReason::code`](crate::RefusalReason::code)) |
//! | `auth_tls_handshake_failures_total` | counter | `protocol` | TLS handshakes that failed or timed out |

use auth_core::Protocol;

/// `auth_connections_refused_total`.
pub const CONNECTIONS_REFUSED: &str = "auth_connections_refused_total";
/// `auth_tls_handshake_failures_total`.
pub const TLS_HANDSHAKE_FAILURES: &str = "auth_tls_handshake_failures_total";

/// A handshake on `protocol`'s door that failed.
pub fn handshake_failed(protocol: Protocol) {
    metrics::counter!(TLS_HANDSHAKE_FAILURES, "protocol" => protocol.as_str()).increment(1);
}
