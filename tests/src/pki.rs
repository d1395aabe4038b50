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
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(failed("client parameters"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.serial_number = Some(serial.into());
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().map_err(failed("client key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(failed("client certificate"))?;
        let files = ClientFiles {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).map_err(HarnessError::io("write a cert"))?;
        write_private(&files.key, key.serialize_pem().as_bytes())?;
        Ok(files)
    }

    /// A CRL revoking `serials` (current until 2099), written as `<file>`.
    pub fn write_crl(&self, file: &str, serials: &[u64]) -> Result<PathBuf, HarnessError> {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2025, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: 1u64.into(),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: (*s).into(),
                    revocation_time: rcgen::date_time_ymd(2025, 6, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(failed("CRL"))?;
        let path = self.dir.join(file);
        std::fs::write(&path, crl.pem().map_err(failed("CRL PEM"))?)
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
    CA.get_or_init(|| {
        TestCa::new("auth-tests run CA", &std::env::temp_dir()).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| HarnessError::io("create the run CA")(std::io::Error::other(e.clone())))
}
