//! The PostgreSQL JDBC driver (Debian's libpostgresql-jdbc-java) as a client: a small Java
//! program, compiled once per test, that logs in and prints `OK <current_user>` or
//! `ERR <SQLSTATE>` (the driver's message goes to standard error).

use std::path::Path;
use std::process::Command;

use crate::process::HarnessError;

/// Where Debian installs the driver.
pub const JAR: &str = "/usr/share/java/postgresql.jar";

const PROBE: &str = r#"
import java.sql.*;
public class Probe {
    public static void main(String[] a) {
        try (Connection c = DriverManager.getConnection(a[0], a[1], a[2]);
             Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT current_user")) {
            r.next();
            System.out.println("OK " + r.getString(1));
        } catch (SQLException e) {
            System.out.println("ERR " + e.getSQLState());
            System.err.println(e.getMessage());
        }
    }
}
"#;

/// The compiled probe. Run it with `java -cp <classpath> Probe <url> <user> <password>`.
#[derive(Debug)]
pub struct JdbcProbe {
    dir: tempfile::TempDir,
}

impl JdbcProbe {
    /// Compiles the probe against the driver.
    pub fn compile() -> Result<Self, HarnessError> {
        if !Path::new(JAR).exists() {
            return Err(HarnessError::Missing {
                program: JAR.into(),
                purpose: "the JDBC tests",
            });
        }
        let dir = tempfile::tempdir().map_err(HarnessError::io("create the probe directory"))?;
        let source = dir.path().join("Probe.java");
        std::fs::write(&source, PROBE).map_err(HarnessError::io("write Probe.java"))?;
        let javac = Command::new("javac")
            .arg("-cp")
            .arg(JAR)
            .arg(&source)
            .output()
            .map_err(HarnessError::io("run javac"))?;
        if !javac.status.success() {
            return Err(HarnessError::Command {
                command: "javac Probe.java".into(),
                status: javac.status.to_string(),
                output: String::from_utf8_lossy(&javac.stderr).into_owned(),
            });
        }
        Ok(Self { dir })
    }

    /// The class path holding the driver and the probe.
    pub fn classpath(&self) -> String {
        format!("{JAR}:{}", self.dir.path().display())
    }
}
