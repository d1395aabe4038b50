//! The CAs whose client certificates the rules accept, as a file writes them.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::certificate::{ClientName, TrustedIssuers};

/// The `[client_certificates]` section: the CAs that `cert` methods and
/// `client_certificate` requirements accept.
///
/// ```
/// use auth_core::certificate::ClientName;
/// use auth_core::settings::ClientCertificateSettings;
///
/// let s: ClientCertificateSettings = toml::from_str("name = \"dns\"").unwrap();
/// assert_eq!(s.client_name().unwrap(), ClientName::Dns);
/// assert!(s.build(std::path::Path::new(".")).unwrap().is_none(), "no ca_file, no CAs");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCertificateSettings {
    /// The CA bundle (PEM), relative to the data directory (PostgreSQL's `ssl_ca_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Revocation lists of those CAs (PEM), relative to the data directory
    /// (`ssl_crl_file`). Re-read at start; an expired list refuses its CA's certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crl_file: Option<String>,
    /// Which name is the client: `cn` (default), `dn`, or the first SAN of kind `dns`,
    /// `email` or `uri` (PostgreSQL's `clientname`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether a certificate alone logs in to the HTTP and gRPC APIs (a request without
    /// `Authorization`). Off by default: CAs named for `verify-ca` second factors or for
    /// pgwire `cert` rules do not thereby open the APIs.
    pub api_login: bool,
}

impl ClientCertificateSettings {
    /// `name`, checked.
    pub fn client_name(&self) -> Result<ClientName, Invalid> {
        match &self.name {
            None => Ok(ClientName::CommonName),
            Some(text) => ClientName::parse(text).ok_or_else(|| {
                Invalid::new("name", format!("name = \"{text}\""))
                    .hint("use cn, dn, dns, email or uri")
            }),
        }
    }

    /// The CAs and their revocation lists read from `base_dir`, or `None` without
    /// `ca_file`.
    pub fn build(&self, base_dir: &Path) -> Result<Option<Arc<TrustedIssuers>>, Invalid> {
        let Some(ca_file) = &self.ca_file else {
            return Ok(None);
        };
        let read = |key: &str, file: &str| {
            let path = base_dir.join(file);
            std::fs::read(&path).map_err(|e| Invalid::new(key, format!("{}: {e}", path.display())))
        };
        let mut cas = TrustedIssuers::from_pem(&read("ca_file", ca_file)?)
            .map_err(|e| Invalid::new("ca_file", format!("ca_file = \"{ca_file}\": {e}")))?;
        if let Some(crl_file) = &self.crl_file {
            cas = cas
                .with_crls_pem(&read("crl_file", crl_file)?)
                .map_err(|e| Invalid::new("crl_file", format!("crl_file = \"{crl_file}\": {e}")))?;
        }
        Ok(Some(Arc::new(cas)))
    }
}
