//! Job files (`jobs/*.toml`): a named, scheduled set of steps, and how to run them.
//!
//! ```toml
//! name = "nightly"
//! schedule = "0 0 2 * * *"      # sec min hour day-of-month month day-of-week
//! timezone = "Europe/Berlin"    # IANA zone of the schedule (default UTC)
//! concurrency = "skip"          # a slot due while the previous run goes on: skip | queue
//! catch-up = "latest"           # slots missed while no scheduler ran: none | latest | all
//! lease-ttl = "2m"              # how long a dead runner keeps the job's date locked
//!
//! [params]                      # bound in `sql` steps as $name, next to $run_date and $cutoff
//! min_units = 1
//!
//! [defaults]                    # for every step that does not say
//! retries = 1
//! backoff = "1m"
//!
//! [[steps]]
//! name = "features"
//! kind = "features"
//! timeout = "30m"
//!
//! [[steps]]
//! name = "backtest"
//! kind = "backtest"
//! always = true                 # backtest even when tracked accuracy or a fresh backtest could decide
//! windows = 4                   # windows of this step (default: [champion] windows)
//!
//! [[steps]]
//! name = "orders"
//! kind = "ingest"
//! source = "orders"                         # a [sources.orders] table in settings
//!
//! [[steps]]
//! name = "top_sellers"
//! kind = "sql"
//! file = "../sql/reports/top_sellers.sql"   # relative to this file
//! output = "top_sellers"                    # dataset outputs/top_sellers/run_date=…/
//! after = ["features"]                      # default: the step before it
//! ```
//!
//! Steps run one at a time, in file order unless `after` says otherwise; a step runs only when
//! every step it comes after succeeded. Unknown keys, bad cron expressions or time zones,
//! unreadable durations, unknown `after` names and cycles are refused with the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::schedule::{CatchUp, Concurrency, Schedule};
use crate::error::{Error, Result};

/// The nightly job, embedded so `run nightly` works without a `jobs/` folder.
pub const NIGHTLY: &str = include_str!("../../jobs/nightly.toml");

/// The weekly full backtest, embedded like the nightly.
pub const WEEKLY: &str = include_str!("../../jobs/weekly.toml");

/// The jobs that need no file: name and text.
const EMBEDDED: [(&str, &str); 2] = [("nightly", NIGHTLY), ("weekly", WEEKLY)];

/// Lease time-to-live when a job file does not set `lease-ttl`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);

/// Backoff before the first retry when neither the step nor `[defaults]` sets one.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(30);

/// Names the run date and cutoff take in `sql` steps; job parameters may not use them.
pub const RESERVED_PARAMS: [&str; 2] = ["run_date", "cutoff"];

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
    /// Write the forecasts dataset and its manifest (and every model's forecast to `shadow/`).
    Publish,
    /// Score the forecasts of earlier run dates against the actuals that arrived since
    /// (`metrics/accuracy/`).
    Track,
    /// Run a read-only SQL file; optionally write its result as a dataset.
    Sql,
    /// Compute reorder points and orders from the published forecasts (`replenishment/`).
    Plan,
    /// POST the run's manifests to the configured webhooks; failures wait for the next run.
    Notify,
    /// Pull an ingestion source (`[sources.NAME]`) into its raw table.
    Ingest,
    /// Estimate what moves demand (elasticities, promotion uplift, seasonality) and write
    /// `factors/run_date=…/`.
    Factors,
    /// Write the run report (HTML, Markdown, JSON) next to the run in the lake.
    Report,
}

impl StepKind {
    /// The kind as written in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Checks => "checks",
            StepKind::Features => "features",
            StepKind::Train => "train",
            StepKind::Backtest => "backtest",
            StepKind::Predict => "predict",
            StepKind::Publish => "publish",
            StepKind::Track => "track",
            StepKind::Sql => "sql",
            StepKind::Plan => "plan",
            StepKind::Notify => "notify",
            StepKind::Ingest => "ingest",
            StepKind::Factors => "factors",
            StepKind::Report => "report",
        }
    }
}

/// The SQL of a `sql` step.
#[derive(Debug, Clone)]
pub struct SqlStep {
    /// The file, as resolved when the job was loaded.
    pub file: PathBuf,
    /// Its text, read when the job was loaded.
    pub text: String,
    /// Dataset name to write the result to (`outputs/<name>/run_date=…/`); `None`: rows are
    /// only counted.
    pub output: Option<String>,
}

/// One step of a job.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Step name, unique in the job.
    pub name: String,
    /// What it does.
    pub kind: StepKind,
    /// Steps that must succeed before this one runs.
    pub after: Vec<String>,
    /// Longest one attempt may take; `None`: no limit.
    pub timeout: Option<Duration>,
    /// Attempts after the first when an attempt fails.
    pub retries: u32,
    /// Wait before the first retry; it doubles for each further retry.
    pub backoff: Duration,
    /// The SQL of a `sql` step.
    pub sql: Option<SqlStep>,
    /// The source of an `ingest` step (`[sources.NAME]` in settings).
    pub source: Option<String>,
    /// A `backtest` step that backtests every time, whatever tracked accuracy or the last
    /// backtest's freshness would allow.
    pub always: bool,
    /// The windows of a `backtest` step; `None`: `[champion] windows`.
    pub windows: Option<usize>,
}

impl StepSpec {
    /// A step of `kind` named after it, with no retries and no timeout.
    pub fn of_kind(kind: StepKind) -> Self {
        Self {
            name: kind.as_str().to_string(),
            kind,
            after: Vec::new(),
            timeout: None,
            retries: 0,
            backoff: DEFAULT_BACKOFF,
            sql: None,
            source: None,
            always: false,
            windows: None,
        }
    }

    /// The wait before retry number `retry` (1 for the first).
    pub fn backoff_before(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(Duration::from_secs(24 * 3600))
    }
}

/// A job parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date (TOML `2026-01-01`).
    Date(NaiveDate),
}

impl Param {
    /// The value as JSON, for the run record.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Param::Text(s) => s.clone().into(),
            Param::Int(i) => (*i).into(),
            Param::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Param::Bool(b) => (*b).into(),
            Param::Date(d) => d.to_string().into(),
        }
    }
}

/// A job, checked.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Job name (used in run records, leases and paths).
    pub name: String,
    /// What the job is for.
    pub description: String,
    /// When it runs; `None`: only by hand.
    pub schedule: Option<Schedule>,
    /// What to do when a slot comes due while the previous run goes on.
    pub concurrency: Concurrency,
    /// What to do with slots missed while no scheduler ran.
    pub catch_up: CatchUp,
    /// How long the lease of a run lasts without renewal.
    pub lease_ttl: Duration,
    /// Parameters bound in `sql` steps.
    pub params: BTreeMap<String, Param>,
    /// Steps, in the order they run.
    pub steps: Vec<StepSpec>,
    /// Where the job was read from.
    pub origin: String,
}

/// A job file as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct JobFile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    concurrency: Concurrency,
    #[serde(default)]
    catch_up: CatchUp,
    lease_ttl: Option<Spanned<String>>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    defaults: Defaults,
    steps: Spanned<Vec<StepFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Defaults {
    timeout: Option<Spanned<String>>,
    retries: Option<u32>,
    backoff: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StepFile {
    name: Spanned<String>,
    kind: StepKind,
    after: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<String>>,
    retries: Option<u32>,
    backoff: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    output: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    always: Option<Spanned<bool>>,
    windows: Option<Spanned<usize>>,
}

/// Builds errors that name the file and the line of a span.
struct At<'a> {
    text: &'a str,
    origin: &'a str,
}

impl At<'_> {
    fn err(&self, span: std::ops::Range<usize>, message: impl std::fmt::Display) -> Error {
        let line = self.text[..span.start.min(self.text.len())].matches('\n').count() + 1;
        Error::JobSpec { path: self.origin.to_string(), message: format!("line {line}: {message}") }
    }

    fn duration(&self, v: &Spanned<String>) -> Result<Duration> {
        humantime::parse_duration(v.get_ref())
            .map_err(|e| self.err(v.span(), format!("`{}` is not a duration like 90s, 5m or 2h: {e}", v.get_ref())))
    }

    fn name(&self, v: &Spanned<String>, what: &str) -> Result<String> {
        let s = v.get_ref();
        let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(self.err(v.span(), format!("{what} `{s}` may only hold letters, digits, `_` and `-`")));
        }
        Ok(s.clone())
    }
}

impl JobSpec {
    /// Parses a job file's text; `origin` names it in errors, and relative `file`s of `sql`
    /// steps are resolved against `origin`'s folder.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let at = At { text, origin };
        let raw: JobFile = toml::from_str(text)
            .map_err(|e| Error::JobSpec { path: origin.to_string(), message: e.to_string().trim_end().to_string() })?;
        let name = at.name(&raw.name, "job name")?;
        let timezone = raw.timezone.as_ref().map_or("UTC", |t| t.get_ref().as_str());
        let schedule = match &raw.schedule {
            None => None,
            Some(s) => Some(Schedule::parse(s.get_ref(), timezone).map_err(|m| {
                let bad_zone = m.contains("time zone");
                let span = match (&raw.timezone, bad_zone) {
                    (Some(t), true) => t.span(),
                    _ => s.span(),
                };
                at.err(span, m)
            })?),
        };
        if schedule.is_none()
            && let Some(t) = &raw.timezone
        {
            // Still check the zone, so a typo is not found only when a schedule is added.
            Schedule::parse("0 0 0 * * *", t.get_ref()).map_err(|m| at.err(t.span(), m))?;
        }
        let lease_ttl = match &raw.lease_ttl {
            Some(v) => at.duration(v)?,
            None => DEFAULT_LEASE_TTL,
        };
        if lease_ttl < Duration::from_millis(300) {
            let span = raw.lease_ttl.as_ref().map(|v| v.span()).unwrap_or_default();
            return Err(at.err(span, "lease-ttl must be at least 300ms"));
        }
        let mut params = BTreeMap::new();
        for (k, v) in &raw.params {
            let valid = k.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid || RESERVED_PARAMS.contains(&k.as_str()) {
                return Err(at.err(
                    v.span(),
                    format!("parameter `{k}`: names are lower-case identifiers other than run_date and cutoff"),
                ));
            }
            let p = match v.get_ref() {
                toml::Value::String(s) => Param::Text(s.clone()),
                toml::Value::Integer(i) => Param::Int(*i),
                toml::Value::Float(f) => Param::Float(*f),
                toml::Value::Boolean(b) => Param::Bool(*b),
                toml::Value::Datetime(d) => match (d.date, d.time) {
                    (Some(date), None) => Param::Date(
                        NaiveDate::from_ymd_opt(date.year as i32, date.month as u32, date.day as u32)
                            .ok_or_else(|| at.err(v.span(), format!("parameter `{k}`: invalid date")))?,
                    ),
                    _ => return Err(at.err(v.span(), format!("parameter `{k}`: only dates, not times, are supported"))),
                },
                _ => {
                    return Err(at.err(v.span(), format!("parameter `{k}` must be a string, number, boolean or date")));
                }
            };
            params.insert(k.clone(), p);
        }
        let d_timeout = raw.defaults.timeout.as_ref().map(|v| at.duration(v)).transpose()?;
        let d_backoff = raw.defaults.backoff.as_ref().map(|v| at.duration(v)).transpose()?;
        let base = Path::new(origin).parent().map(Path::to_path_buf).unwrap_or_default();
        if raw.steps.get_ref().is_empty() {
            return Err(at.err(raw.steps.span(), "a job needs at least one step"));
        }
        let mut steps: Vec<StepSpec> = Vec::new();
        for s in raw.steps.get_ref() {
            let step_name = at.name(&s.name, "step name")?;
            if steps.iter().any(|p| p.name == step_name) {
                return Err(at.err(s.name.span(), format!("step name `{step_name}` is used twice")));
            }
            let after = match &s.after {
                Some(list) => list.iter().map(|a| a.get_ref().clone()).collect(),
                None => steps.last().map(|p: &StepSpec| vec![p.name.clone()]).unwrap_or_default(),
            };
            let sql = match (s.kind, &s.file) {
                (StepKind::Sql, None) => return Err(at.err(s.name.span(), "a sql step needs `file`")),
                (StepKind::Sql, Some(f)) => {
                    let file = base.join(f.get_ref());
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| at.err(f.span(), format!("cannot read {}: {e}", file.display())))?;
                    crate::query::ensure_read_only(&text).map_err(|e| at.err(f.span(), e))?;
                    let output = s.output.as_ref().map(|o| at.name(o, "output")).transpose()?;
                    Some(SqlStep { file, text, output })
                }
                (_, Some(f)) => return Err(at.err(f.span(), "`file` is only for sql steps")),
                (_, None) => {
                    if let Some(o) = &s.output {
                        return Err(at.err(o.span(), "`output` is only for sql steps"));
                    }
                    None
                }
            };
            let source = match (s.kind, &s.source) {
                (StepKind::Ingest, None) => {
                    return Err(at.err(s.name.span(), "an ingest step needs `source` (a [sources.NAME] in settings)"));
                }
                (StepKind::Ingest, Some(src)) => Some(at.name(src, "source")?),
                (_, Some(src)) => return Err(at.err(src.span(), "`source` is only for ingest steps")),
                (_, None) => None,
            };
            let backtest_only = s.always.as_ref().map(|a| a.span()).or_else(|| s.windows.as_ref().map(|w| w.span()));
            if s.kind != StepKind::Backtest
                && let Some(span) = backtest_only
            {
                return Err(at.err(span, "`always` and `windows` are only for backtest steps"));
            }
            if let Some(w) = &s.windows
                && *w.get_ref() == 0
            {
                return Err(at.err(w.span(), "a backtest step needs at least one window"));
            }
            steps.push(StepSpec {
                name: step_name,
                kind: s.kind,
                after,
                timeout: s.timeout.as_ref().map(|v| at.duration(v)).transpose()?.or(d_timeout),
                retries: s.retries.or(raw.defaults.retries).unwrap_or(0),
                backoff: s
                    .backoff
                    .as_ref()
                    .map(|v| at.duration(v))
                    .transpose()?
                    .or(d_backoff)
                    .unwrap_or(DEFAULT_BACKOFF),
                sql,
                source,
                always: s.always.as_ref().is_some_and(|a| *a.get_ref()),
                windows: s.windows.as_ref().map(|w| *w.get_ref()),
            });
        }
        // `after` names must exist.
        for (step, raw_step) in steps.iter().zip(raw.steps.get_ref()) {
            for (j, a) in step.after.iter().enumerate() {
                if !steps.iter().any(|s| &s.name == a) {
                    let span = raw_step.after.as_ref().map(|l| l[j].span()).unwrap_or_else(|| raw_step.name.span());
                    return Err(at.err(span, format!("step `{}` comes after `{a}`, which is no step", step.name)));
                }
            }
        }
        let order = topological(&steps).map_err(|i| {
            let s = &raw.steps.get_ref()[i];
            at.err(s.name.span(), format!("step `{}` is part of a cycle of `after`", s.name.get_ref()))
        })?;
        let steps = order.into_iter().map(|i| steps[i].clone()).collect();
        Ok(JobSpec {
            name,
            description: raw.description,
            schedule,
            concurrency: raw.concurrency,
            catch_up: raw.catch_up,
            lease_ttl,
            params,
            steps,
            origin: origin.to_string(),
        })
    }

    /// Loads job `name` from `dir/<name>.toml`; the embedded nightly or weekly job when that file
    /// does not exist.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(format!("{name}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && EMBEDDED.iter().any(|(n, _)| *n == name) => {
                let (_, text) = EMBEDDED.iter().find(|(n, _)| *n == name).expect("checked above");
                Self::parse(text, &format!("(embedded {name}.toml)"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::UnknownJob { name: name.to_string(), searched: dir.display().to_string() })
            }
            Err(e) => Err(Error::JobSpec { path: path.display().to_string(), message: e.to_string() }),
        }
    }

    /// Every `*.toml` in `dir`, by file name; the embedded nightly and weekly jobs when `dir` does
    /// not exist. Two files naming the same job are refused.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return EMBEDDED.iter().map(|(n, t)| Self::parse(t, &format!("(embedded {n}.toml)"))).collect();
            }
            Err(e) => return Err(Error::JobSpec { path: dir.display().to_string(), message: e.to_string() }),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        Self::load_files(&files)
    }

    /// The jobs of the given files. Two files naming the same job are refused.
    pub fn load_files(files: &[PathBuf]) -> Result<Vec<Self>> {
        let mut jobs: Vec<Self> = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Error::JobSpec { path: f.display().to_string(), message: e.to_string() })?;
            let job = Self::parse(&text, &f.display().to_string())?;
            if let Some(other) = jobs.iter().find(|j| j.name == job.name) {
                return Err(Error::JobSpec {
                    path: job.origin.clone(),
                    message: format!("job `{}` is also defined in {}", job.name, other.origin),
                });
            }
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// A job of the given steps, one per kind, named after them; for `shelfcast train` and `predict`.
    pub fn adhoc(name: &str, kinds: &[StepKind]) -> Self {
        let mut steps: Vec<StepSpec> = Vec::new();
        for k in kinds {
            let mut s = StepSpec::of_kind(*k);
            s.after = steps.last().map(|p| vec![p.name.clone()]).unwrap_or_default();
            steps.push(s);
        }
        Self {
            name: name.to_string(),
            description: String::new(),
            schedule: None,
            concurrency: Concurrency::default(),
            catch_up: CatchUp::default(),
            lease_ttl: DEFAULT_LEASE_TTL,
            params: BTreeMap::new(),
            steps,
            origin: format!("({name})"),
        }
    }
}

/// The steps' indices in an order that respects `after`, file order among equals; the index of
/// a step on a cycle when there is one.
fn topological(steps: &[StepSpec]) -> std::result::Result<Vec<usize>, usize> {
    let mut done = vec![false; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    while order.len() < steps.len() {
        let ready = (0..steps.len()).find(|&i| {
            !done[i] && steps[i].after.iter().all(|a| steps.iter().position(|s| &s.name == a).is_some_and(|j| done[j]))
        });
        match ready {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => return Err((0..steps.len()).find(|&i| !done[i]).unwrap_or(0)),
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weekly_job_backtests_every_time_over_more_windows() {
        let j = JobSpec::parse(WEEKLY, "weekly.toml").unwrap();
        assert_eq!(j.name, "weekly");
        let bt = j.steps.iter().find(|s| s.kind == StepKind::Backtest).unwrap();
        assert!(bt.always);
        assert_eq!(bt.windows, Some(4));
        assert!(j.schedule.is_some());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(JobSpec::load(dir.path(), "weekly").unwrap().name, "weekly", "embedded without a jobs folder");
        let names: Vec<String> =
            JobSpec::load_dir(&dir.path().join("none")).unwrap().into_iter().map(|j| j.name).collect();
        assert_eq!(names, ["nightly", "weekly"]);
    }

    #[test]
    fn always_and_windows_belong_to_backtest_steps() {
        let bad = "name = \"j\"\n[[steps]]\nname = \"t\"\nkind = \"train\"\nalways = true\n";
        let e = JobSpec::parse(bad, "j.toml").unwrap_err().to_string();
        assert!(e.contains("j.toml") && e.contains("line 5") && e.contains("only for backtest steps"), "{e}");
        let zero = "name = \"j\"\n[[steps]]\nname = \"b\"\nkind = \"backtest\"\nwindows = 0\n";
        let e = JobSpec::parse(zero, "j.toml").unwrap_err().to_string();
        assert!(e.contains("at least one window"), "{e}");
    }

    #[test]
    fn the_nightly_job_parses() {
        let j = JobSpec::parse(NIGHTLY, "nightly.toml").unwrap();
        assert_eq!(j.name, "nightly");
        assert_eq!(
            j.steps.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [
                StepKind::Checks,
                StepKind::Features,
                StepKind::Track,
                StepKind::Backtest,
                StepKind::Train,
                StepKind::Predict,
                StepKind::Publish,
                StepKind::Plan,
                StepKind::Notify,
                StepKind::Factors,
                StepKind::Report
            ]
        );
        assert_eq!(j.steps[1].after, ["checks"]);
        assert_eq!(j.steps[2].after, ["features"], "tracking does not wait for a fit");
        assert_eq!(j.steps[3].after, ["features"], "a failed tracking does not stop the champions' decision");
        assert!(!j.steps[3].always, "the nightly decides on tracked accuracy when it can");
        assert!(j.steps[10].after.is_empty(), "the report runs whatever happened before it");
        assert!(j.schedule.is_some());
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let err = JobSpec::parse("name = \"x\"\n[[steps]]\nname = \"a\"\nkind = \"train\"\nretry = 3\n", "jobs/x.toml")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("jobs/x.toml") && msg.contains("retry") && msg.contains("line 5"), "{msg}");
    }

    fn parse_err(text: &str) -> String {
        JobSpec::parse(text, "jobs/x.toml").unwrap_err().to_string()
    }

    const STEP: &str = "[[steps]]\nname = \"a\"\nkind = \"features\"\n";

    #[test]
    fn bad_cron_and_zones_name_file_and_line() {
        let msg = parse_err(&format!("name = \"x\"\nschedule = \"0 0 25 * * *\"\n{STEP}"));
        assert!(msg.contains("jobs/x.toml") && msg.contains("line 2") && msg.contains("cron"), "{msg}");
        let msg = parse_err(&format!("name = \"x\"\nschedule = \"0 2 * * *\"\n{STEP}"));
        assert!(msg.contains("line 2"), "five fields (no seconds) are refused: {msg}");
        let msg =
            parse_err(&format!("name = \"x\"\nschedule = \"0 0 2 * * *\"\n\ntimezone = \"Mars/Olympus\"\n{STEP}"));
        assert!(msg.contains("line 4") && msg.contains("time zone"), "{msg}");
        let msg = parse_err(&format!("name = \"x\"\ncatch-up = \"some\"\n{STEP}"));
        assert!(msg.contains("line 2") && msg.contains("some"), "{msg}");
        let msg = parse_err(&format!("name = \"x\"\n{STEP}timeout = \"soon\"\n"));
        assert!(msg.contains("line 5") && msg.contains("duration"), "{msg}");
    }

    #[test]
    fn steps_run_in_an_order_that_respects_after() {
        let text = r#"
name = "x"
[defaults]
retries = 2
backoff = "10s"
[[steps]]
name = "publish"
kind = "publish"
after = ["predict"]
[[steps]]
name = "features"
kind = "features"
after = []
[[steps]]
name = "predict"
kind = "predict"
after = ["features"]
retries = 0
timeout = "90s"
"#;
        let j = JobSpec::parse(text, "jobs/x.toml").unwrap();
        let names: Vec<_> = j.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["features", "predict", "publish"]);
        assert_eq!((j.steps[0].retries, j.steps[1].retries), (2, 0));
        assert_eq!(j.steps[1].timeout, Some(Duration::from_secs(90)));
        assert_eq!(j.steps[0].backoff_before(1), Duration::from_secs(10));
        assert_eq!(j.steps[0].backoff_before(3), Duration::from_secs(40));

        let msg = parse_err(&format!("name = \"x\"\n{STEP}after = [\"nope\"]\n"));
        assert!(msg.contains("line 5") && msg.contains("nope"), "{msg}");
        let cycle = "name = \"x\"\n[[steps]]\nname = \"a\"\nkind = \"train\"\nafter = [\"b\"]\n\
                     [[steps]]\nname = \"b\"\nkind = \"train\"\nafter = [\"a\"]\n";
        assert!(parse_err(cycle).contains("cycle"));
    }

    #[test]
    fn sql_steps_read_their_file_and_params_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sql")).unwrap();
        std::fs::write(dir.path().join("sql/n.sql"), "SELECT COUNT(*) AS n FROM sales WHERE date <= $cutoff").unwrap();
        std::fs::write(dir.path().join("sql/drop.sql"), "DROP TABLE sales").unwrap();
        std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
        let origin = dir.path().join("jobs/x.toml").display().to_string();
        let text = "name = \"x\"\n[params]\nmin_units = 2\nsince = 2026-01-01\n\
                    [[steps]]\nname = \"n\"\nkind = \"sql\"\nfile = \"../sql/n.sql\"\noutput = \"counts\"\n";
        let j = JobSpec::parse(text, &origin).unwrap();
        let sql = j.steps[0].sql.as_ref().unwrap();
        assert!(sql.text.contains("COUNT(*)"));
        assert_eq!(sql.output.as_deref(), Some("counts"));
        assert_eq!(j.params["min_units"], Param::Int(2));
        assert_eq!(j.params["since"], Param::Date("2026-01-01".parse().unwrap()));

        let err = JobSpec::parse(&text.replace("n.sql", "drop.sql"), &origin).unwrap_err().to_string();
        assert!(err.contains("line 8") && err.contains("read-only"), "{err}");
        let err = JobSpec::parse(&text.replace("n.sql", "gone.sql"), &origin).unwrap_err().to_string();
        assert!(err.contains("line 8") && err.contains("gone.sql"), "{err}");
        let err = JobSpec::parse(&text.replace("min_units", "run_date"), &origin).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("run_date"), "{err}");
    }
}
