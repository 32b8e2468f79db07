//! The `backtest` step: decides each segment's champion, on tracked accuracy when there is enough
//! of it, else on a rolling-origin backtest (kept for `backtest-every`), and stores the learned
//! ensemble's weights.

use std::sync::Arc;

use chrono::NaiveDate;
use tracing::{info, warn};

use super::{Rows, StepCx, actuals};
use crate::error::{Error, Result};
use crate::evaluate::backtest::{self, BacktestOptions};
use crate::evaluate::champion::{Evidence, Registry};
use crate::evaluate::tracking;
use crate::jobs::history::RunReport;
use crate::jobs::runner::RunEnv;
use crate::models::{self, store};

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, job: _, step, ctx, run_id, params, state, report, .. } = cx;
    let s = &env.settings;
    let c = &s.champion;
    let windows = step.windows.unwrap_or(c.windows);
    if windows == 0 {
        return Ok((None, None));
    }
    let panel = actuals(env, params, state).await?;
    let mut registry = Registry::read(&env.lake).await?;
    if !step.always && c.decide_on == Evidence::Tracked {
        // As many forecasts per model as the backtest would score, on common ground.
        let needed = windows * s.horizon * panel.len();
        let ground = match &state.tracked {
            Some(t) => tracking::common_ground(t, &s.models, needed),
            None => Err("no tracked accuracy in this run".to_string()),
        };
        match ground {
            Ok(common) => {
                let decisions = registry.decide(&common, c, run_id, Evidence::Tracked);
                let rows = common.models.first().map_or(0, |m| m.overall.n);
                registry.last_tracked = Some(crate::evaluate::champion::TrackedStamp {
                    run_id: run_id.to_string(),
                    cutoff: params.cutoff,
                    origins: common.cutoffs.len(),
                    rows,
                });
                let note = format!(
                    "champions decided on tracked accuracy: {rows} forecast(s) per model from {} earlier run date(s), no backtest",
                    common.cutoffs.len()
                );
                info!(reason = %note, "backtest not needed");
                report.summary.notes.push(note);
                state.ensemble_weights = stored_ensemble_weights(env).await;
                write_registry(env, &registry, params.cutoff, report).await?;
                report.champions = decisions;
                return Ok((Some(panel.observations() as u64), None));
            }
            Err(why) => {
                info!(reason = %why, "not decided on tracked accuracy");
                report.summary.notes.push(format!("champions not decided on tracked accuracy: {why}"));
            }
        }
    }
    let kept = match step.always {
        true => None,
        false => registry
            .last_backtest
            .as_ref()
            .and_then(|st| st.still_fresh(params.cutoff, &s.models, s.horizon, windows, c.backtest_every)),
    };
    if let Some(note) = kept {
        info!(reason = %note, "backtest skipped");
        state.ensemble_weights = stored_ensemble_weights(env).await;
        report.summary.notes.push(note);
        return Ok((None, None));
    }
    let opts = BacktestOptions::new(windows, s.horizon, s.horizon, s.models.clone());
    let config = s.backtest_config();
    let extra = serde_json::Map::new();
    let bt =
        backtest::run_and_store(ctx, &env.lake, Arc::clone(&panel), &config, &opts, run_id, extra, env.clock.as_ref())
            .await;
    let (bt, n) = match bt {
        Ok((bt, mut pool, rows)) => {
            state.window_states = pool.take_states();
            if s.models.iter().any(|m| m == "ensemble") {
                let members = models::ensemble_members(&s.models_config());
                let config = models::ensemble::EnsembleConfig {
                    horizon: s.horizon,
                    ..models::ensemble_config(&s.models_config())
                };
                state.ensemble_weights = pool.weights_at_end(&panel, &members, &config);
                if let Some(learned) = &state.ensemble_weights {
                    // For the runs that keep them (a job without a train step, the
                    // nights that decide on tracked accuracy).
                    let lake = &env.lake;
                    models::ensemble::kept::store(lake, run_id, params.cutoff, &members, learned).await?;
                }
            }
            (bt, rows.num_rows() as u64)
        }
        Err(Error::Data(msg)) => {
            // Too little history for the windows: keep the champions as they are.
            warn!(reason = %msg, "backtest skipped");
            return Ok((Some(panel.observations() as u64), None));
        }
        Err(e) => return Err(e),
    };
    let decisions = registry.decide(&bt, c, run_id, Evidence::Backtest);
    registry.last_backtest = Some(crate::evaluate::champion::BacktestStamp {
        run_id: run_id.to_string(),
        cutoff: params.cutoff,
        models: s.models.clone(),
        horizon: s.horizon,
        windows,
    });
    write_registry(env, &registry, params.cutoff, report).await?;
    report.champions = decisions;
    Ok((Some(panel.observations() as u64), Some(n)))
}

/// The learned ensemble's weights as last stored, when `ensemble` is configured and its stored
/// members are the configured ones: those the newest backtest left, or else the latest stored
/// version's; their selection card says where they were kept from.
pub(super) async fn stored_ensemble_weights(env: &RunEnv) -> Option<crate::models::ensemble::Learned> {
    if !env.settings.models.iter().any(|m| m == "ensemble") {
        return None;
    }
    let members = models::ensemble_members(&env.settings.models_config());
    match models::ensemble::kept::read(&env.lake, &members).await {
        Ok(Some(learned)) => return Some(learned),
        Ok(None) => {}
        Err(err) => info!(error = %err, "stored backtest weights unreadable"),
    }
    let mut e = crate::models::learned_ensemble(&env.settings.models_config()).ok()?;
    match store::load_latest(&env.lake, &mut e).await {
        Ok(card) => e.learned().map(|mut l| {
            l.card.source = format!("kept from version {} (cutoff {})", card.version, card.cutoff);
            l
        }),
        Err(err) => {
            info!(error = %err, "no stored ensemble weights to keep: the ensemble validates again");
            None
        }
    }
}

/// Writes the champion registry; a note when a registry from later evidence is kept instead.
pub(super) async fn write_registry(
    env: &RunEnv,
    registry: &Registry,
    cutoff: NaiveDate,
    report: &mut RunReport,
) -> Result<()> {
    if !registry.write(&env.lake).await? {
        let note = format!("champions kept: the registry comes from evidence at a cutoff after {cutoff}");
        info!(reason = %note, "champions not replaced");
        report.summary.notes.push(note);
    }
    Ok(())
}
