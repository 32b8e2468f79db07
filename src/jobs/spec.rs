//! Job files (`jobs/*.toml`): a named, scheduled list of steps.
//!
//! ```toml
//! name = "nightly"
//! schedule = "0 0 2 * * *"   # sec min hour day month weekday
//! timezone = "UTC"
//! [[steps]]
//! name = "features"
//! kind = "features"
//! ```
//!
//! Unknown keys are refused with the file and line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The nightly job, embedded so `run nightly` works without a `jobs/` folder.
pub const NIGHTLY: &str = include_str!("../../jobs/nightly.toml");

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Run the data-quality checks: quarantine bad rows, stop on a blocking failure.
    Checks,
    /// Materialise the feature tables as of the cutoff.
    Features,
    /// Build the panel and fit the configured models.
    Train,
    /// Backtest the configured models and update the champion of each segment.
    Backtest,
    /// Forecast the horizon with every fitted model.
    Predict,
    /// Write the forecasts dataset and its manifest.
    Publish,
}

/// One step of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Step name, unique in the job.
    pub name: String,
    /// What it does.
    pub kind: StepKind,
}

/// A job file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Job name (used in run records and leases).
    pub name: String,
    /// What the job is for.
    #[serde(default)]
    pub description: String,
    /// Cron expression with a seconds field.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Time zone of the schedule.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Steps, run in order.
    pub steps: Vec<StepSpec>,
}

fn utc() -> String {
    "UTC".to_string()
}

impl JobSpec {
    /// Parses a job file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let spec: JobSpec = toml::from_str(text)
            .map_err(|e| Error::JobSpec { path: origin.to_string(), message: e.to_string().trim_end().to_string() })?;
        if spec.steps.is_empty() {
            return Err(Error::JobSpec { path: origin.to_string(), message: "a job needs at least one step".into() });
        }
        let mut names: Vec<&str> = spec.steps.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::JobSpec {
                path: origin.to_string(),
                message: format!("step name `{}` is used twice", w[0]),
            });
        }
        Ok(spec)
    }

    /// Loads job `name` from `dir/<name>.toml`; the embedded nightly job when that file does not exist.
    pub fn load(dir: &Path, name: &str) -> Result<(Self, PathBuf)> {
        let path = dir.join(format!("{name}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::parse(&text, &path.display().to_string())?, path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == "nightly" => {
                Ok((Self::parse(NIGHTLY, "(embedded nightly.toml)")?, PathBuf::from("(embedded)")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::UnknownJob { name: name.to_string(), searched: dir.display().to_string() })
            }
            Err(e) => Err(Error::JobSpec { path: path.display().to_string(), message: e.to_string() }),
        }
    }
}

impl JobSpec {
    /// A job of the given steps, one per kind, named after them; for `shelfcast train` and `predict`.
    pub fn adhoc(name: &str, kinds: &[StepKind]) -> Self {
        let steps = kinds
            .iter()
            .map(|k| {
                let name =
                    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                StepSpec { name, kind: *k }
            })
            .collect();
        Self { name: name.to_string(), description: String::new(), schedule: None, timezone: utc(), steps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nightly_job_parses() {
        let j = JobSpec::parse(NIGHTLY, "nightly.toml").unwrap();
        assert_eq!(j.name, "nightly");
        assert_eq!(
            j.steps.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [
                StepKind::Checks,
                StepKind::Features,
                StepKind::Train,
                StepKind::Backtest,
                StepKind::Predict,
                StepKind::Publish
            ]
        );
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let err = JobSpec::parse("name = \"x\"\n[[steps]]\nname = \"a\"\nkind = \"train\"\nretry = 3\n", "jobs/x.toml")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("jobs/x.toml") && msg.contains("retry") && msg.contains("line 5"), "{msg}");
    }
}
