//! TLS for a listener: a rustls acceptor, the `tls-server-end-point` channel-binding data
//! (RFC 5929) of its certificate computed once, and handshakes under a deadline that
//! yield the connection's facts.

use std::sync::Arc;
use std::time::Duration;

use auth_core::TlsInfo;
use auth_core::certificate::TrustedIssuers;
use auth_core::certificate::tls::{server_config, tls_info};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA384,
    OID_SIG_ECDSA_WITH_SHA512, OID_SIG_ED448, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct TlsError(String);

/// How long a client may take to finish its TLS handshake, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's TLS: the acceptor and the channel-binding data of its certificate, which
/// every TLS connection's [`TlsInfo`] carries so SCRAM-SHA-256-PLUS can bind to it. The
/// two cannot drift apart.
///
/// ```
/// # fn main() -> Result<(), auth_listen::TlsError> {
/// # let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
/// # let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
/// use auth_listen::TlsSetup;
///
/// let tls = TlsSetup::from_pem(cert.as_bytes(), key.as_bytes())?.with_alpn(&[b"h2", b"http/1.1"]);
/// assert!(tls.channel_binding().is_some(), "ECDSA P-256: SHA-256 of the certificate");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsSetup {
    config: Arc<rustls::ServerConfig>,
    acceptor: TlsAcceptor,
    channel_binding: Option<Vec<u8>>,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("alpn", &self.config.alpn_protocols.len())
            .field("channel_binding", &self.channel_binding.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// `tls-server-end-point` (RFC 5929 section 4.1) of a DER certificate: the certificate
/// hashed with its signature's hash, SHA-256 for MD5, SHA-1 and SHA-256 signatures.
/// `None` when the signature algorithm has no single hash (Ed25519, Ed448) or the
/// certificate cannot be parsed: SCRAM-SHA-256-PLUS is then not offered.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert).ok()?;
    let algorithm = &parsed.signature_algorithm.algorithm;
    if *algorithm == OID_SIG_ED25519 || *algorithm == OID_SIG_ED448 {
        return None;
    }
    let bits = if *algorithm == OID_SIG_ECDSA_WITH_SHA384 || *algorithm == OID_PKCS1_SHA384WITHRSA {
        384
    } else if *algorithm == OID_SIG_ECDSA_WITH_SHA512 || *algorithm == OID_PKCS1_SHA512WITHRSA {
        512
    } else {
        // RSASSA-PSS names its hash in parameters; the ones in use are SHA-256 or
        // stronger ones with SHA-256 framing, as PostgreSQL treats them when unknown.
        match x509_parser::signature_algorithm::SignatureAlgorithm::try_from(
            &parsed.signature_algorithm,
        ) {
            Ok(x509_parser::signature_algorithm::SignatureAlgorithm::RSASSA_PSS(params)) => {
                let hash = params.hash_algorithm_oid();
                if *hash == x509_parser::oid_registry::OID_NIST_HASH_SHA384 {
                    384
                } else if *hash == x509_parser::oid_registry::OID_NIST_HASH_SHA512 {
                    512
                } else {
                    256
                }
            }
            _ => 256,
        }
    };
    Some(match bits {
        384 => Sha384::digest(cert).to_vec(),
        512 => Sha512::digest(cert).to_vec(),
        _ => Sha256::digest(cert).to_vec(),
    })
}

impl TlsSetup {
    /// From a PEM certificate chain (leaf first) and a PEM private key; clients are not
    /// asked for certificates and no ALPN protocol is offered ([`Self::with_alpn`]).
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Self::build(cert_chain_pem, key_pem, None)
    }

    /// As [`Self::from_pem`], and every client is asked for a certificate of `client_cas`,
    /// optionally: the handshake proves a presented one's key, and the rules that use
    /// certificates (`cert`, `clientcert`) judge the chain when user and database are
    /// known (see [`auth_core::certificate`]).
    pub fn from_pem_with_client_cas(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        client_cas: &TrustedIssuers,
    ) -> Result<Self, TlsError> {
        Self::build(cert_chain_pem, key_pem, Some(client_cas))
    }

    fn build(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        client_cas: Option<&TrustedIssuers>,
    ) -> Result<Self, TlsError> {
        let leaf = CertificateDer::pem_slice_iter(cert_chain_pem)
            .next()
            .ok_or_else(|| TlsError("no certificate in the PEM".into()))?
            .map_err(|e| TlsError(format!("certificate PEM: {e}")))?;
        let channel_binding = end_point_hash(leaf.as_ref());
        let config =
            server_config(cert_chain_pem, key_pem, client_cas, &[]).map_err(|e| TlsError(e.0))?;
        Ok(Self::from_config(config, channel_binding))
    }

    /// From a rustls configuration the caller built, with the channel-binding data of its
    /// certificate (`None`: SCRAM-SHA-256-PLUS is not offered).
    pub fn from_config(config: rustls::ServerConfig, channel_binding: Option<Vec<u8>>) -> Self {
        let config = Arc::new(config);
        Self {
            acceptor: TlsAcceptor::from(config.clone()),
            config,
            channel_binding,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The same, offering the ALPN protocols `alpn` (`h2`, `http/1.1`, `postgresql`):
    /// each front door its own, over one certificate.
    pub fn with_alpn(self, alpn: &[&[u8]]) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Self {
            handshake_timeout: self.handshake_timeout,
            ..Self::from_config(config, self.channel_binding)
        }
    }

    /// The ALPN protocols offered.
    pub fn alpn(&self) -> &[Vec<u8>] {
        &self.config.alpn_protocols
    }

    /// The same with the time a client may take for its handshake.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The acceptor.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// `tls-server-end-point` of the certificate, when its signature algorithm defines one.
    pub fn channel_binding(&self) -> Option<&[u8]> {
        self.channel_binding.as_deref()
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the server side of a handshake on `io` under the deadline, and says what it
    /// established (version, SNI, ALPN is on the stream, the client's chain, and this
    /// certificate's channel-binding data).
    pub async fn handshake<IO>(&self, io: IO) -> std::io::Result<(TlsStream<IO>, TlsInfo)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(io))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        let facts = self.facts(stream.get_ref().1);
        Ok((stream, facts))
    }

    /// What an accepted connection's handshake established, with this certificate's
    /// channel-binding data.
    pub fn facts(&self, connection: &rustls::ServerConnection) -> TlsInfo {
        let mut facts = tls_info(connection);
        facts.server_end_point = self.channel_binding.clone();
        facts
    }

    /// A fresh self-signed ECDSA P-256 certificate for `names` (examples and tests;
    /// feature `self-signed`). Returns the setup, the certificate PEM (for clients' root
    /// store) and the key PEM.
    #[cfg(feature = "self-signed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "self-signed")))]
    pub fn self_signed(names: &[&str]) -> Result<(Self, String, String), TlsError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert =
            rcgen::generate_simple_self_signed(names).map_err(|e| TlsError(e.to_string()))?;
        let cert_pem = cert.cert.pem();
        let key_pem = cert.signing_key.serialize_pem();
        let setup = Self::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())?;
        Ok((setup, cert_pem, key_pem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_der(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_end_point_hash_follows_the_signature_algorithm() {
        let p256 = cert_der(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(end_point_hash(&p256), Some(Sha256::digest(&p256).to_vec()));
        let p384 = cert_der(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(end_point_hash(&p384), Some(Sha384::digest(&p384).to_vec()));
        let ed = cert_der(&rcgen::PKCS_ED25519);
        assert_eq!(
            end_point_hash(&ed),
            None,
            "no channel binding defined for Ed25519"
        );
        assert_eq!(end_point_hash(b"not a certificate"), None);
    }
}
