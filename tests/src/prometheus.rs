//! A real Prometheus (Debian's package, installed by scripts/install-deps.sh) on a free
//! loopback port, scraping the targets it is given every second, with its storage in a
//! temporary directory; its HTTP API answers PromQL queries.

use std::process::Command;

use tempfile::TempDir;

use crate::process::{HarnessError, ServiceProcess, find_program, free_port, run};

/// A running Prometheus. Dropping it stops the process and deletes its storage.
#[derive(Debug)]
pub struct Prometheus {
    _dir: TempDir,
    port: u16,
    _process: ServiceProcess,
}

impl Prometheus {
    /// Starts one scraping `targets` (`127.0.0.1:9464`, ...) at `/metrics` every second.
    pub fn start(targets: &[String]) -> Result<Self, HarnessError> {
        let program = find_program("prometheus", &[], "the metrics test")?;
        let dir = tempfile::Builder::new()
            .prefix("auth-prometheus-")
            .tempdir()
            .map_err(HarnessError::io("create the Prometheus directory"))?;
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: gateway\n    static_configs:\n      - targets: [{}]\n",
            quoted.join(", ")
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).map_err(HarnessError::io("write prometheus.yml"))?;
        let port = free_port()?;
        let mut cmd = Command::new(program);
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let process = ServiceProcess::spawn(
            "prometheus",
            &mut cmd,
            "Server is ready to receive web requests",
        )?;
        Ok(Self {
            _dir: dir,
            port,
            _process: process,
        })
    }

    /// The base URL of its HTTP API (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The result of the instant query `promql` (the API's `data.result`).
    pub fn query(&self, promql: &str) -> Result<serde_json::Value, HarnessError> {
        let out = run(
            Command::new("curl")
                .args(["-sS", "--max-time", "10", "-G"])
                .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
                .arg("--data-urlencode")
                .arg(format!("query={promql}")),
            None,
        )?;
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            HarnessError::io("read a Prometheus answer")(std::io::Error::other(e.to_string()))
        })?;
        Ok(answer["data"]["result"].clone())
    }

    /// The value of the single series `promql` yields (`None`: no series).
    pub fn value(&self, promql: &str) -> Result<Option<f64>, HarnessError> {
        let result = self.query(promql)?;
        Ok(result
            .get(0)
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok()))
    }
}
