//! The libtorch boundary: the only module that uses `tch`.
//!
//! Deep models train on CUDA when libtorch sees a GPU and on the CPU otherwise.
//! This module turns a panel into tensors and back.

use tch::{Device, Kind, Tensor};

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
