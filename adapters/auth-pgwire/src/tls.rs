//! TLS for the adapter: a rustls acceptor and the `tls-server-end-point` channel-binding
//! data (RFC 5929) of its certificate, which SCRAM-SHA-256-PLUS binds to.

use std::sync::Arc;

use auth_core::certificate::TrustedIssuers;
use auth_core::certificate::tls::server_config;
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct TlsError(String);

/// The adapter's TLS settings, one value for [`crate::ServeConfig::tls`]: the acceptor and
/// the channel-binding data of its certificate, which the serve loop puts on every TLS
/// connection so the engine offers SCRAM-SHA-256-PLUS there. The two cannot drift apart.
#[derive(Clone)]
pub struct TlsSetup {
    /// The acceptor.
    pub acceptor: TlsAcceptor,
    /// `tls-server-end-point` (RFC 5929) of the acceptor's certificate: the leaf
    /// certificate hashed with its signature's hash (RFC 5929: SHA-256 for MD5, SHA-1 and
    /// SHA-256 signatures, else SHA-384 or SHA-512). `None` when the signature algorithm
    /// has no defined hash (Ed25519): SCRAM-SHA-256-PLUS is then not offered.
    pub channel_binding: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

/// DER encodings of signature-algorithm OIDs, by the hash RFC 5929 prescribes.
const SHA384_SIGNATURES: [&[u8]; 2] = [
    // ecdsa-with-SHA384 1.2.840.10045.4.3.3
    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    // sha384WithRSAEncryption 1.2.840.113549.1.1.12
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c,
    ],
];
const SHA512_SIGNATURES: [&[u8]; 2] = [
    // ecdsa-with-SHA512 1.2.840.10045.4.3.4
    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    // sha512WithRSAEncryption 1.2.840.113549.1.1.13
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d,
    ],
];
const SHA256_OR_WEAKER_SIGNATURES: [&[u8]; 4] = [
    // ecdsa-with-SHA256 1.2.840.10045.4.3.2
    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
    // sha256WithRSAEncryption 1.2.840.113549.1.1.11
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
    ],
    // sha1WithRSAEncryption 1.2.840.113549.1.1.5
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05,
    ],
    // RSASSA-PSS 1.2.840.113549.1.1.10 (SHA-256 in practice)
    &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
    ],
];

/// The certificate's outer signatureAlgorithm is the last algorithm identifier in its
/// DER: find which known OID occurs last and hash with what RFC 5929 says.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    let last = |oids: &[&[u8]]| {
        oids.iter()
            .filter_map(|oid| cert.windows(oid.len()).rposition(|w| w == *oid))
            .max()
    };
    let candidates = [
        (last(&SHA256_OR_WEAKER_SIGNATURES), 256),
        (last(&SHA384_SIGNATURES), 384),
        (last(&SHA512_SIGNATURES), 512),
    ];
    let (_, bits) = candidates
        .iter()
        .filter_map(|(at, bits)| at.map(|at| (at, *bits)))
        .max_by_key(|(at, _)| *at)?;
    Some(match bits {
        384 => Sha384::digest(cert).to_vec(),
        512 => Sha512::digest(cert).to_vec(),
        _ => Sha256::digest(cert).to_vec(),
    })
}

impl TlsSetup {
    /// From a PEM certificate chain (leaf first) and a PEM private key; clients are not
    /// asked for certificates.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Self::build(cert_chain_pem, key_pem, None)
    }

    /// As [`Self::from_pem`], and every client is asked for a certificate of `client_cas`,
    /// optionally: the handshake proves a presented one's key, and the rules that use
    /// certificates (`cert`, `clientcert`) judge the chain after startup, when user and
    /// database are known (see [`auth_core::certificate`]).
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
        let config = server_config(cert_chain_pem, key_pem, client_cas, &[b"postgresql"])
            .map_err(|e| TlsError(e.0))?;
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
    }
}
