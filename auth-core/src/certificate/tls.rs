//! The rustls side (feature `rustls`): a server configuration that asks every client for
//! a certificate and leaves judging it to the authentication stage, and the
//! [`TlsInfo`] of an accepted connection.
//!
//! The handshake still proves that a client holds the key of the certificate it sent
//! (rustls checks its CertificateVerify signature with the provider's algorithms); only
//! the chain's trust, validity and revocation wait for [`super::CertificateAuthenticator`]
//! or [`super::CertificateCheck`], so that their refusals are audited with a reason and
//! a client without a certificate still reaches rules that do not need one.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::TrustedIssuers;
use crate::connection::TlsInfo;

/// A certificate or key a TLS server cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct TlsSetupError(pub String);

/// Asks for a client certificate, takes one or none, and checks only that the client
/// holds the certificate's key. Installed by [`server_config`].
#[derive(Debug)]
pub struct AskForClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
    hints: Vec<DistinguishedName>,
}

impl AskForClientCertificate {
    /// With `provider`'s signature algorithms, naming the CAs of `cas` in the request so
    /// that clients holding several certificates pick one of theirs.
    pub fn new(provider: &CryptoProvider, cas: &TrustedIssuers) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
            hints: cas
                .subjects()
                .iter()
                .map(|s| DistinguishedName::in_sequence(s))
                .collect(),
        }
    }
}

impl ClientCertVerifier for AskForClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The authentication stage verifies the chain (see the module documentation).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls server configuration (aws-lc-rs, safe default versions) for a PEM
/// certificate chain (leaf first) and PEM key, with the ALPN protocols `alpn`. With
/// `client_cas`, clients are asked for certificates as [`AskForClientCertificate`] does
/// (naming those CAs); without, they are not asked.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_cas: Option<&TrustedIssuers>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, TlsSetupError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsSetupError("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsSetupError(format!("private key PEM: {e}")))?;
    // An explicit provider: no process-wide default needed, whichever crypto crates the
    // host links.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?;
    // Without CAs nothing could judge a certificate: do not ask (browsers would show a
    // certificate picker for nothing).
    let builder = match client_cas {
        Some(cas) => builder
            .with_client_cert_verifier(Arc::new(AskForClientCertificate::new(&provider, cas))),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsSetupError(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// What an accepted connection's handshake established: version, SNI and the client's
/// certificate chain (`server_end_point` is left for the caller, who knows its
/// certificate).
pub fn tls_info(connection: &rustls::ServerConnection) -> TlsInfo {
    TlsInfo {
        version: connection
            .protocol_version()
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        server_name: connection.server_name().map(str::to_owned),
        server_end_point: None,
        client_certificates: connection
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default(),
    }
}
