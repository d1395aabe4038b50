//! A throwaway MIT Kerberos realm, the k5test way: a private krb5.conf and kdc.conf
//! (through `KRB5_CONFIG` and `KRB5_KDC_PROFILE`), a database made by `kdb5_util`,
//! principals and keytabs by `kadmin.local`, `krb5kdc` in the foreground on a free
//! loopback port, and tickets in a private credential cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::process::{HarnessError, ServiceProcess, find_program, free_port, run};

/// The realm every throwaway KDC serves.
pub const REALM: &str = "TEST.REALM";

/// A running throwaway realm. Dropping it stops the KDC and deletes its files.
#[derive(Debug)]
pub struct Kdc {
    dir: TempDir,
    port: u16,
    process: Option<ServiceProcess>,
}

impl Kdc {
    /// Creates the realm and starts its KDC.
    pub fn start() -> Result<Self, HarnessError> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start() {
                Ok(kdc) => return Ok(kdc),
                // A port taken between choosing and binding: choose again.
                Err(e @ HarnessError::NotReady { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::NotReady {
            service: "krb5kdc",
            output: String::new(),
        }))
    }

    fn try_start() -> Result<Self, HarnessError> {
        for program in ["krb5kdc", "kdb5_util", "kadmin.local", "kinit"] {
            find_program(program, &[], "the throwaway Kerberos realm")?;
        }
        let dir = tempfile::Builder::new()
            .prefix("auth-kdc-")
            .tempdir()
            .map_err(HarnessError::io("create the KDC directory"))?;
        let port = free_port()?;
        let mut kdc = Self {
            dir,
            port,
            process: None,
        };
        kdc.write_config()?;
        run(
            kdc.command("kdb5_util").args([
                "create",
                "-s",
                "-W",
                "-r",
                REALM,
                "-P",
                "master-key-for-tests",
            ]),
            None,
        )?;
        kdc.start_kdc()?;
        Ok(kdc)
    }

    fn write_config(&self) -> Result<(), HarnessError> {
        let d = self.dir.path().display();
        let port = self.port;
        let krb5_conf = format!(
            "[libdefaults]\n\
             \tdefault_realm = {REALM}\n\
             \tdns_lookup_kdc = false\n\
             \tdns_lookup_realm = false\n\
             \tdns_canonicalize_hostname = false\n\
             \trdns = false\n\
             \tudp_preference_limit = 1\n\
             \tticket_lifetime = 1h\n\
             \tclockskew = 1\n\
             \tdefault_ccache_name = FILE:{d}/ccache\n\
             [realms]\n\
             \t{REALM} = {{\n\
             \t\tkdc = 127.0.0.1:{port}\n\
             \t}}\n\
             [domain_realm]\n\
             \tlocalhost = {REALM}\n"
        );
        let kdc_conf = format!(
            "[kdcdefaults]\n\
             \tkdc_listen = 127.0.0.1:{port}\n\
             \tkdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n\
             \t{REALM} = {{\n\
             \t\tdatabase_name = {d}/principal\n\
             \t\tkey_stash_file = {d}/stash\n\
             \t\tacl_file = {d}/kadm5.acl\n\
             \t\tkdc_listen = 127.0.0.1:{port}\n\
             \t\tkdc_tcp_listen = 127.0.0.1:{port}\n\
             \t\tmax_life = 10h\n\
             \t\tmax_renewable_life = 1d\n\
             \t\tsupported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n\
             \t}}\n\
             [logging]\n\
             \tkdc = STDERR\n"
        );
        for (name, text) in [
            ("krb5.conf", krb5_conf),
            ("kdc.conf", kdc_conf),
            ("kadm5.acl", String::new()),
        ] {
            std::fs::write(self.dir.path().join(name), text)
                .map_err(HarnessError::io(format!("write {name}")))?;
        }
        Ok(())
    }

    fn start_kdc(&mut self) -> Result<(), HarnessError> {
        let mut cmd = self.command("krb5kdc");
        cmd.args(["-n", "-r", REALM]);
        self.process = Some(ServiceProcess::spawn(
            "krb5kdc",
            &mut cmd,
            "commencing operation",
        )?);
        Ok(())
    }

    /// A command with this realm's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env());
        cmd
    }

    /// The environment a client or acceptor needs to use this realm.
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.path();
        vec![
            (
                "KRB5_CONFIG".into(),
                d.join("krb5.conf").display().to_string(),
            ),
            (
                "KRB5_KDC_PROFILE".into(),
                d.join("kdc.conf").display().to_string(),
            ),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", d.join("ccache").display()),
            ),
            (
                "KRB5_KTNAME".into(),
                format!("FILE:{}", self.keytab().display()),
            ),
            ("KRB5RCACHEDIR".into(), d.display().to_string()),
            ("KRB5_TRACE".into(), "/dev/null".into()),
        ]
    }

    /// The realm's directory (krb5.conf, kdc.conf, database, keytab, ccache).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The KDC's port on 127.0.0.1 (TCP and UDP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The default service keytab.
    pub fn keytab(&self) -> PathBuf {
        self.dir.path().join("service.keytab")
    }

    /// The default client credential cache.
    pub fn ccache(&self) -> PathBuf {
        self.dir.path().join("ccache")
    }

    fn kadmin(&self, query: &str) -> Result<String, HarnessError> {
        let out = run(
            self.command("kadmin.local")
                .args(["-r", REALM, "-q", query]),
            None,
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // kadmin.local exits 0 even when the query fails; it reports failures on stderr
        // as "<operation>: <message> while <doing what>".
        if stderr.contains(" while ") {
            return Err(HarnessError::Command {
                command: format!("kadmin.local -q {query:?}"),
                status: "query failed".into(),
                output: stderr.into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Adds a user principal with a password.
    pub fn add_user(&self, principal: &str, password: &str) -> Result<(), HarnessError> {
        self.kadmin(&format!("addprinc -pw {password} {principal}"))
            .map(drop)
    }

    /// Adds a service principal with a random key and writes its key to `keytab` (the
    /// default keytab when `None`). Calling it again rotates the key (new kvno).
    pub fn add_service(&self, principal: &str, keytab: Option<&Path>) -> Result<(), HarnessError> {
        let exists = self.kadmin(&format!("getprinc {principal}")).is_ok();
        if !exists {
            self.kadmin(&format!("addprinc -randkey {principal}"))?;
        }
        let keytab = keytab.map_or_else(|| self.keytab(), Path::to_path_buf);
        self.kadmin(&format!("ktadd -k {} {principal}", keytab.display()))
            .map(drop)
    }

    /// Gets a ticket for `principal` into `ccache` (the default cache when `None`), with
    /// an optional lifetime such as `2s`.
    pub fn kinit(
        &self,
        principal: &str,
        password: &str,
        ccache: Option<&Path>,
        lifetime: Option<&str>,
    ) -> Result<(), HarnessError> {
        let mut cmd = self.command("kinit");
        if let Some(c) = ccache {
            cmd.env("KRB5CCNAME", format!("FILE:{}", c.display()));
        }
        if let Some(l) = lifetime {
            cmd.args(["-l", l]);
        }
        cmd.arg(principal);
        run(&mut cmd, Some(&format!("{password}\n"))).map(drop)
    }

    /// `klist` of the default cache.
    pub fn klist(&self) -> Result<String, HarnessError> {
        let out = run(&mut self.command("klist"), None)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the KDC (to test an unreachable KDC); [`Kdc::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts the KDC again on the same port with the same database.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        self.start_kdc()
    }

    /// The KDC's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServiceProcess::pid)
    }
}
