//! The crate's error type.
//!
//! Every failure a caller may need to branch on, or whose message needs
//! context (a table, a column, a file, a run date), has its own variant.
//! Upstream errors convert with `?` through `#[from]`; the binary edge
//! (`src/cli/`) is the only place that turns them into `anyhow` chains.

use std::path::PathBuf;

/// Result with the crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside shelfcast.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A settings file could not be read.
    #[error("cannot read settings file {path}")]
    SettingsRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A settings file is not valid TOML or has unknown keys.
    #[error("invalid settings in {path}: {message}")]
    SettingsParse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        message: String,
    },

    /// A settings value is out of range or inconsistent.
    #[error("invalid setting `{key}`: {message}")]
    InvalidSetting {
        /// The kebab-case key.
        key: String,
        /// Why it is refused.
        message: String,
    },

    /// The lake URL cannot be turned into an object store.
    #[error("invalid lake URL `{url}`: {message}")]
    LakeUrl {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        message: String,
    },

    /// A raw table the pipeline needs is not in the lake.
    #[error("required table `{table}` is missing: no Parquet files under {location}")]
    MissingTable {
        /// The table name.
        table: String,
        /// Where it was looked for.
        location: String,
    },

    /// A raw table lacks a declared column.
    #[error("table `{table}` has no column `{column}` (expected {expected})")]
    MissingColumn {
        /// The table name.
        table: String,
        /// The missing column.
        column: String,
        /// The declared type.
        expected: String,
    },

    /// A raw table column has a type other than the declared one.
    #[error("table `{table}` column `{column}`: expected {expected}, found {found}")]
    ColumnType {
        /// The table name.
        table: String,
        /// The column.
        column: String,
        /// The declared type.
        expected: String,
        /// The type found in the files.
        found: String,
    },

    /// A raw data file cannot be read (truncated, not Parquet, corrupt footer).
    #[error("corrupt Parquet file {path}: {message} (remove or replace it, or set corrupt-files = \"quarantine\")")]
    CorruptFile {
        /// The file.
        path: String,
        /// What the reader said.
        message: String,
    },

    /// A path segment from settings or data would leave its folder.
    #[error("unsafe {what} `{value}`: {message}")]
    UnsafePath {
        /// What the value names (a job, a webhook, a partition value, …).
        what: String,
        /// The value as given.
        value: String,
        /// Why it is refused.
        message: String,
    },

    /// A statement that would change the lake was passed to `query`.
    #[error(
        "shelfcast SQL is read-only: {statement} statements are refused (use SELECT, WITH, EXPLAIN, SHOW or DESCRIBE)"
    )]
    ReadOnly {
        /// The kind of statement refused, e.g. `DROP`.
        statement: String,
    },

    /// A blocking data-quality check found more violations than allowed.
    #[error("data-quality gate failed: {failures}")]
    QualityGate {
        /// Each failed check with its count and quarantine location.
        failures: String,
    },

    /// A job file is malformed.
    #[error("invalid job file {path}: {message}")]
    JobSpec {
        /// The file.
        path: String,
        /// What is wrong, with line and column where known.
        message: String,
    },

    /// No job of this name exists.
    #[error("no job named `{name}` (looked in {searched})")]
    UnknownJob {
        /// The job name.
        name: String,
        /// Where it was looked for.
        searched: String,
    },

    /// A model name in settings is not one shelfcast knows.
    #[error("unknown model `{name}` (known: {known})")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The names accepted.
        known: String,
    },

    /// The data does not allow the requested operation.
    #[error("{0}")]
    Data(String),

    /// A published dataset or manifest is inconsistent.
    #[error("dataset {path} is invalid: {message}")]
    Dataset {
        /// Where the dataset lives.
        path: String,
        /// What is wrong.
        message: String,
    },

    /// A step of a job failed.
    #[error("step `{step}` of job `{job}` failed")]
    Step {
        /// The job name.
        job: String,
        /// The step name.
        step: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },

    /// Another process runs this job for this run date now.
    #[error("job `{job}` for {run_date} is already running: {holder} holds its lease until {expires_at}")]
    LeaseHeld {
        /// The job name.
        job: String,
        /// The run date.
        run_date: chrono::NaiveDate,
        /// Who holds the lease.
        holder: String,
        /// When the lease lapses unless renewed.
        expires_at: chrono::DateTime<chrono::Utc>,
    },

    /// A lease this process held was taken over or could not be renewed.
    #[error("lost the lease {lease}: {message}")]
    LeaseLost {
        /// The lease folder.
        lease: String,
        /// What happened.
        message: String,
    },

    /// A run or step was stopped from outside (shutdown, lost lease).
    #[error("cancelled: {0}")]
    Cancelled(String),

    /// A step ran past its timeout.
    #[error("timed out after {0}")]
    Timeout(String),

    /// An HTTP request (a webhook delivery, a source page) failed, after its retries.
    #[error("{target}: {message} (after {attempts} attempt(s))")]
    Http {
        /// What was requested: a URL without credentials, or a webhook's name.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure: a status with the start of its body, a timeout, a connection error.
        message: String,
        /// The status of the last answer, when the server answered (not a 2xx).
        status: Option<u16>,
    },

    /// An ingestion source is misconfigured or sent something that cannot be read.
    #[error("source `{name}`: {message}")]
    Source {
        /// The source's name in settings (`[sources.NAME]`).
        name: String,
        /// What is wrong, with the page or file where known.
        message: String,
    },

    /// The Ballista cluster the feature SQL runs on could not be started, reached or used.
    #[error("Ballista engine `{engine}`: {message}")]
    Ballista {
        /// The `engine` setting (`ballista://HOST:PORT` or `ballista-standalone`).
        engine: String,
        /// What failed.
        message: String,
    },

    /// Object storage failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),

    /// An object path is malformed.
    #[error("object path: {0}")]
    ObjectPath(#[from] object_store::path::Error),

    /// DataFusion failed to plan or run a query.
    #[error("SQL: {0}{hint}", hint = sql_hint(.0))]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// libtorch failed.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),

    /// JSON encoding or decoding failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// Local I/O failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    /// A blocking task panicked or was cancelled.
    #[error("background task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Builds an [`Error::Data`] from anything printable.
    pub fn data(message: impl Into<String>) -> Self {
        Error::Data(message.into())
    }

    /// Whether the error stops the whole run (it was cancelled or timed out) rather than being
    /// one model's own failure to fit or forecast, which a run goes on without.
    pub fn stops_the_run(&self) -> bool {
        matches!(self, Error::Cancelled(_) | Error::Timeout(_))
    }

    /// A model's fit or forecast, split as a run goes on without a failed model: `Err` when the
    /// error stops the whole run ([`Error::stops_the_run`]), else `Ok` with the model's own
    /// outcome.
    pub fn model_outcome<T>(result: Result<T>) -> Result<Result<T>> {
        match result {
            Err(e) if e.stops_the_run() => Err(e),
            outcome => Ok(outcome),
        }
    }
}

/// What to try when a query ran out of its memory budget in an operator that cannot spill.
fn sql_hint(e: &datafusion::error::DataFusionError) -> &'static str {
    let text = e.to_string();
    if !text.contains("Resources exhausted") {
        ""
    } else if text.contains("HashJoin") {
        " (hash joins hold their build side in memory: raise `memory-limit-mb`, or set \
         `\"optimizer.prefer_hash_join\" = false` under `[sql-options]` for sort-merge joins, which spill)"
    } else {
        " (raise `memory-limit-mb`, or lower `threads` so fewer partitions share the budget)"
    }
}
