//! The verbs that put data into the lake or read it: `demo`, `import`, `ingest`, `query`,
//! `features`, `factors`, `explain` and `vacuum`. Each calls the library's operation and prints
//! its report through [`shelfcast::output`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shelfcast::clock::Clock;
use shelfcast::demo::{self, DemoOptions};
use shelfcast::factors;
use shelfcast::features::{self, FeatureParams};
use shelfcast::ingest::import;
use shelfcast::jobs::history;
use shelfcast::output::{self, Format, data as out};
use shelfcast::settings::Settings;
use shelfcast::{engine, query};

use super::Cx;

/// `demo`'s flags.
pub(super) struct DemoArgs {
    pub series: usize,
    pub days: usize,
    pub end: Option<NaiveDate>,
    pub if_empty: bool,
    pub force: bool,
    pub local: bool,
}

pub(super) async fn demo(cx: &Cx, a: DemoArgs, format: Format) -> anyhow::Result<()> {
    let lake = &cx.lake;
    if demo::lake_has_sales(lake).await? {
        if a.if_empty {
            println!("lake {lake} already has sales; keeping it");
            return Ok(());
        }
        if !a.force {
            bail!("lake {lake} already has a sales table; pass --force to replace it or --if-empty to keep it");
        }
        demo::clear(lake).await?;
    }
    let end = a.end.unwrap_or_else(|| cx.clock.today() - chrono::Duration::days(1));
    let opts = DemoOptions { local: a.local, ..DemoOptions::new(a.series, a.days, end, cx.settings.seed) };
    let started = Instant::now();
    let pb = if cx.bars {
        let pb = ProgressBar::new(0);
        pb.set_draw_target(ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} items").expect("valid template"),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let report = demo::generate(lake, &opts, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })
    .await?;
    pb.finish_and_clear();
    let done = out::DemoDone {
        lake: lake.to_string(),
        seed: cx.settings.seed,
        seconds: started.elapsed().as_secs_f64(),
        demo: report,
    };
    Ok(output::print(format, &done, out::demo)?)
}

/// `import`'s flags.
pub(super) struct ImportArgs {
    pub source: PathBuf,
    pub table: String,
    pub map: Vec<(String, String)>,
    pub mapping: Option<PathBuf>,
    pub date_format: Option<String>,
    pub preset: Option<String>,
    pub wide: Vec<String>,
}

pub(super) async fn import(cx: &Cx, a: ImportArgs, format: Format) -> anyhow::Result<()> {
    let (lake, clock) = (&cx.lake, cx.clock.as_ref());
    let reports = match a.preset {
        Some(p) => import::import_preset(lake, &p, &a.source, clock).await?,
        None => {
            let mut m = match a.mapping {
                Some(f) => import::read_mapping(&f)?,
                None => Default::default(),
            };
            m.extend(a.map);
            let dates = a.date_format.as_deref();
            vec![if a.wide.is_empty() {
                import::import_file(lake, &a.table, &a.source, &m, dates, clock).await?
            } else {
                import::import_wide(lake, &a.table, &a.source, &m, &a.wide, dates, clock).await?
            }]
        }
    };
    Ok(output::print(format, &reports, |r| out::imports(r))?)
}

pub(super) async fn ingest(cx: &Cx, source: &str, format: Format) -> anyhow::Result<()> {
    let spec = cx.settings.sources.get(source).with_context(|| {
        let names: Vec<&str> = cx.settings.sources.keys().map(String::as_str).collect();
        format!(
            "no source `{source}` in settings (sources: {})",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        )
    })?;
    let secrets = shelfcast::secrets::Secrets::from_env();
    let r = shelfcast::ingest::pull::ingest(&cx.lake, source, spec, &secrets, cx.clock.as_ref()).await?;
    Ok(output::print(format, &r, out::ingest)?)
}

/// The parameters of `cutoff`, by default the nightly's cutoff for today.
async fn default_params(
    ctx: &datafusion::prelude::SessionContext,
    settings: &Settings,
    clock: &dyn Clock,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<FeatureParams> {
    let cutoff = match cutoff {
        Some(c) => c,
        None => features::default_cutoff(ctx, clock.today()).await?,
    };
    Ok(settings.feature_params(cutoff))
}

pub(super) async fn query(
    cx: &Cx,
    sql: &str,
    format: query::Format,
    output: Option<PathBuf>,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<()> {
    let settings = &cx.settings;
    query::ensure_read_only(sql)?;
    if format == query::Format::Parquet && output.is_none() {
        bail!("--format parquet needs --output FILE");
    }
    let ctx = query::catalog::open(
        &cx.lake,
        settings.engine_options(),
        |cutoff| settings.feature_params(cutoff),
        cx.clock.today(),
        cutoff,
        &[Arc::new(history::RunsTable)],
    )
    .await?;
    // Written batch by batch as the query produces them: the result is never held whole.
    let stream = query::stream(&ctx, sql).await?;
    match output {
        Some(path) => {
            let f = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            match query::write_stream(stream, format, std::io::BufWriter::new(f)).await {
                Ok(rows) => eprintln!("wrote {rows} rows to {}", path.display()),
                Err(e) => {
                    // No half-written result is left behind.
                    let _ = std::fs::remove_file(&path);
                    return Err(e.into());
                }
            }
        }
        None => {
            query::write_stream(stream, format, std::io::BufWriter::new(std::io::stdout())).await?;
        }
    }
    Ok(())
}

pub(super) async fn features(cx: &Cx, cutoff: Option<NaiveDate>, format: Format) -> anyhow::Result<()> {
    let (settings, lake, clock) = (&cx.settings, &cx.lake, cx.clock.as_ref());
    let (ctx, _) = engine::open_with(lake, settings.engine_options()).await?;
    let params = default_params(&ctx, settings, clock, cutoff).await?;
    let token = format!("features-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    let quality =
        shelfcast::quality::run(&ctx, lake, &settings.quality, clock.today(), params.cutoff, &token, clock).await?;
    let tables = features::materialize_all(&ctx, lake, params, &token, clock).await?;
    let done = out::FeaturesDone { cutoff: params.cutoff, quality, tables };
    Ok(output::print(format, &done, out::features)?)
}

pub(super) async fn factors(
    cx: &Cx,
    cutoff: Option<NaiveDate>,
    write: bool,
    importance: Option<factors::importance::ImportanceOptions>,
    format: Format,
) -> anyhow::Result<()> {
    let (settings, lake, clock) = (&cx.settings, &cx.lake, cx.clock.as_ref());
    let (ctx, _) = engine::open_with(lake, settings.engine_options()).await?;
    let params = default_params(&ctx, settings, clock, cutoff).await?;
    let token = format!("factors-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    let (mut analysis, observations) = factors::analyze_counted(&ctx, None, params, &settings.factors).await?;
    if let Some(opts) = importance {
        let started = Instant::now();
        let imp =
            factors::importance::run(&ctx, lake, &settings.backtest_config(), &opts, params.cutoff, &token, clock)
                .await?;
        eprintln!("importance measured in {:.1} s", started.elapsed().as_secs_f64());
        analysis.importance = Some(imp);
    }
    let written = if write {
        let run_date = params.cutoff + chrono::Duration::days(1);
        let m = factors::write(lake, &analysis, observations, params, run_date, &token, clock).await?;
        eprintln!("wrote {} rows ({} importance rows) to {}", m.rows, m.importance_rows, m.location);
        Some(m)
    } else {
        None
    };
    let truth = if lake.get_opt(&shelfcast::lake::layout::demo_truth()).await?.is_some() {
        Some(demo::read_truth(lake).await?)
    } else {
        None
    };
    let done = output::factors::FactorsDone { cutoff: params.cutoff, analysis, written, truth };
    Ok(output::print(format, &done, output::factors::factors)?)
}

pub(super) async fn explain(
    cx: &Cx,
    item: &str,
    location: Option<String>,
    cutoff: Option<NaiveDate>,
    format: Format,
) -> anyhow::Result<()> {
    let (ctx, _) = engine::open_with(&cx.lake, cx.settings.engine_options()).await?;
    let params = default_params(&ctx, &cx.settings, cx.clock.as_ref(), cutoff).await?;
    let analysis = factors::analyze(&ctx, params, &cx.settings.factors, Some(item)).await?;
    let mut explained = Vec::new();
    for model in &analysis.models {
        for key in model.series.keys() {
            let Some((i, l)) = key.split_once('|') else { continue };
            if i != item || location.as_deref().is_some_and(|want| want != l) {
                continue;
            }
            let h = factors::data::horizon(&ctx, params.cutoff, i, l).await?;
            explained.push(output::factors::SeriesExplained {
                item: i.to_string(),
                location: l.to_string(),
                category: model.category.clone(),
                rows: factors::explain::decompose(model, &analysis.groups, i, l, &h)?,
                local: factors::local::read(&ctx, params, i, l).await?,
            });
        }
    }
    if explained.is_empty() {
        bail!(
            "no fitted series for item {item}{}: the item is unknown, too new, or has no prices",
            location.map(|l| format!(" at {l}")).unwrap_or_default()
        );
    }
    Ok(output::print(format, &explained, |e| output::factors::explained(e))?)
}

pub(super) async fn vacuum(cx: &Cx, format: Format) -> anyhow::Result<()> {
    let lake = &cx.lake;
    let r = shelfcast::lake::vacuum::vacuum(lake, cx.clock.now()).await?;
    Ok(output::print(format, &r, |r| out::vacuum(r, &lake.to_string(), lake.grace()))?)
}
