//! A throwaway certificate authority for client certificates: valid, expired, revoked
//! and foreign certificates as files a real client (psql's `sslcert`, curl's `--cert`,
//! grpcurl's `-cert`) reads, and the CRL the gateway reads. [`run_ca`] is the one CA of a
//! test process that issues the server certificates of every TLS peer the harness starts
//! (oidc-provider, django-oauth-toolkit, PostgreSQL).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::process::HarnessError;

/// A CA that lives as long as the test, writing its files into `dir`.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
    name: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("name", &self.name).finish()
    }
}

/// A client certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, mode 0600 as libpq insists).
    pub key: PathBuf,
}

fn failed(what: &'static str) -> impl Fn(rcgen::Error) -> HarnessError {
    move |e| HarnessError::io(what)(std::io::Error::other(e.to_string()))
}

impl TestCa {
    /// A new CA named `name` (its common name), writing files into `dir`.
    pub fn new(name: &str, dir: &Path) -> Result<Self, HarnessError> {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed("CA parameters"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().map_err(failed("CA key"))?;
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).map_err(failed("CA"))?;
        std::fs::create_dir_all(dir).map_err(HarnessError::io("create the PKI directory"))?;
        Ok(Self {
            issuer,
            dir: dir.to_owned(),
            name: name.to_owned(),
        })
    }

    /// A CA whose certificates and CRLs stay in memory ([`Self::client_der`],
    /// [`Self::crl_pem`]); its file-writing methods would write into the system's
    /// temporary directory.
    pub fn in_memory(name: &str) -> Result<Self, HarnessError> {
        Self::new(name, &std::env::temp_dir())
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost`, 127.0.0.1 and ::1, written into `dir` as
    /// `<stem>.crt` and `<stem>.key` (mode 0600).
    pub fn server_in(&self, dir: &Path, stem: &str) -> Result<ClientFiles, HarnessError> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(failed("server parameters"))?;
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        params.subject_alt_names.push(rcgen::SanType::IpAddress(
            std::net::Ipv6Addr::LOCALHOST.into(),
        ));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().map_err(failed("server key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(failed("server certificate"))?;
        let files = ClientFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).map_err(HarnessError::io("write a cert"))?;
        write_private(&files.key, key.serialize_pem().as_bytes())?;
        Ok(files)
    }

    /// The CA certificate, written as `<file>` in the directory.
    pub fn write_ca(&self, file: &str) -> Result<PathBuf, HarnessError> {
        let path = self.dir.join(file);
        std::fs::write(&path, self.issuer.pem()).map_err(HarnessError::io("write the CA"))?;
        Ok(path)
    }

    /// A client certificate for common name `cn` with serial number `serial`, valid from
    /// 2025 to 2099, written as `<stem>.crt` and `<stem>.key`.
    pub fn client(&self, stem: &str, cn: &str, serial: u64) -> Result<ClientFiles, HarnessError> {
        self.issue(stem, cn, serial, (2025, 2099))
    }

    /// As [`Self::client`], valid only in 2020: expired.
    pub fn expired_client(
        &self,
        stem: &str,
        cn: &str,
        serial: u64,
    ) -> Result<ClientFiles, HarnessError> {
        self.issue(stem, cn, serial, (2020, 2021))
    }

    fn issue(
        &self,
        stem: &str,
        cn: &str,
        serial: u64,
        (from, to): (i32, i32),
    ) -> Result<ClientFiles, HarnessError> {
        let (cert, key) = self.sign_client(cn, serial, (from, 1, 1), (to, 1, 1))?;
        let files = ClientFiles {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).map_err(HarnessError::io("write a cert"))?;
        write_private(&files.key, key.serialize_pem().as_bytes())?;
        Ok(files)
    }

    /// A client certificate (DER) for common name `cn` with serial `serial`, valid from
    /// `not_before` to `not_after` (year, month, day); its key is thrown away.
    pub fn client_der(
        &self,
        cn: &str,
        serial: u64,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Result<Vec<u8>, HarnessError> {
        Ok(self
            .sign_client(cn, serial, not_before, not_after)?
            .0
            .der()
            .to_vec())
    }

    fn sign_client(
        &self,
        cn: &str,
        serial: u64,
        (y0, m0, d0): (i32, u8, u8),
        (y1, m1, d1): (i32, u8, u8),
    ) -> Result<(rcgen::Certificate, rcgen::KeyPair), HarnessError> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(failed("client parameters"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.serial_number = Some(serial.into());
        params.not_before = rcgen::date_time_ymd(y0, m0, d0);
        params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().map_err(failed("client key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(failed("client certificate"))?;
        Ok((cert, key))
    }

    /// A CRL (PEM) revoking `serials` since `this_update`, current until `next_update`
    /// (year, month, day).
    pub fn crl_pem(
        &self,
        serials: &[u64],
        this_update: (i32, u8, u8),
        next_update: (i32, u8, u8),
    ) -> Result<String, HarnessError> {
        let day = |(y, m, d): (i32, u8, u8)| rcgen::date_time_ymd(y, m, d);
        let params = rcgen::CertificateRevocationListParams {
            this_update: day(this_update),
            next_update: day(next_update),
            crl_number: 1u64.into(),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: (*s).into(),
                    revocation_time: day(this_update),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(failed("CRL"))?;
        crl.pem().map_err(failed("CRL PEM"))
    }

    /// A CRL revoking `serials` (current from 2025 until 2099), written as `<file>`.
    pub fn write_crl(&self, file: &str, serials: &[u64]) -> Result<PathBuf, HarnessError> {
        let path = self.dir.join(file);
        std::fs::write(&path, self.crl_pem(serials, (2025, 1, 1), (2099, 1, 1))?)
            .map_err(HarnessError::io("write the CRL"))?;
        Ok(path)
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), HarnessError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(HarnessError::io("write a private key"))?;
    file.write_all(contents)
        .map_err(HarnessError::io("write a private key"))
}

/// The throwaway CA of this test process (made at first use, never written to disk by
/// itself): it issues the server certificate of every TLS peer the harness starts, so a
/// test trusts exactly [`TestCa::pem`] of it and nothing else.
pub fn run_ca() -> Result<&'static TestCa, HarnessError> {
    static CA: OnceLock<Result<TestCa, String>> = OnceLock::new();
    CA.get_or_init(|| TestCa::in_memory("auth-tests run CA").map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| HarnessError::io("create the run CA")(std::io::Error::other(e.clone())))
}
