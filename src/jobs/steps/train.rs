//! The `train` step: the configured models built and fitted on the panel at the cutoff (deep
//! models warm-started from their newest version when they can), each saved with its card. A
//! model that cannot fit is left out of the run with a note; the run fails when none fits.

use std::sync::Arc;

use tracing::{info, warn};

use super::{Rows, StepCx, build_model, panel_as_of, use_model};
use crate::error::{Error, Result};
use crate::models::{Forecaster, is_ensemble, store, warm};
use crate::panel::Panel;

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, run_id, params, state, report, .. } = cx;
    let s = &env.settings;
    // The models fit side by side, sharing the threads (see `models::lanes`); then the
    // ensembles, with every thread, taking the models fitted here as they are.
    let config = s.models_config();
    let lanes = config.lanes(s.models.iter().filter(|m| !is_ensemble(m)).count());
    let mut built = Vec::new();
    for name in &s.models {
        let threads = if is_ensemble(name) { config.threads } else { lanes.threads };
        built.push(build_model(env, name, &config.with_threads(threads)).await?);
    }
    let panel = Arc::new(panel_as_of(env, params, &built).await?);
    let mut singles = Vec::new();
    let mut ensembles = Vec::new();
    for (i, model) in built.into_iter().enumerate() {
        if is_ensemble(model.name()) {
            ensembles.push((i, model));
            continue;
        }
        // A deep model continues its newest stored version when it can (a warm start).
        let start = match model.warm_starts() {
            true => Some(match warm::choose(&env.lake, model.name(), params.cutoff, &s.train).await? {
                // Rather than from scratch, on from where this run's backtest left the model.
                warm::Start::Full(why) if s.train.warm_start => match state.window_states.remove(model.name()) {
                    Some((window, state)) => warm::Start::Backtest { state, window, instead_of: why },
                    None => warm::Start::Full(why),
                },
                start => start,
            }),
            false => None,
        };
        singles.push((i, model, start));
    }
    let task = crate::progress::Task::start("models fitted", (singles.len() + ensembles.len()) as u64);
    let (epochs, cutoff) = (s.train.fine_tune_epochs, params.cutoff);
    let p = Arc::clone(&panel);
    let (done, task) = crate::blocking::run(move || {
        let slowest_first = |(_, m, _): &(usize, Box<dyn Forecaster>, _)| crate::models::fit_rank(m.name());
        let done = lanes.run_starting_by(singles, slowest_first, |(i, mut model, start)| {
            let _fitting = crate::progress::Task::start(format!("fit {}", model.name()), 0);
            let (fit, lineage) = match start {
                Some(start) => match fit_started(model.as_mut(), &p, start, epochs, cutoff) {
                    Ok((fit, lineage)) => (Ok(fit), Some(lineage)),
                    Err(e) => (Err(e), None),
                },
                None => (model.fit(&p), None),
            };
            task.inc(1);
            (i, model, fit, lineage)
        });
        (done, task)
    })
    .await?;
    // A model that cannot fit is left out of this run (its stored versions stay as they are);
    // the run fails only when no model fits.
    let mut models = Vec::new();
    let mut failed = Vec::new();
    for (i, model, fit, lineage) in done {
        match Error::model_outcome(fit)? {
            Ok(fit) => models.push((i, model, fit, lineage)),
            Err(e) => failed.push((model.name().to_string(), e)),
        }
    }
    if !ensembles.is_empty() {
        let learned = state.ensemble_weights.clone();
        let p = Arc::clone(&panel);
        let (fitted, more, mut lost) = crate::blocking::run(move || -> Result<_> {
            let (mut more, mut lost) = (Vec::new(), Vec::new());
            {
                let refs: Vec<&dyn Forecaster> = models.iter().map(|(_, m, ..)| m.as_ref()).collect();
                let reuse = crate::models::Reuse { fitted: &refs, ensemble: learned.as_ref() };
                for (i, mut model) in ensembles {
                    let _fitting = crate::progress::Task::start(format!("fit {}", model.name()), 0);
                    let fit = match model.fit_reusing(&p, &reuse) {
                        Ok(Some(fit)) => {
                            info!(model = model.name(), "members fitted above reused");
                            Ok(fit)
                        }
                        Ok(None) => model.fit(&p),
                        Err(e) => Err(e),
                    };
                    task.inc(1);
                    match Error::model_outcome(fit)? {
                        Ok(fit) => more.push((i, model, fit, None)),
                        Err(e) => lost.push((model.name().to_string(), e)),
                    }
                }
            }
            Ok((models, more, lost))
        })
        .await??;
        models = fitted;
        models.extend(more);
        models.sort_by_key(|(i, ..)| *i);
        failed.append(&mut lost);
    }
    if models.is_empty()
        && let Some((name, e)) = failed.first()
    {
        return Err(Error::data(format!("no model could be fitted; `{name}`: {e}")));
    }
    for (name, e) in &failed {
        warn!(model = %name, error = %e, "model not fitted: left out of this run");
        report.summary.notes.push(format!("{name}: not fitted, left out of this run ({e})"));
    }
    let mut fitted = Vec::new();
    for (_, model, fit, lineage) in models {
        if let Some(l) = &lineage {
            let note = match &l.parent {
                Some(parent) => format!("{}: warm start from {parent} ({})", model.name(), l.reason),
                None if l.mode == "warm" => {
                    format!("{}: warm start from this run's backtest ({})", model.name(), l.reason)
                }
                None => format!("{}: full retrain ({})", model.name(), l.reason),
            };
            info!(model = model.name(), mode = %l.mode, reason = %l.reason, "train");
            report.summary.notes.push(note);
        }
        let card = store::ModelCard {
            model: model.name().to_string(),
            version: run_id.to_string(),
            created_at: env.clock.now(),
            cutoff: params.cutoff.to_string(),
            series: fit.series,
            observations: fit.observations,
            seed: s.seed,
            frequency: s.frequency.as_str().to_string(),
            state_bytes: 0,
            details: model
                .card()
                .unwrap_or_else(|| serde_json::json!({ "horizon": s.horizon, "season_length": s.season_length })),
            lineage,
        };
        store::save(&env.lake, model.as_ref(), &card).await?;
        use_model(report, model.name(), run_id);
        report.summary.fits.push(fit);
        fitted.push(model);
    }
    report.summary.series = panel.len();
    let obs = panel.observations() as u64;
    state.panel = Some(panel);
    state.models = fitted;
    Ok((Some(obs), Some(obs)))
}

/// Fits `model` as `start` says: continuing the parent for at most `epochs` epochs, or from
/// scratch (also when the model finds the parent incompatible); with the lineage for its card.
pub(super) fn fit_started(
    model: &mut dyn Forecaster,
    panel: &Panel,
    start: warm::Start,
    epochs: usize,
    cutoff: chrono::NaiveDate,
) -> Result<(crate::models::FitReport, warm::Lineage)> {
    // The parent's state, the lineage when it is continued, and what a full fit instead says.
    let (state, continued, refused) = match start {
        warm::Start::Full(reason) => return Ok((model.fit(panel)?, warm::Lineage::full(cutoff, reason))),
        warm::Start::Warm { card, state, full_retrain_cutoff } => (
            state,
            warm::Lineage {
                mode: "warm".into(),
                reason: format!("{} from cutoff {}", model.warm_start_does(epochs), card.cutoff),
                parent: Some(card.version.clone()),
                full_retrain_cutoff,
            },
            format!("the stored {} was not continued", card.version),
        ),
        // A line trained from scratch in this run: the next full retrain is counted from here.
        warm::Start::Backtest { state, window, instead_of } => (
            bytes::Bytes::from(state),
            warm::Lineage {
                mode: "warm".into(),
                reason: format!(
                    "{} from this run's backtest, which trained it from scratch at its first window and continued it up to cutoff {window} (instead of a full retrain: {instead_of})",
                    model.warm_start_does(epochs)
                ),
                parent: None,
                full_retrain_cutoff: cutoff,
            },
            format!("{instead_of}; the backtest's model was not continued"),
        ),
    };
    match warm::continue_or_fit(model, panel, &state, epochs)? {
        (fit, None) => Ok((fit, continued)),
        (fit, Some(why)) => Ok((fit, warm::Lineage::full(cutoff, format!("{refused}: {why}")))),
    }
}
