//! The Erlang/OTP side: compiles `benches/otp/*.erl` with `erlc` and runs them with `erl`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Flavor, Metric};

/// What one VM printed: each workload's metrics or its error, in order.
pub type Results = Vec<(String, Result<Vec<Metric>, String>)>;

/// Compiled OTP modules, ready to run.
pub struct Otp {
    ebin: PathBuf,
}

/// Where the `.erl` modules are.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../otp")
}

impl Otp {
    /// Compiles the modules into `ebin`. Errors name what is missing: no `erl` or `erlc` on the
    /// PATH (Debian: `apt-get install erlang-base`), or a module that does not compile.
    pub fn prepare(ebin: &Path) -> Result<Otp, String> {
        for tool in ["erl", "erlc"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !found {
                return Err(format!(
                    "`{tool}` is not on the PATH (Debian: apt-get install erlang-base)"
                ));
            }
        }
        std::fs::create_dir_all(ebin).map_err(|e| format!("{}: {e}", ebin.display()))?;
        let src = source_dir();
        let out = Command::new("erlc")
            .arg("-o")
            .arg(ebin)
            .arg(src.join("canopy_compare.erl"))
            .arg(src.join("canopy_compare_worker.erl"))
            .output()
            .map_err(|e| format!("erlc: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "erlc failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Otp {
            ebin: ebin.to_path_buf(),
        })
    }

    /// The OTP release, e.g. `25`, and the emulator version.
    pub fn version(&self) -> String {
        Command::new("erl")
            .args([
                "-noshell",
                "-eval",
                "io:format(\"OTP ~s, erts ~s\", [erlang:system_info(otp_release), erlang:system_info(version)]), halt().",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"))
    }

    /// An `erl` command on `flavor`'s number of schedulers, with the modules on its path.
    pub fn command(&self, flavor: Flavor) -> Command {
        let schedulers = match flavor {
            Flavor::CurrentThread => "1:1",
            Flavor::TwoWorkers => "2:2",
        };
        let mut cmd = Command::new("erl");
        cmd.args(["-noshell", "+S", schedulers, "-pa"])
            .arg(&self.ebin);
        cmd
    }

    /// Runs `workloads` in one fresh VM at sizes `mode` (`full`, `quick` or `tiny`); each
    /// workload's metrics, in order.
    pub fn run(&self, workloads: &[&str], flavor: Flavor, mode: &str) -> Result<Results, String> {
        let out = self
            .command(flavor)
            .args(["-run", "canopy_compare", "main", mode])
            .args(workloads)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("erl: {e}"))?;
        parse_lines(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Reads the VM's `RESULT <workload> <json>` and `ERROR <workload> <reason>` lines.
pub fn parse_lines(text: &str) -> Result<Results, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("RESULT ") {
            let (name, json) = rest
                .split_once(' ')
                .ok_or("a RESULT line without metrics")?;
            let metrics: Vec<Metric> =
                serde_json::from_str(json).map_err(|e| format!("{name}: {e}"))?;
            out.push((name.to_string(), Ok(metrics)));
        } else if let Some(rest) = line.strip_prefix("ERROR ") {
            let (name, why) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push((name.to_string(), Err(why.to_string())));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_results_and_errors() {
        let text = "noise\nRESULT ask [{\"name\":\"ask_direct\",\"unit\":\"ns\",\"p99\":false,\"samples\":[1.5,2.000]}]\nERROR tell error:badarg []\n";
        let got = parse_lines(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            (
                "ask".to_string(),
                Ok(vec![Metric::new("ask_direct", "ns", false, vec![1.5, 2.0])])
            )
        );
        assert_eq!(got[1].0, "tell");
        assert!(got[1].1.is_err());
    }
}
