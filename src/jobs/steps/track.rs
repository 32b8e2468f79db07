//! The `track` step: the forecasts of earlier run dates scored against the actuals that arrived
//! since (`metrics/accuracy/`).

use tracing::info;

use super::{Rows, StepCx, actuals};
use crate::error::Result;
use crate::evaluate::{backtest, tracking};

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, run_id, run_date, params, state, report, .. } = cx;
    let s = &env.settings;
    let panel = actuals(env, params, state).await?;
    let t = &s.tracking;
    let own = backtest::self_calibrated(&s.models_config());
    match tracking::measure(&env.lake, &panel, run_date, t, &s.quantiles, s.season_length, own).await? {
        None => {
            let note = "tracked accuracy: no forecast of an earlier run date has actuals yet".to_string();
            info!(reason = %note, "nothing tracked");
            report.summary.notes.push(note);
            Ok((Some(panel.observations() as u64), None))
        }
        Some(tracked) => {
            let m = tracking::store(&env.lake, run_id, run_date, &tracked, env.clock.as_ref()).await?;
            let rows = m.scored_rows as u64;
            report.summary.tracking = Some(m);
            state.tracked = Some(tracked);
            Ok((Some(rows), Some(rows)))
        }
    }
}
