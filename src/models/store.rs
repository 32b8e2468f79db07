//! Model checkpoints in the lake: `models/<name>/<version>/` with the model's saved state and a
//! JSON card, and `models/<name>/latest.json` pointing at the newest version.
//!
//! The state is written first, the card second and the pointer last, so a reader following
//! `latest.json` always finds a complete checkpoint. The pointer only moves forward: a version
//! trained at an earlier cutoff than the one it names (a backfill of an old date) is stored but
//! does not become the latest (see [`crate::lake::pointer`]).

use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::Forecaster;
use crate::error::{Error, Result};
use crate::lake::{Lake, layout, pointer};

/// What a checkpoint says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Registry name.
    pub model: String,
    /// Version (the run that trained it).
    pub version: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Training data: last day used.
    pub cutoff: String,
    /// Series it was fitted on.
    pub series: usize,
    /// Observations it was fitted on.
    pub observations: usize,
    /// Seed.
    pub seed: u64,
    /// Grain.
    pub frequency: String,
    /// Size of the state in bytes.
    pub state_bytes: usize,
    /// Anything else the trainer wants recorded (configuration, scaling, validation loss, …).
    pub details: serde_json::Value,
    /// Trained from scratch or continued from a parent version, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<super::warm::Lineage>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Latest {
    version: String,
    /// The version's training cutoff and creation time: what the pointer is ranked by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cutoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
}

/// How far a version goes: later cutoffs first, then later trainings of the same cutoff.
type Rank = (String, DateTime<Utc>);

/// The rank of a stored pointer: from the pointer, or (written before it carried one) from the
/// card it names; `None` when neither says.
async fn rank_of(lake: &Lake, name: &str, pointer: &[u8]) -> Result<Option<Rank>> {
    let Ok(latest) = serde_json::from_slice::<Latest>(pointer) else { return Ok(None) };
    if let (Some(cutoff), Some(at)) = (latest.cutoff, latest.created_at) {
        return Ok(Some((cutoff, at)));
    }
    Ok(match lake.get_opt(&card_path(name, &latest.version)).await? {
        Some(card) => serde_json::from_slice::<ModelCard>(&card).ok().map(|c| (c.cutoff, c.created_at)),
        None => None,
    })
}

fn state_path(name: &str, version: &str) -> Path {
    layout::model(name, version).join("state.bin")
}

fn card_path(name: &str, version: &str) -> Path {
    layout::model(name, version).join("card.json")
}

/// Writes a fitted model's checkpoint and makes it the latest.
///
/// The model is serialised before the first write, and the future does not hold on to it, so
/// it can run on any thread (forecasters are `Send` but not `Sync`).
pub fn save<'a>(
    lake: &'a Lake,
    model: &dyn Forecaster,
    card: &ModelCard,
) -> impl std::future::Future<Output = Result<()>> + Send + 'a {
    let state = model.save();
    let card = card.clone();
    async move { write_checkpoint(lake, state?, card).await }
}

async fn write_checkpoint(lake: &Lake, state: Vec<u8>, mut card: ModelCard) -> Result<()> {
    card.state_bytes = state.len();
    lake.put(&state_path(&card.model, &card.version), state.into()).await?;
    lake.put(&card_path(&card.model, &card.version), serde_json::to_vec_pretty(&card)?.into()).await?;
    let latest =
        Latest { version: card.version.clone(), cutoff: Some(card.cutoff.clone()), created_at: Some(card.created_at) };
    let rank: Rank = (card.cutoff.clone(), card.created_at);
    let name = card.model.as_str();
    let moved = pointer::advance(
        lake,
        &layout::model_latest(name),
        serde_json::to_vec(&latest)?.into(),
        &rank,
        |b| async move { rank_of(lake, name, &b).await },
    )
    .await?;
    if !moved {
        tracing::info!(model = name, version = %card.version, cutoff = %card.cutoff, "stored; the latest version stays on a later cutoff");
    }
    Ok(())
}

/// The newest stored version of `name` trained at a cutoff before `cutoff` (the latest written
/// among those of the same cutoff), with its state; `None` when there is none.
pub async fn newest_before(lake: &Lake, name: &str, cutoff: NaiveDate) -> Result<Option<(ModelCard, bytes::Bytes)>> {
    let mut best: Option<ModelCard> = None;
    for meta in lake.list(&Path::from_iter(["models", name])).await? {
        if meta.location.filename() != Some("card.json") {
            continue;
        }
        let card = match serde_json::from_slice::<ModelCard>(&lake.get(&meta.location).await?) {
            Ok(card) => card,
            Err(e) => {
                tracing::warn!(card = %lake.display(&meta.location), error = %e, "unreadable model card left out of warm starts");
                continue;
            }
        };
        let Ok(at) = NaiveDate::parse_from_str(&card.cutoff, "%Y-%m-%d") else {
            tracing::warn!(card = %lake.display(&meta.location), cutoff = %card.cutoff, "model card without a date cutoff left out of warm starts");
            continue;
        };
        let newer =
            best.as_ref().is_none_or(|b| (card.cutoff.as_str(), card.created_at) > (b.cutoff.as_str(), b.created_at));
        if at < cutoff && newer {
            best = Some(card);
        }
    }
    match best {
        Some(card) => {
            let state = lake.get(&state_path(&card.model, &card.version)).await?;
            Ok(Some((card, state)))
        }
        None => Ok(None),
    }
}

/// Loads the latest checkpoint of `model` into it (a model built by the registry under the same name).
pub async fn load_latest(lake: &Lake, model: &mut dyn Forecaster) -> Result<ModelCard> {
    let name = model.name().to_string();
    let pointer = layout::model_latest(&name);
    let latest: Latest = match lake.get_opt(&pointer).await? {
        Some(b) => serde_json::from_slice(&b)?,
        None => {
            return Err(Error::Dataset {
                path: lake.display(&pointer),
                message: format!(
                    "no trained `{name}` model in the lake: run `shelfcast train` (or the nightly job) first"
                ),
            });
        }
    };
    let card: ModelCard = serde_json::from_slice(&lake.get(&card_path(&name, &latest.version)).await?)?;
    let state = lake.get(&state_path(&name, &latest.version)).await?;
    model.load(&state)?;
    Ok(card)
}
