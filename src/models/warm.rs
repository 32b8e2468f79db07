//! Warm starts of the nightly's train step: which stored version a model continues from, and
//! when it trains from scratch instead.
//!
//! The parent is the newest stored version trained at a cutoff before the run's (so a rerun of a
//! date continues from the same parent and forecasts the same, and a backfill never continues a
//! model that saw later data). A full retrain happens when there is no such version, when the
//! last full retrain in the parent's line is `retrain-every` or more before the cutoff, or when
//! the model finds the parent incompatible; the card's [`Lineage`] says which and why.

use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::store::{self, ModelCard};
use crate::error::Result;
use crate::lake::Lake;

/// The `[train]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainSettings {
    /// Continue the stored deep models instead of training them from scratch every run.
    #[serde(default = "yes")]
    pub warm_start: bool,
    /// A full retrain at least this often (at the cutoff's pace).
    #[serde(default = "default_retrain_every", with = "crate::period::duration")]
    pub retrain_every: Duration,
    /// Most epochs of a warm start.
    #[serde(default = "default_fine_tune_epochs")]
    pub fine_tune_epochs: usize,
    /// In a backtest, each window continues the deep models of the window before for at most
    /// `fine_tune_epochs` epochs instead of training them from scratch.
    #[serde(default = "yes")]
    pub warm_backtest: bool,
}

fn yes() -> bool {
    true
}

fn default_retrain_every() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_fine_tune_epochs() -> usize {
    4
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            warm_start: true,
            retrain_every: default_retrain_every(),
            fine_tune_epochs: default_fine_tune_epochs(),
            warm_backtest: true,
        }
    }
}

/// How a stored version came to be, in its card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// `full` (trained from scratch) or `warm` (continued from `parent`).
    pub mode: String,
    /// Why.
    pub reason: String,
    /// The version it continued from.
    #[serde(default)]
    pub parent: Option<String>,
    /// The cutoff of the last full retrain in its line (its own when `full`).
    pub full_retrain_cutoff: NaiveDate,
}

impl Lineage {
    /// A model trained from scratch at `cutoff`.
    pub fn full(cutoff: NaiveDate, reason: impl Into<String>) -> Self {
        Self { mode: "full".into(), reason: reason.into(), parent: None, full_retrain_cutoff: cutoff }
    }
}

/// Fits `model` on `panel` continuing `parent` (a saved state) for at most `epochs` epochs, or
/// from scratch when the model has no warm start or finds the parent does not fit. Returns the
/// fit and, when it was from scratch, why.
pub fn continue_or_fit(
    model: &mut dyn super::Forecaster,
    panel: &crate::panel::Panel,
    parent: &[u8],
    epochs: usize,
) -> Result<(super::FitReport, Option<String>)> {
    match model.fit_warm(panel, parent, epochs)? {
        super::Warm::Continued(fit) => Ok((fit, None)),
        super::Warm::Incompatible(why) => Ok((model.fit(panel)?, Some(why))),
        super::Warm::Unsupported => Ok((model.fit(panel)?, Some("the model has no warm start".into()))),
    }
}

/// What the train step does with a model.
#[derive(Debug)]
pub enum Start {
    /// Train from scratch, and why.
    Full(String),
    /// Continue the stored `card`'s version, whose state is `state`.
    Warm {
        /// The parent's card.
        card: Box<ModelCard>,
        /// The parent's saved state.
        state: Bytes,
        /// The cutoff of the last full retrain in its line.
        full_retrain_cutoff: NaiveDate,
    },
    /// Instead of training from scratch (`instead_of` says why it would have), continue the
    /// state this run's backtest left (`[train] warm-backtest`): trained from scratch at its
    /// first window and continued window by window up to the cutoff `window`, on data before it.
    Backtest {
        /// The state after the backtest's latest window.
        state: Vec<u8>,
        /// That window's cutoff.
        window: NaiveDate,
        /// Why the stored versions were not continued.
        instead_of: String,
    },
}

/// Chooses how the model `name` starts at `cutoff`.
pub async fn choose(lake: &Lake, name: &str, cutoff: NaiveDate, settings: &TrainSettings) -> Result<Start> {
    if !settings.warm_start {
        return Ok(Start::Full("warm starts are off ([train] warm-start = false)".into()));
    }
    let Some((card, state)) = store::newest_before(lake, name, cutoff).await? else {
        return Ok(Start::Full("no stored version trained before this cutoff".into()));
    };
    let parent_cutoff = NaiveDate::parse_from_str(&card.cutoff, "%Y-%m-%d").unwrap_or(cutoff);
    let full_retrain_cutoff = card.lineage.as_ref().map_or(parent_cutoff, |l| l.full_retrain_cutoff);
    let age = (cutoff - full_retrain_cutoff).num_days().max(0) as u64;
    if age * 86_400 >= settings.retrain_every.as_secs() {
        return Ok(Start::Full(format!(
            "scheduled full retrain: the last one was at cutoff {full_retrain_cutoff} (retrain-every = {})",
            humantime::format_duration(settings.retrain_every)
        )));
    }
    Ok(Start::Warm { card: Box::new(card), state, full_retrain_cutoff })
}
