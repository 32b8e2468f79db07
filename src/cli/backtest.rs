//! `shelfcast backtest`: a rolling-origin backtest of the configured models over the lake's
//! whole history, stored under `backtests/` with its forecasts, and optionally exported in
//! `score.py`'s format.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use shelfcast::evaluate::backtest::{self, BacktestOptions};
use shelfcast::output::{self, Format, backtest::BacktestDone};
use shelfcast::{engine, progress};

use super::Cx;

/// `backtest`'s flags.
pub(super) struct BacktestArgs {
    pub windows: usize,
    pub horizon: Option<usize>,
    pub step: Option<usize>,
    pub export: Option<PathBuf>,
    pub export_actuals: Option<PathBuf>,
}

pub(super) async fn backtest(cx: &Cx, a: BacktestArgs, format: Format) -> anyhow::Result<()> {
    let (settings, lake, clock) = (&cx.settings, &cx.lake, cx.clock.as_ref());
    let horizon = a.horizon.unwrap_or(settings.horizon);
    let windows = a.windows;
    // The published forecast replays the champion rule from the first scored window, with the
    // learned ensemble among the candidates there too.
    let opts = BacktestOptions::new(windows, horizon, a.step.unwrap_or(horizon), settings.models.clone())
        .with_ensemble_from_first(true);
    let started = Instant::now();
    progress::set_step("backtest: reading the lake");
    let (ctx, _) = engine::open_with(lake, settings.engine_options()).await?;
    let run_id = format!("backtest-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    shelfcast::quality::run(&ctx, lake, &settings.quality, clock.today(), clock.today(), &run_id, clock).await?;
    let (full, last) = backtest::full_panel(&ctx, &settings.backtest_config()).await?;
    progress::set_step(&format!(
        "backtest: {} windows × {} models over {} series",
        windows,
        opts.models.len(),
        full.len()
    ));
    let full = Arc::new(full);
    let mut extra = serde_json::Map::new();
    extra.insert("last_sales_date".into(), last.to_string().into());
    let config = settings.backtest_config();
    let done = backtest::run_and_store(&ctx, lake, Arc::clone(&full), &config, &opts, &run_id, extra, clock).await;
    progress::set_step("");
    let (report, _, rows) = done?;
    let dir = shelfcast::lake::layout::backtest(&run_id);
    if let Some(path) = a.export {
        std::fs::write(&path, shelfcast::lake::parquet::encode(&rows.schema(), &[rows])?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = a.export_actuals {
        let a = backtest::actuals_batch(&full)?;
        std::fs::write(&path, shelfcast::lake::parquet::encode(&a.schema(), &[a])?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let done = BacktestDone {
        location: lake.display(&dir),
        run_id,
        series: full.len(),
        last_sales_date: last,
        seconds: started.elapsed().as_secs_f64(),
        report,
    };
    Ok(output::print(format, &done, output::backtest::backtest)?)
}
