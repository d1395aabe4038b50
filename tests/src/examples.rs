//! The example programs of the workspace's crates (`cargo run -p CRATE --example NAME`),
//! which `cargo test` builds next to the tests of their crate, run as their users would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{HarnessError, ServiceProcess};

/// The built example `name` of the crate whose test is running: `target/<profile>/examples`
/// beside the test binary's `deps` directory.
pub fn example_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(HarnessError::io("find the test binary"))?;
    let profile = exe.parent().and_then(Path::parent).ok_or_else(|| {
        HarnessError::io("find the target directory")(std::io::ErrorKind::NotFound.into())
    })?;
    let binary = profile.join("examples").join(name);
    if binary.exists() {
        Ok(binary)
    } else {
        Err(HarnessError::io(format!(
            "example `{name}` not built at {} (cargo test builds a crate's examples)",
            binary.display()
        ))(std::io::ErrorKind::NotFound.into()))
    }
}

/// Starts example `name` with `args`, its temporary files in `tmp`, and returns it with
/// the line it printed that starts with `prefix` (without the prefix).
pub fn start_example(
    name: &'static str,
    args: &[&str],
    tmp: &Path,
    prefix: &'static str,
) -> Result<(ServiceProcess, String), HarnessError> {
    let mut command = Command::new(example_binary(name)?);
    command.args(args).env("TMPDIR", tmp);
    let process = ServiceProcess::spawn(name, &mut command, prefix)?;
    let output = process.output();
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| HarnessError::NotReady {
            service: name,
            output: output.clone(),
        })?;
    Ok((process, line))
}

/// Runs a printed command line with `sh -c`: (success, stdout, stderr), trimmed.
pub fn sh(line: &str) -> Result<(bool, String, String), HarnessError> {
    let out = Command::new("sh")
        .args(["-c", line])
        .output()
        .map_err(HarnessError::io(format!("run `{line}`")))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    ))
}
