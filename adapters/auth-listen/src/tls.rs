//! TLS for a listener: a rustls acceptor, the `tls-server-end-point` channel-binding data
//! (RFC 5929) of its certificate computed once, and handshakes under a deadline that
//! yield the connection's facts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

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
/// two cannot drift apart, not even across [`TlsSetup::replace`].
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
///
/// Copies share what [`TlsSetup::replace`] replaces: each front door takes its copy with
/// its own ALPN protocols, and a reload replaces the certificate, key and client CAs of
/// every door at once.
#[derive(Clone)]
pub struct TlsSetup {
    /// The certificate, key and client CAs, shared by every copy and door.
    loaded: Arc<ArcSwap<Loaded>>,
    /// This door's acceptor over what is loaded, remade when that is replaced.
    door: Arc<ArcSwap<DoorState>>,
    alpn: Arc<[Vec<u8>]>,
    handshake_timeout: Duration,
}

/// What [`TlsSetup::replace`] swaps as one: a configuration and the channel-binding data
/// of its certificate.
struct Loaded {
    /// Unique to this load, so a door sees that what it was made from was replaced.
    generation: u64,
    config: Arc<rustls::ServerConfig>,
    channel_binding: Option<Vec<u8>>,
}

impl Loaded {
    fn new(config: Arc<rustls::ServerConfig>, channel_binding: Option<Vec<u8>>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            generation: NEXT.fetch_add(1, Ordering::Relaxed),
            config,
            channel_binding,
        }
    }
}

/// One door's view of one [`Loaded`]: the acceptor with the door's ALPN.
struct DoorState {
    generation: u64,
    config: Arc<rustls::ServerConfig>,
    acceptor: TlsAcceptor,
    channel_binding: Option<Vec<u8>>,
}

impl DoorState {
    fn of(loaded: &Loaded, alpn: &[Vec<u8>]) -> Self {
        let config = if loaded.config.alpn_protocols == alpn {
            loaded.config.clone()
        } else {
            let mut config = (*loaded.config).clone();
            config.alpn_protocols = alpn.to_vec();
            Arc::new(config)
        };
        Self {
            generation: loaded.generation,
            acceptor: TlsAcceptor::from(config.clone()),
            config,
            channel_binding: loaded.channel_binding.clone(),
        }
    }
}

/// The TLS a door accepts one connection with, taken once per connection
/// ([`TlsSetup::current`]): its acceptor and the channel-binding data of the certificate
/// that acceptor presents, which a replacement in between cannot separate.
#[derive(Clone)]
pub struct TlsCurrent(Arc<DoorState>);

impl std::fmt::Debug for TlsCurrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCurrent")
            .field("alpn", &self.0.config.alpn_protocols.len())
            .field("channel_binding", &self.0.channel_binding.is_some())
            .finish()
    }
}

impl TlsCurrent {
    /// The acceptor.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.0.acceptor
    }

    /// `tls-server-end-point` of the certificate, when its signature algorithm defines one.
    pub fn channel_binding(&self) -> Option<&[u8]> {
        self.0.channel_binding.as_deref()
    }

    /// What a connection this acceptor accepted established, with its certificate's
    /// channel-binding data.
    pub fn facts(&self, connection: &rustls::ServerConnection) -> TlsInfo {
        let mut facts = tls_info(connection);
        facts.server_end_point = self.0.channel_binding.clone();
        facts
    }
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("alpn", &self.alpn.len())
            .field(
                "channel_binding",
                &self.loaded.load().channel_binding.is_some(),
            )
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
    /// certificate (`None`: SCRAM-SHA-256-PLUS is not offered). Its ALPN protocols are
    /// this door's.
    pub fn from_config(config: rustls::ServerConfig, channel_binding: Option<Vec<u8>>) -> Self {
        let alpn: Arc<[Vec<u8>]> = config.alpn_protocols.clone().into();
        let loaded = Loaded::new(Arc::new(config), channel_binding);
        let door = DoorState::of(&loaded, &alpn);
        Self {
            loaded: Arc::new(ArcSwap::from_pointee(loaded)),
            door: Arc::new(ArcSwap::from_pointee(door)),
            alpn,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A copy for a door offering the ALPN protocols `alpn` (`h2`, `http/1.1`,
    /// `postgresql`): each front door its own, over one certificate, which
    /// [`TlsSetup::replace`] replaces for all of them.
    pub fn with_alpn(self, alpn: &[&[u8]]) -> Self {
        let alpn: Arc<[Vec<u8>]> = alpn.iter().map(|p| p.to_vec()).collect();
        let door = DoorState::of(&self.loaded.load(), &alpn);
        Self {
            door: Arc::new(ArcSwap::from_pointee(door)),
            alpn,
            ..self
        }
    }

    /// The ALPN protocols offered.
    pub fn alpn(&self) -> &[Vec<u8>] {
        &self.alpn
    }

    /// The same with the time a client may take for its handshake.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Puts `other`'s certificate, key, client CAs and channel-binding data in force for
    /// every copy of this setup, each door with its own ALPN protocols: the connections
    /// accepted from now on get them, and connections already accepted keep theirs. A
    /// reload builds `other` from the new files and replaces only once that succeeded, so
    /// a broken file never leaves a door without a certificate.
    ///
    /// ```
    /// # fn main() -> Result<(), auth_listen::TlsError> {
    /// # let pem = || {
    /// #     let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    /// #     (made.cert.pem(), made.signing_key.serialize_pem())
    /// # };
    /// use auth_listen::TlsSetup;
    ///
    /// let (cert, key) = pem();
    /// let running = TlsSetup::from_pem(cert.as_bytes(), key.as_bytes())?;
    /// let pgwire = running.clone().with_alpn(&[b"postgresql"]);
    /// let (cert, key) = pem();
    /// let renewed = TlsSetup::from_pem(cert.as_bytes(), key.as_bytes())?;
    /// running.replace(&renewed);
    /// assert_eq!(pgwire.channel_binding(), renewed.channel_binding());
    /// assert_eq!(pgwire.alpn(), [b"postgresql".to_vec()]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn replace(&self, other: &TlsSetup) {
        self.loaded.store(other.loaded.load_full());
    }

    /// What this door accepts a connection with now: take it once per connection, and
    /// read the connection's facts from the same value.
    pub fn current(&self) -> TlsCurrent {
        let door = self.door.load_full();
        let loaded = self.loaded.load();
        if door.generation == loaded.generation {
            return TlsCurrent(door);
        }
        // Replaced since this door last accepted: remake its acceptor. Two connections
        // racing here make the same one; either may be kept.
        let fresh = Arc::new(DoorState::of(&loaded, &self.alpn));
        self.door.store(fresh.clone());
        TlsCurrent(fresh)
    }

    /// The acceptor in force now (see [`TlsSetup::current`]).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current().0.acceptor.clone()
    }

    /// `tls-server-end-point` of the certificate in force now, when its signature
    /// algorithm defines one.
    pub fn channel_binding(&self) -> Option<Vec<u8>> {
        self.loaded.load().channel_binding.clone()
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the server side of a handshake on `io` under the deadline, and says what it
    /// established (version, SNI, ALPN is on the stream, the client's chain, and the
    /// channel-binding data of the certificate it presented).
    pub async fn handshake<IO>(&self, io: IO) -> std::io::Result<(TlsStream<IO>, TlsInfo)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let current = self.current();
        let stream = tokio::time::timeout(self.handshake_timeout, current.acceptor().accept(io))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        let facts = current.facts(stream.get_ref().1);
        Ok((stream, facts))
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

    fn self_signed() -> (TlsSetup, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        (
            TlsSetup::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
            cert,
        )
    }

    /// A client handshake with `door`, trusting only `root`: the ALPN protocol agreed and
    /// the facts the server side recorded.
    async fn handshake(door: &TlsSetup, root: &str) -> (Option<Vec<u8>>, TlsInfo) {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(root.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (client, server) = tokio::io::duplex(64 * 1024);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (client, server) =
            tokio::join!(connector.connect(name, client), door.handshake(server));
        let alpn = client
            .unwrap()
            .get_ref()
            .1
            .alpn_protocol()
            .map(<[u8]>::to_vec);
        (alpn, server.unwrap().1)
    }

    #[tokio::test]
    async fn a_replacement_reaches_every_door_with_its_own_alpn_and_binding() {
        let (running, first) = self_signed();
        let door = running.clone().with_alpn(&[b"postgresql"]);
        let (alpn, facts) = handshake(&door, &first).await;
        assert_eq!(alpn.as_deref(), Some(&b"postgresql"[..]));
        assert_eq!(facts.server_end_point, running.channel_binding());

        let (renewed, second) = self_signed();
        running.replace(&renewed);
        let (alpn, facts) = handshake(&door, &second).await;
        assert_eq!(
            alpn.as_deref(),
            Some(&b"postgresql"[..]),
            "the door keeps its ALPN"
        );
        assert_eq!(facts.server_end_point, renewed.channel_binding());
        assert_ne!(facts.server_end_point, Some(end_point_hash_of(&first)));
    }

    fn end_point_hash_of(pem: &str) -> Vec<u8> {
        let der = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        end_point_hash(der.as_ref()).unwrap()
    }
}
