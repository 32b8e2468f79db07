//! The learned ensemble's weights as a backtest left them (`models/ensemble/weights.json`), for
//! the runs that do not learn them again: a job whose backtest has no train step after it (the
//! weekly full backtest), and the nightlies that keep the champions of a recent backtest or decide
//! on tracked accuracy. The file names the members the weights belong to, the run and the cutoff,
//! and only moves forward: weights from an earlier cutoff (a backfill) do not replace it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::Learned;
use crate::error::Result;
use crate::lake::{Lake, layout, pointer};

/// What the file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    run_id: String,
    cutoff: NaiveDate,
    members: Vec<String>,
    learned: Learned,
}

/// Stores the weights a backtest at `cutoff` learnt for `members`; `false` when weights from a
/// later cutoff are already there.
pub async fn store(
    lake: &Lake,
    run_id: &str,
    cutoff: NaiveDate,
    members: &[String],
    learned: &Learned,
) -> Result<bool> {
    let kept = Kept { run_id: run_id.to_string(), cutoff, members: members.to_vec(), learned: learned.clone() };
    let bytes = serde_json::to_vec_pretty(&kept)?;
    let rank_of = |b: bytes::Bytes| async move { Ok(serde_json::from_slice::<Kept>(&b).ok().map(|k| k.cutoff)) };
    pointer::advance(lake, &layout::ensemble_weights(), bytes.into(), &cutoff, rank_of).await
}

/// The stored weights when they belong to `members` (in that order), with their card's source
/// saying where they were kept from.
pub async fn read(lake: &Lake, members: &[String]) -> Result<Option<Learned>> {
    let Some(bytes) = lake.get_opt(&layout::ensemble_weights()).await? else { return Ok(None) };
    let Ok(kept) = serde_json::from_slice::<Kept>(&bytes) else {
        info!("stored ensemble weights unreadable: not kept");
        return Ok(None);
    };
    if kept.members != members {
        info!(stored = ?kept.members, configured = ?members, "stored ensemble weights are for other members");
        return Ok(None);
    }
    let mut learned = kept.learned;
    learned.card.source = format!("kept from the backtest of run {} (cutoff {})", kept.run_id, kept.cutoff);
    Ok(Some(learned))
}
