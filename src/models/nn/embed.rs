//! Embeddings of static ids (item, location, category, …), concatenated: one learned vector per
//! attribute value, as in the entity embeddings of Guo & Berkhahn (2016) and DeepAR's item
//! embeddings.

use tch::{Tensor, nn};

/// Embedding width of an attribute with `size` ids: grows with the vocabulary, capped at `max`.
pub fn width(size: usize, max: usize) -> usize {
    ((size as f64).sqrt().ceil() as usize).clamp(1, max.max(1))
}

/// One embedding table per static attribute.
#[derive(Debug)]
pub struct StaticEmbeddings {
    tables: Vec<nn::Embedding>,
    dim: i64,
}

impl StaticEmbeddings {
    /// Tables for attributes of these vocabulary sizes (unknown id included), each at most `max` wide.
    pub fn new(p: &nn::Path, sizes: &[usize], max: usize) -> Self {
        let mut dim = 0;
        let tables = sizes
            .iter()
            .enumerate()
            .map(|(a, &size)| {
                let w = width(size, max) as i64;
                dim += w;
                nn::embedding(p / format!("static{a}"), size as i64, w, Default::default())
            })
            .collect();
        Self { tables, dim }
    }

    /// Width of the concatenated embedding.
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// `[B, statics]` ids → `[B, dim]`.
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let b = ids.size()[0];
        if self.tables.is_empty() {
            return Tensor::zeros([b, 0], (tch::Kind::Float, ids.device()));
        }
        let parts: Vec<Tensor> =
            self.tables.iter().enumerate().map(|(a, t)| ids.select(1, a as i64).apply(t)).collect();
        Tensor::cat(&parts, 1)
    }
}
