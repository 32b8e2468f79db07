//! Settings: `shelfcast.toml`, then `SHELFCAST_*` environment variables, then
//! command-line flags, resolved once into a typed, validated [`Settings`].
//!
//! The file is parsed into [`SettingsFile`] (raw, every key optional, unknown
//! keys refused with their line), overrides from the environment and flags
//! arrive as [`Overrides`], and [`Settings::resolve`] checks ranges and turns
//! relative paths into paths next to the config file. Nothing downstream reads
//! the environment or the file again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::period::{Frequency, duration};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The commented default settings file that `shelfcast init` writes.
pub const DEFAULT_FILE: &str = include_str!("shelfcast.toml");

/// The file name looked for in the working directory when no `--config` is given.
pub const FILE_NAME: &str = "shelfcast.toml";

/// The settings file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SettingsFile {
    /// Lake location: a path relative to the file, or a URL.
    pub lake: Option<String>,
    /// How long replaced dataset files stay readable (`"1h"`).
    pub superseded_grace: Option<String>,
    /// `daily` or `weekly`.
    pub frequency: Option<Frequency>,
    /// Periods to forecast.
    pub horizon: Option<usize>,
    /// The last day of a week for the weekly grain (e.g. `sunday`, `friday`).
    pub week_ends_on: Option<String>,
    /// Quantile levels.
    pub quantiles: Option<Vec<f64>>,
    /// Model names, first is published.
    pub models: Option<Vec<String>>,
    /// Seasonal cycle length; 0 for the frequency's default.
    pub season_length: Option<usize>,
    /// Seed for all randomness.
    pub seed: Option<u64>,
    /// Worker threads; 0 for all cores.
    pub threads: Option<usize>,
    /// Models fitted side by side; 0: up to the threads.
    pub parallel_fits: Option<usize>,
    /// SQL memory budget in MiB; 0 for half the machine's memory.
    pub memory_limit_mb: Option<usize>,
    /// Where the feature SQL runs: `local`, `ballista-standalone` or `ballista://HOST:PORT`.
    pub engine: Option<String>,
    /// DataFusion configuration options for every SQL session (`datafusion.…` keys).
    pub sql_options: Option<BTreeMap<String, toml::Value>>,
    /// Folder of job files, relative to the file.
    pub jobs_dir: Option<String>,
    /// The TorchScript forecaster's file under `models/torchscript/` in the lake.
    pub torchscript_file: Option<String>,
    /// Object store options.
    pub storage: Option<BTreeMap<String, String>>,
    /// `stop` (default) or `quarantine`: what a raw Parquet file that cannot be read does.
    pub corrupt_files: Option<crate::catalog::CorruptFiles>,
    /// Data-quality checks.
    pub quality: Option<crate::quality::QualitySettings>,
    /// Members of the `ensemble` model.
    pub ensemble_members: Option<Vec<String>>,
    /// Champion selection.
    pub champion: Option<crate::evaluate::champion::ChampionSettings>,
    /// The train step's warm starts.
    pub train: Option<crate::models::warm::TrainSettings>,
    /// Hyperparameters per model name (`[model.lstm]`, …).
    pub model: Option<crate::models::params::ModelParams>,
    /// Forecast publication: CSV copy, stability threshold.
    pub publish: Option<crate::publish::PublishSettings>,
    /// Live accuracy tracking and shadow forecasts.
    pub tracking: Option<crate::evaluate::tracking::TrackingSettings>,
    /// Planner defaults.
    pub plan: Option<crate::plan::PlanSettings>,
    /// Influence-factor groups.
    pub factors: Option<crate::factors::FactorSettings>,
    /// Webhooks told about each publication, by name.
    pub webhooks: Option<BTreeMap<String, crate::publish::notify::WebhookSettings>>,
    /// Ingestion sources, by name.
    pub sources: Option<BTreeMap<String, crate::ingest::source::SourceSettings>>,
    /// The SQL endpoint of `shelfcast serve`.
    pub serve: Option<crate::serve::ServeSettings>,
}

impl SettingsFile {
    /// Parses settings text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::SettingsParse {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Reads and parses a settings file.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::SettingsRead { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }
}

/// Values from `SHELFCAST_*` variables and command-line flags, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--lake` / `SHELFCAST_LAKE`.
    pub lake: Option<String>,
    /// `--frequency` / `SHELFCAST_FREQUENCY`.
    pub frequency: Option<Frequency>,
    /// `--horizon` / `SHELFCAST_HORIZON`.
    pub horizon: Option<usize>,
    /// `--week-ends-on` / `SHELFCAST_WEEK_ENDS_ON`.
    pub week_ends_on: Option<String>,
    /// `--quantiles` / `SHELFCAST_QUANTILES`.
    pub quantiles: Option<Vec<f64>>,
    /// `--models` / `SHELFCAST_MODELS`.
    pub models: Option<Vec<String>>,
    /// `--seed` / `SHELFCAST_SEED`.
    pub seed: Option<u64>,
    /// `--threads` / `SHELFCAST_THREADS`.
    pub threads: Option<usize>,
}

/// Resolved, validated settings.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The settings file used, if any.
    pub config_path: Option<PathBuf>,
    /// Folder relative paths are resolved against (the config file's folder, or the working directory).
    pub base_dir: PathBuf,
    /// Lake URL, absolute (`file:///…` for local folders).
    pub lake: String,
    /// How long files a newer dataset version replaced (and files no manifest names) are kept
    /// before a commit or `vacuum` deletes them.
    #[serde(with = "duration")]
    pub superseded_grace: std::time::Duration,
    /// Forecast grain.
    pub frequency: Frequency,
    /// The last day of a week (weekly grain).
    #[serde(skip)]
    pub week_ends_on: chrono::Weekday,
    /// Periods to forecast.
    pub horizon: usize,
    /// Quantile levels, ascending.
    pub quantiles: Vec<f64>,
    /// Model names; the first is published.
    pub models: Vec<String>,
    /// Seasonal cycle length in periods.
    pub season_length: usize,
    /// Seed for all randomness.
    pub seed: u64,
    /// Worker threads (resolved, at least 1).
    pub threads: usize,
    /// Models fitted side by side (0: up to `threads`).
    pub parallel_fits: usize,
    /// SQL memory budget in MiB (0: half the machine's memory); beyond it sorts and aggregations spill to disk.
    pub memory_limit_mb: usize,
    /// Where the feature SQL runs (a Ballista engine only in builds with the `ballista` feature).
    pub engine: crate::engine::EngineKind,
    /// DataFusion configuration options set on every SQL session (key, value), checked.
    pub sql_options: Vec<(String, String)>,
    /// Folder of job files.
    pub jobs_dir: PathBuf,
    /// The TorchScript forecaster's file under `models/torchscript/` in the lake.
    pub torchscript_file: String,
    /// Object store options (no credentials).
    #[serde(skip)]
    pub storage: BTreeMap<String, String>,
    /// What a raw Parquet file that cannot be read does: stop the run, or quarantine the file.
    pub corrupt_files: crate::catalog::CorruptFiles,
    /// Data-quality checks.
    pub quality: crate::quality::QualitySettings,
    /// Members of the `ensemble` model (empty: the other configured models).
    pub ensemble_members: Vec<String>,
    /// Champion selection.
    pub champion: crate::evaluate::champion::ChampionSettings,
    /// The train step's warm starts.
    pub train: crate::models::warm::TrainSettings,
    /// Hyperparameters per model name.
    pub model: crate::models::params::ModelParams,
    /// Forecast publication.
    pub publish: crate::publish::PublishSettings,
    /// Live accuracy tracking and shadow forecasts.
    pub tracking: crate::evaluate::tracking::TrackingSettings,
    /// Planner defaults.
    pub plan: crate::plan::PlanSettings,
    /// Influence-factor groups (`[factors.groups]`).
    pub factors: crate::factors::FactorSettings,
    /// Webhooks, by name.
    pub webhooks: BTreeMap<String, crate::publish::notify::WebhookSettings>,
    /// Ingestion sources, by name (local paths resolved against the settings folder).
    pub sources: BTreeMap<String, crate::ingest::source::SourceSettings>,
    /// The SQL endpoint of `shelfcast serve` (certificate paths resolved against the settings folder).
    pub serve: crate::serve::ServeSettings,
}

/// Models fitted when settings name none: the baselines, the global trees and the two global deep
/// models, and the learned ensemble of them all; each segment publishes its backtest champion.
pub const DEFAULT_MODELS: &[&str] =
    &["seasonal_naive", "ets", "theta", "tsb", "gbt", "lstm", "transformer", "ensemble"];

/// Storage option keys that carry secrets: refused in the file.
const SECRET_MARKERS: &[&str] = &[
    "secret",
    "access_key",
    "account_key",
    "master_key",
    "token",
    "password",
    "sas",
    "credential",
    "service_account_key",
];

impl Settings {
    /// What the model registry reads: grain, horizon, quantiles, seed, threads, the configured
    /// models and their `[model.*]` parameters.
    pub fn models_config(&self) -> crate::models::ModelsConfig {
        crate::models::ModelsConfig {
            frequency: self.frequency,
            horizon: self.horizon,
            season_length: self.season_length,
            seed: self.seed,
            threads: self.threads,
            parallel_fits: self.parallel_fits,
            quantiles: self.quantiles.clone(),
            models: self.models.clone(),
            ensemble_members: self.ensemble_members.clone(),
            model: self.model.clone(),
        }
    }

    /// What a backtest reads: the models' configuration and the grain of the feature views.
    pub fn backtest_config(&self) -> crate::evaluate::backtest::BacktestConfig {
        crate::evaluate::backtest::BacktestConfig {
            models: self.models_config(),
            features: self.feature_params(crate::days::epoch()),
            warm_epochs: self.train.warm_backtest.then_some(self.train.fine_tune_epochs),
            champion: self.champion.clone(),
        }
    }

    /// The options of `[factors.importance]` (models: the configured ones when it names none).
    pub fn importance_options(&self) -> crate::factors::importance::ImportanceOptions {
        let i = &self.factors.importance;
        let models = if i.models.is_empty() { self.models.clone() } else { i.models.clone() };
        crate::factors::importance::ImportanceOptions {
            models,
            repeats: i.repeats,
            method: i.method,
            windows: i.windows,
            horizon: self.horizon,
            seed: self.seed,
            factors: self.factors.clone(),
        }
    }

    /// Where and how the SQL runs: threads, `memory-limit-mb` (0: half of the machine's
    /// memory), what to do with corrupt files, the engine and `[sql-options]`.
    pub fn engine_options(&self) -> crate::engine::EngineOptions {
        let memory_limit = match self.memory_limit_mb {
            0 => crate::engine::total_memory().map(|m| m / 2),
            mb => Some(mb * 1024 * 1024),
        };
        crate::engine::EngineOptions {
            threads: self.threads,
            memory_limit,
            corrupt_files: self.corrupt_files,
            engine: self.engine.clone(),
            sql_options: self.sql_options.clone(),
        }
    }

    /// The feature queries' parameters at `cutoff`: the grain, horizon and week of these settings.
    pub fn feature_params(&self, cutoff: chrono::NaiveDate) -> crate::features::FeatureParams {
        crate::features::FeatureParams::with_week_end(cutoff, self.frequency, self.horizon, self.week_ends_on)
    }

    /// Loads settings: `config` if given (it must exist), else `./shelfcast.toml` if present,
    /// else defaults relative to `cwd`; then applies `overrides`.
    pub fn load(config: Option<&Path>, cwd: &Path, overrides: Overrides) -> Result<Self> {
        let (file, path) = match config {
            Some(p) => (SettingsFile::read(p)?, Some(p.to_path_buf())),
            None => {
                let p = cwd.join(FILE_NAME);
                if p.is_file() { (SettingsFile::read(&p)?, Some(p)) } else { (SettingsFile::default(), None) }
            }
        };
        let base_dir = match &path {
            Some(p) => {
                let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                absolute(&cwd.join(parent))
            }
            None => absolute(cwd),
        };
        Self::resolve(file, overrides, base_dir, path)
    }

    /// Validates and combines a parsed file with overrides.
    pub fn resolve(file: SettingsFile, o: Overrides, base_dir: PathBuf, config_path: Option<PathBuf>) -> Result<Self> {
        let lake_raw = o.lake.or(file.lake).unwrap_or_else(|| "lake".to_string());
        let lake = resolve_lake_url(&lake_raw, &base_dir)?;
        let superseded_grace = match &file.superseded_grace {
            None => crate::lake::DEFAULT_GRACE,
            Some(g) => humantime::parse_duration(g)
                .map_err(|_| invalid("superseded-grace", format!("`{g}` is not a duration like 30m, 1h or 2h 30m")))?,
        };
        let frequency = o.frequency.or(file.frequency).unwrap_or(Frequency::Daily);
        let week_ends_on = match o.week_ends_on.or(file.week_ends_on) {
            None => chrono::Weekday::Sun,
            Some(w) => w.parse().map_err(|_| {
                invalid("week-ends-on", format!("expected a weekday such as `sunday` or `friday`, got `{w}`"))
            })?,
        };
        let horizon = o.horizon.or(file.horizon).unwrap_or(28);
        if horizon == 0 || horizon > 1000 {
            return Err(invalid("horizon", format!("must be between 1 and 1000 periods, got {horizon}")));
        }
        let mut quantiles = o.quantiles.or(file.quantiles).unwrap_or_else(|| vec![0.1, 0.5, 0.9]);
        for q in &quantiles {
            if !(q.is_finite() && *q > 0.0 && *q < 1.0) {
                return Err(invalid("quantiles", format!("every level must be strictly between 0 and 1, got {q}")));
            }
        }
        quantiles.sort_by(f64::total_cmp);
        quantiles.dedup();
        let models = o.models.or(file.models).unwrap_or_else(|| DEFAULT_MODELS.iter().map(|m| m.to_string()).collect());
        if models.is_empty() {
            return Err(invalid("models", "name at least one model"));
        }
        let season_length = match file.season_length.unwrap_or(0) {
            0 => frequency.default_season(),
            n => n,
        };
        let seed = o.seed.or(file.seed).unwrap_or(42);
        let threads = match o.threads.or(file.threads).unwrap_or(0) {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        let engine = match file.engine {
            None => crate::engine::EngineKind::Local,
            Some(e) => crate::engine::EngineKind::parse(&e).map_err(|m| invalid("engine", m))?,
        };
        if engine.is_ballista() && !cfg!(feature = "ballista") {
            return Err(invalid("engine", crate::engine::no_ballista(&engine)));
        }
        let jobs_dir = base_dir.join(file.jobs_dir.unwrap_or_else(|| "jobs".to_string()));
        let torchscript_file = file.torchscript_file.unwrap_or_else(|| "forecaster.pt".to_string());
        if torchscript_file.is_empty() || torchscript_file.contains(['/', '\\']) {
            return Err(invalid(
                "torchscript-file",
                format!("must be a file name without folders, got `{torchscript_file}`"),
            ));
        }
        let storage = file.storage.unwrap_or_default();
        for key in storage.keys() {
            let k = key.to_ascii_lowercase();
            if SECRET_MARKERS.iter().any(|m| k.contains(m)) {
                return Err(invalid(
                    &format!("storage.{key}"),
                    "credentials are never read from the settings file; set them in the environment",
                ));
            }
        }
        let quality = file.quality.unwrap_or_default();
        if let Some(c) = &file.champion
            && !(0.0..1.0).contains(&c.margin)
        {
            return Err(invalid("champion.margin", format!("must be in [0, 1), got {}", c.margin)));
        }
        quality.validate()?;
        let model = file.model.unwrap_or_default();
        model.validate()?;
        let publish = file.publish.unwrap_or_default();
        if !(publish.jump_threshold.is_finite() && publish.jump_threshold > 0.0) {
            return Err(invalid("publish.jump-threshold", format!("must be > 0, got {}", publish.jump_threshold)));
        }
        let plan = file.plan.unwrap_or_default();
        plan.validate().map_err(|(k, m)| invalid(&k, m))?;
        let factors = file.factors.unwrap_or_default();
        factors.validate().map_err(|(k, m)| invalid(&k, m))?;
        let webhooks = file.webhooks.unwrap_or_default();
        for (name, hook) in &webhooks {
            hook.validate(name).map_err(|m| invalid(&format!("webhooks.{name}"), m))?;
        }
        let sql_options = crate::engine::sql_options(file.sql_options.unwrap_or_default())
            .map_err(|(key, m)| invalid(&format!("sql-options.{key}"), m))?;
        let mut sources = file.sources.unwrap_or_default();
        for (name, source) in sources.iter_mut() {
            source.resolve(name, &base_dir).map_err(|m| invalid(&format!("sources.{name}"), m))?;
        }
        let mut serve = file.serve.unwrap_or_default();
        for path in [&mut serve.tls_cert, &mut serve.tls_key].into_iter().flatten() {
            *path = base_dir.join(&*path);
        }
        Ok(Self {
            config_path,
            base_dir,
            lake,
            superseded_grace,
            frequency,
            week_ends_on,
            horizon,
            quantiles,
            models,
            season_length,
            seed,
            threads,
            parallel_fits: file.parallel_fits.unwrap_or(0),
            memory_limit_mb: file.memory_limit_mb.unwrap_or(0),
            engine,
            sql_options,
            jobs_dir,
            torchscript_file,
            storage,
            corrupt_files: file.corrupt_files.unwrap_or_default(),
            quality,
            ensemble_members: file.ensemble_members.unwrap_or_default(),
            champion: file.champion.unwrap_or_default(),
            train: file.train.unwrap_or_default(),
            model,
            publish,
            tracking: file.tracking.unwrap_or_default(),
            plan,
            factors,
            webhooks,
            sources,
            serve,
        })
    }
}

fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::InvalidSetting { key: key.to_string(), message: message.into() }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Turns a lake location into an absolute URL: a bare path becomes `file://` relative to `base`.
pub fn resolve_lake_url(raw: &str, base: &Path) -> Result<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(invalid("lake", "must not be empty"));
    }
    if let Some(rest) = raw.strip_prefix("file://") {
        // `file://relative/path` is accepted as relative to the config folder.
        let path = if rest.starts_with('/') { PathBuf::from(rest) } else { base.join(rest) };
        return local_url(&path, raw);
    }
    if raw.contains("://") || raw.starts_with("memory:") {
        return url::Url::parse(raw)
            .map(|u| u.to_string())
            .map_err(|e| Error::LakeUrl { url: raw.to_string(), message: e.to_string() });
    }
    local_url(&base.join(raw), raw)
}

fn local_url(path: &Path, raw: &str) -> Result<String> {
    let abs = absolute(path);
    let mut url = url::Url::from_directory_path(&abs).map_err(|()| Error::LakeUrl {
        url: raw.to_string(),
        message: format!("{} is not an absolute path", abs.display()),
    })?;
    // Normalise `..` segments away so the lake has one spelling.
    let path = url.path().to_owned();
    url.set_path(&path);
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_parses_to_the_defaults() {
        let file = SettingsFile::parse(DEFAULT_FILE, Path::new("default")).unwrap();
        let s = Settings::resolve(file, Overrides::default(), PathBuf::from("/srv/fc"), None).unwrap();
        let d =
            Settings::resolve(SettingsFile::default(), Overrides::default(), PathBuf::from("/srv/fc"), None).unwrap();
        assert_eq!(s.lake, "file:///srv/fc/lake/");
        assert_eq!(s.lake, d.lake);
        assert_eq!(s.horizon, d.horizon);
        assert_eq!(s.quantiles, d.quantiles);
        assert_eq!(s.models, d.models);
        assert_eq!(s.season_length, 7);
        assert_eq!(s.superseded_grace, d.superseded_grace);
        assert_eq!(s.superseded_grace, std::time::Duration::from_secs(3600));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let err = SettingsFile::parse("horizon = 7\nhorizn = 3\n", Path::new("x.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.toml") && msg.contains("horizn") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn overrides_win_and_ranges_are_checked() {
        let file = SettingsFile { horizon: Some(7), ..Default::default() };
        let o = Overrides { horizon: Some(14), ..Default::default() };
        let s = Settings::resolve(file, o, PathBuf::from("/a"), None).unwrap();
        assert_eq!(s.horizon, 14);
        let bad = Overrides { quantiles: Some(vec![0.5, 1.0]), ..Default::default() };
        let err = Settings::resolve(SettingsFile::default(), bad, PathBuf::from("/a"), None).unwrap_err();
        assert!(err.to_string().contains("quantiles"));
    }

    #[test]
    fn quality_settings_are_checked() {
        let file = SettingsFile::parse(
            "[quality]\nreturns = \"drop\"\n[quality.checks.duplicate_keys]\nblocking = true\nmax-share = 0.01\n",
            Path::new("q.toml"),
        )
        .unwrap();
        let s = Settings::resolve(file, Overrides::default(), PathBuf::from("/a"), None).unwrap();
        assert_eq!(s.quality.returns, crate::quality::Returns::Drop);
        let file =
            SettingsFile::parse("[quality.checks.no_such_check]\nblocking = true\n", Path::new("q.toml")).unwrap();
        let err = Settings::resolve(file, Overrides::default(), PathBuf::from("/a"), None).unwrap_err();
        assert!(err.to_string().contains("quality.checks.no_such_check"), "{err}");
    }

    #[test]
    fn credentials_in_the_file_are_refused() {
        let file = SettingsFile::parse("[storage]\naws_secret_access_key = \"x\"\n", Path::new("s.toml")).unwrap();
        let err = Settings::resolve(file, Overrides::default(), PathBuf::from("/a"), None).unwrap_err();
        assert!(err.to_string().contains("storage.aws_secret_access_key"));
    }

    #[test]
    fn azure_account_keys_in_the_file_are_refused() {
        for key in ["azure_storage_account_key", "account_key", "master_key", "AZURE_STORAGE_MASTER_KEY"] {
            let file = SettingsFile::parse(&format!("[storage]\n{key} = \"x\"\n"), Path::new("s.toml")).unwrap();
            let err = Settings::resolve(file, Overrides::default(), PathBuf::from("/a"), None).unwrap_err();
            assert!(err.to_string().contains(&format!("storage.{key}")), "{key}: {err}");
        }
    }

    #[test]
    fn engine_is_local_by_default_and_ballista_needs_the_feature() {
        use crate::engine::EngineKind;
        let s = Settings::resolve(SettingsFile::default(), Overrides::default(), PathBuf::from("/a"), None).unwrap();
        assert_eq!(s.engine, EngineKind::Local);
        let parse = |e: &str| {
            let file = SettingsFile::parse(&format!("engine = \"{e}\"\n"), Path::new("e.toml")).unwrap();
            Settings::resolve(file, Overrides::default(), PathBuf::from("/a"), None)
        };
        let err = parse("spark://x").unwrap_err().to_string();
        assert!(err.contains("engine") && err.contains("ballista://HOST:PORT"), "{err}");
        assert!(parse("ballista://").is_err());
        for (e, want) in [
            ("ballista://sched.internal:50051", EngineKind::Ballista { host: "sched.internal".into(), port: 50051 }),
            ("ballista://10.0.0.5", EngineKind::Ballista { host: "10.0.0.5".into(), port: 50050 }),
            ("ballista-standalone", EngineKind::BallistaStandalone),
        ] {
            if cfg!(feature = "ballista") {
                assert_eq!(parse(e).unwrap().engine, want);
            } else {
                let err = parse(e).unwrap_err().to_string();
                assert!(err.contains("--features ballista"), "{err}");
            }
        }
    }

    #[test]
    fn sql_options_reach_the_session_and_bad_ones_name_the_key() {
        let parse = |text: &str| {
            let file = SettingsFile::parse(text, Path::new("o.toml")).unwrap();
            Settings::resolve(file, Overrides::default(), PathBuf::from("/a"), None)
        };
        let s = parse("[sql-options]\n\"optimizer.prefer_hash_join\" = false\n\"datafusion.optimizer.repartition_joins\" = false\n")
            .unwrap();
        assert_eq!(
            s.sql_options,
            vec![
                ("datafusion.optimizer.repartition_joins".to_string(), "false".to_string()),
                ("datafusion.optimizer.prefer_hash_join".to_string(), "false".to_string()),
            ]
        );
        let ctx = crate::engine::context(s.engine_options());
        let state = ctx.state();
        assert!(!state.config().options().optimizer.prefer_hash_join);
        assert!(!state.config().options().optimizer.repartition_joins);

        let err = parse("[sql-options]\n\"optimizer.no_such_option\" = 1\n").unwrap_err().to_string();
        assert!(err.contains("sql-options.optimizer.no_such_option"), "{err}");
        let err = parse("[sql-options]\n\"optimizer.prefer_hash_join\" = \"maybe\"\n").unwrap_err().to_string();
        assert!(err.contains("sql-options.optimizer.prefer_hash_join"), "{err}");
        let err = parse("[sql-options]\n\"optimizer.prefer_hash_join\" = [1]\n").unwrap_err().to_string();
        assert!(err.contains("expected a string, number or boolean"), "{err}");
    }

    #[test]
    fn lake_urls_resolve() {
        let base = Path::new("/srv/fc");
        assert_eq!(resolve_lake_url("lake", base).unwrap(), "file:///srv/fc/lake/");
        assert_eq!(resolve_lake_url("../other", base).unwrap(), "file:///srv/other/");
        assert_eq!(resolve_lake_url("file:///data/l", base).unwrap(), "file:///data/l/");
        assert_eq!(resolve_lake_url("file://rel", base).unwrap(), "file:///srv/fc/rel/");
        assert_eq!(resolve_lake_url("s3://bucket/p", base).unwrap(), "s3://bucket/p");
        assert!(resolve_lake_url("memory://", base).unwrap().starts_with("memory:"));
    }
}
