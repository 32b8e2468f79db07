//! The libtorch boundary: the only module that uses `tch`.
//!
//! Deep models train on CUDA when libtorch sees a GPU and on the CPU otherwise.
//! This module turns a panel into tensors and back, and holds the global deep models:
//!
//! | name | model |
//! |---|---|
//! | `lstm` | [`Lstm`]: sequence-to-sequence LSTM with known-future inputs and quantile outputs |
//! | `transformer` | [`Transformer`]: encoder–decoder Transformer, same inputs and outputs |
//! | `torchscript` | [`TorchScript`]: a user-supplied TorchScript forecaster |
//!
//! [`data`] cuts panels into training windows, [`train`] holds the configuration and the loop,
//! [`model`] the fitted state and its saved form, [`members`] the averaging of several networks
//! trained from different seeds.

pub mod anchored;
pub mod average;
pub mod data;
pub mod embed;
pub mod lstm;
pub mod members;
pub mod model;
pub mod torchscript;
pub mod train;
pub mod transformer;
pub mod vocab;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tch::{Device, Kind, Tensor};

pub use lstm::Lstm;
pub use model::{Architecture, Card, DeepModel};
pub use torchscript::TorchScript;
pub use train::{NnConfig, PointChoice, PointLoss};
pub use transformer::Transformer;

use crate::error::{Error, Result};
use crate::panel::Panel;

/// CUDA when available, CPU otherwise.
pub fn device() -> Device {
    Device::cuda_if_available()
}

/// A human-readable name of the device models will use.
pub fn device_name() -> String {
    match device() {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

/// Limits libtorch's intra-op threads (they compete with DataFusion's workers).
pub fn set_threads(threads: usize) {
    tch::set_num_threads(threads.max(1) as i32);
}

static TORCH_RNG: Mutex<()> = Mutex::new(());

/// Serialises the users of libtorch's process-wide random generator (seeding, initialisation,
/// dropout), so that concurrent fits stay deterministic.
pub fn torch_lock() -> MutexGuard<'static, ()> {
    // A panic in another fit leaves nothing inconsistent behind a unit value.
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file in the temporary folder, removed when dropped (libtorch reads and writes some
/// formats only through paths).
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    /// A fresh, unique path with this extension.
    pub fn new(ext: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Self(std::env::temp_dir().join(format!("shelfcast-{}-{n}-{nanos}.{ext}", std::process::id())))
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The value at quantile `level` from values at ascending `trained` levels: linear between the
/// nearest two, the end values outside them.
pub fn interpolate_level(trained: &[f64], values: &[f32], level: f64) -> f32 {
    let n = trained.len().min(values.len());
    if n == 0 {
        return 0.0;
    }
    let hi = trained[..n].partition_point(|t| *t < level);
    if hi == 0 {
        return values[0];
    }
    if hi == n {
        return values[n - 1];
    }
    let (a, b) = (trained[hi - 1], trained[hi]);
    let w = ((level - a) / (b - a).max(f64::EPSILON)) as f32;
    values[hi - 1] * (1.0 - w) + values[hi] * w
}

/// The last `window` periods of every series as a `[series, window]` f32 tensor,
/// left-padded with zeros where a series is shorter.
pub fn history_tensor(panel: &Panel, window: usize, device: Device) -> Result<Tensor> {
    let mut flat = vec![0.0f32; panel.len() * window];
    for (s, y) in panel.values.iter().enumerate() {
        let take = y.len().min(window);
        flat[s * window + window - take..(s + 1) * window].copy_from_slice(&y[y.len() - take..]);
    }
    let t = Tensor::from_slice(&flat).view([panel.len() as i64, window as i64]);
    Ok(t.to_device(device))
}

/// Rows of a 2-D tensor back as vectors (moved to the CPU first).
pub fn tensor_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let size = t.size();
    if size.len() != 2 {
        return Err(Error::data(format!("expected a 2-D tensor, got shape {size:?}")));
    }
    let cpu = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let flat = Vec::<f32>::try_from(&cpu.view([-1]))?;
    let cols = size[1] as usize;
    Ok(flat.chunks(cols.max(1)).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn levels_interpolate_between_trained_ones() {
        let trained = [0.1, 0.5, 0.9];
        let v = [1.0, 3.0, 7.0];
        assert_eq!(super::interpolate_level(&trained, &v, 0.5), 3.0);
        assert!((super::interpolate_level(&trained, &v, 0.7) - 5.0).abs() < 1e-6);
        assert_eq!(super::interpolate_level(&trained, &v, 0.05), 1.0);
        assert_eq!(super::interpolate_level(&trained, &v, 0.95), 7.0);
    }
}
