//! SQL feature benchmark: runs a feature query (the peers' `features.sql`) unchanged on
//! shelfcast's engine over one Parquet fact table registered as `sales`, writes the result
//! as Parquet, and prints one JSON line: wall and CPU seconds, peak RSS, rows in and out.
//!
//! `scripts/bench_sql.sh` drives it against DuckDB. By hand:
//! `cargo bench --bench sql_features -- --input sales.parquet --sql features.sql --output out.parquet`

use std::fs::File;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ParquetColumnOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::{ParquetReadOptions, SessionContext, col};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::json;
use shelfcast::engine::EngineOptions;

/// Command line (cargo bench appends `--bench`, which is accepted and ignored).
#[derive(Parser)]
#[command(about = "shelfcast SQL feature benchmark")]
struct Args {
    /// Fact table (Parquet), registered as `sales`.
    #[arg(long)]
    input: Option<String>,
    /// SQL file, run as it is.
    #[arg(long)]
    sql: Option<String>,
    /// Output Parquet file (replaced).
    #[arg(long)]
    output: Option<String>,
    /// Worker threads and partitions (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Extra DataFusion settings, `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Do not declare the input's sort order (item_id, store_id, date).
    #[arg(long)]
    no_sort_order: bool,
    /// Memory budget of the session in MiB (sorts and aggregations spill beyond it); default none.
    #[arg(long)]
    memory_limit_mb: Option<usize>,
    /// Run window functions with DataFusion's own operator instead of shelfcast's rolling one.
    #[arg(long)]
    datafusion_windows: bool,
    /// Dictionary-encode Float64 output columns too (Parquet writer default).
    #[arg(long)]
    float_dictionary: bool,
    /// Print the physical plan on stderr.
    #[arg(long)]
    explain: bool,
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (Some(input), Some(sql), Some(output)) = (&args.input, &args.sql, &args.output) else {
        eprintln!("sql_features: pass --input FILE --sql FILE --output FILE (see scripts/bench_sql.sh)");
        return Ok(());
    };
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let sql = std::fs::read_to_string(sql).with_context(|| format!("reading {sql}"))?;
    let rows_in = parquet_rows(input)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let start = Instant::now();
    let rows_out = runtime.block_on(run(&args, threads, input, &sql, output))?;
    let wall_s = start.elapsed().as_secs_f64();
    let (cpu_s, peak_rss_mb) = (cpu_seconds()?, peak_rss_mb()?);
    let report = json!({
        "engine": "shelfcast",
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "peak_rss_mb": peak_rss_mb,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_per_s": rows_in as f64 / wall_s,
        "threads": threads,
        "sort_order_declared": !args.no_sort_order,
        "rolling_windows": !args.datafusion_windows,
        "float_dictionary": args.float_dictionary,
        "memory_limit_mb": args.memory_limit_mb,
        "settings": settings(&args),
    });
    println!("{report}");
    Ok(())
}

/// Settings for this query: the item-level price table (one row per item and day) is small
/// enough for one shared hash table, so the join keeps the fact table's order, and an
/// order-preserving repartition then feeds the per-series windows without a sort. Batches of
/// 64Ki rows (shelfcast's default: 16Ki) save a few percent of CPU for ~90 MB more memory.
const QUERY_SETTINGS: [(&str, &str); 3] = [
    ("datafusion.optimizer.repartition_joins", "false"),
    ("datafusion.optimizer.prefer_existing_sort", "true"),
    ("datafusion.execution.batch_size", "65536"),
];

/// This query's settings, then the `--set` ones, as `key=value`.
fn settings(args: &Args) -> Vec<String> {
    QUERY_SETTINGS.iter().map(|(k, v)| format!("{k}={v}")).chain(args.settings.iter().cloned()).collect()
}

/// The session: shelfcast's, with this query's settings and then the `--set` ones.
fn session(args: &Args, threads: usize) -> Result<SessionContext> {
    let memory_limit = args.memory_limit_mb.map(|mb| mb * 1024 * 1024);
    let mut ctx = shelfcast::engine::context(EngineOptions { memory_limit, ..EngineOptions::threads(threads) });
    if args.datafusion_windows {
        let rules =
            ctx.state().physical_optimizers().iter().filter(|r| r.name() != "rolling_window").cloned().collect();
        let state = SessionStateBuilder::new_from_existing(ctx.state()).with_physical_optimizer_rules(rules).build();
        ctx = SessionContext::new_with_state(state);
    }
    for kv in settings(args) {
        let (key, value) = kv.split_once('=').with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
        let state = ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().set(key, value).with_context(|| format!("--set {kv}"))?;
    }
    Ok(ctx)
}

/// Registers the input, runs the query and streams the result into `output`; returns rows written.
async fn run(args: &Args, threads: usize, input: &str, sql: &str, output: &str) -> Result<u64> {
    let ctx = session(args, threads)?;
    let mut options = ParquetReadOptions::default();
    if !args.no_sort_order {
        let order = ["item_id", "store_id", "date"].map(|c| col(c).sort(true, false));
        options = options.file_sort_order(vec![order.to_vec()]);
    }
    ctx.register_parquet("sales", input, options).await.with_context(|| format!("registering {input}"))?;
    let df = ctx.sql(sql).await.context("planning the query")?;
    if args.explain {
        let plan = df.clone().create_physical_plan().await?;
        eprintln!("{}", displayable(plan.as_ref()).indent(true));
    }
    // Float features rarely repeat: dictionary-encoding them costs time and saves nothing.
    let mut parquet = ctx.state().default_table_options().parquet;
    if !args.float_dictionary {
        for field in df.schema().fields().iter().filter(|f| f.data_type() == &DataType::Float64) {
            let no_dictionary = ParquetColumnOptions { dictionary_enabled: Some(false), ..Default::default() };
            parquet.column_specific_options.insert(field.name().clone(), no_dictionary);
        }
    }
    if std::path::Path::new(output).exists() {
        std::fs::remove_file(output).with_context(|| format!("replacing {output}"))?;
    }
    let written = df
        .write_parquet(output, DataFrameWriteOptions::new().with_single_file_output(true), Some(parquet))
        .await
        .with_context(|| format!("writing {output}"))?;
    count_written(&written)
}

/// The row count a DataFusion write returns (one `count` column).
fn count_written(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Result<u64> {
    let mut total = 0;
    for b in batches {
        let counts = b
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::UInt64Array>()
            .context("the write returned no row count")?;
        total += counts.values().iter().sum::<u64>();
    }
    Ok(total)
}

/// Rows in a Parquet file, from its footer.
fn parquet_rows(path: &str) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {path}"))?;
    let reader = SerializedFileReader::new(file).with_context(|| format!("reading the footer of {path}"))?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

/// User + system CPU seconds of this process (`/proc/self/stat`, in USER_HZ = 100 ticks).
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("parsing /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() < 13 {
        bail!("parsing /proc/self/stat: too few fields");
    }
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// Peak resident set size in MiB (`VmHWM` in `/proc/self/status`).
fn peak_rss_mb() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kb: f64 = line.split_whitespace().nth(1).context("parsing VmHWM")?.parse()?;
    Ok(kb / 1024.0)
}
