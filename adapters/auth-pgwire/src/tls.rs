//! TLS for the adapter: a rustls acceptor and the `tls-server-end-point` channel-binding
//! data (RFC 5929) of its certificate, which SCRAM-SHA-256-PLUS binds to.

use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct TlsError(String);

/// A TLS acceptor and the channel-binding data of its certificate.
#[derive(Clone)]
pub struct TlsSetup {
    /// The acceptor for [`crate::ServeConfig::tls`].
    pub acceptor: TlsAcceptor,
    /// `tls-server-end-point` for [`crate::PgAuthConfig::channel_binding`]: the SHA-256 of
    /// the leaf certificate (RFC 5929 uses the certificate's signature hash, SHA-256 for
    /// the usual ECDSA P-256 and RSA-SHA256 certificates; others are refused).
    pub channel_binding: Vec<u8>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

impl TlsSetup {
    /// From a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError(format!("certificate PEM: {e}")))?;
        let leaf = certs
            .first()
            .ok_or_else(|| TlsError("no certificate in the PEM".into()))?;
        let channel_binding = Sha256::digest(leaf.as_ref()).to_vec();
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError(format!("private key PEM: {e}")))?;
        // An explicit provider: no process-wide default needed, whichever crypto crates
        // the host links.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError(e.to_string()))?;
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            channel_binding,
        })
    }

    /// A fresh self-signed ECDSA P-256 certificate for `names` (examples and tests).
    /// Returns the setup and the certificate PEM (for clients' `sslrootcert`).
    #[cfg(feature = "self-signed")]
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
