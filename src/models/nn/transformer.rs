//! The Transformer forecaster: an encoder over the history and a decoder whose queries carry the
//! horizon's known-future inputs, with quantile outputs.
//!
//! References: Vaswani et al., *Attention Is All You Need* (2017), with pre-layer-norm blocks
//! (Xiong et al., 2020); Lim et al., *Temporal Fusion Transformers* (2021) for decoder queries
//! built from known-future covariates and static embeddings, and quantile outputs. Multi-head
//! attention is built from linear layers, matmul and softmax, as in tch's `min-gpt` example.
//!
//! Encoder tokens: a linear projection of each history step's inputs (with the static embeddings)
//! plus a sinusoidal position; left padding is masked out of attention. Decoder tokens: the same
//! for each horizon step's known-future inputs, at positions after the window. Each decoder block
//! attends to the other horizon steps (no causal mask: no targets are fed back) and to the
//! encoder's output. The head reads the final token and the step's inputs (a skip path).

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::anchored::{self, Anchoring};
use super::data::{Batch, Layout};
use super::embed::StaticEmbeddings;
use super::lstm::repeat_steps;
use super::model::{Architecture, DeepModel};
use super::train::{Net, NnConfig};

/// Attention scores of masked keys.
const MASKED: f64 = -1e9;

#[derive(Debug)]
struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    heads: i64,
}

impl Attention {
    fn new(p: &nn::Path, d: i64, heads: i64) -> Self {
        let c = Default::default();
        Self {
            q: nn::linear(p / "q", d, d, c),
            k: nn::linear(p / "k", d, d, c),
            v: nn::linear(p / "v", d, d, c),
            out: nn::linear(p / "out", d, d, c),
            heads,
        }
    }

    /// `x` `[B, T, d]` attends to `memory` `[B, S, d]`; `mask` `[B, 1, 1, S]` is true on keys to ignore.
    fn forward(&self, x: &Tensor, memory: &Tensor, mask: Option<&Tensor>, dropout: f64, train: bool) -> Tensor {
        let (b, t, d) = x.size3().expect("attention input is [B, T, d]");
        let s = memory.size()[1];
        let dk = d / self.heads;
        let split = |y: Tensor, len: i64| y.view([b, len, self.heads, dk]).transpose(1, 2);
        let q = split(self.q.forward(x), t);
        let k = split(self.k.forward(memory), s);
        let v = split(self.v.forward(memory), s);
        let mut scores = q.matmul(&k.transpose(-2, -1)) / (dk as f64).sqrt();
        if let Some(m) = mask {
            scores = scores.masked_fill(m, MASKED);
        }
        let att = scores.softmax(-1, Kind::Float).dropout(dropout, train);
        self.out.forward(&att.matmul(&v).transpose(1, 2).contiguous().view([b, t, d]))
    }
}

#[derive(Debug)]
struct FeedForward {
    up: nn::Linear,
    down: nn::Linear,
}

impl FeedForward {
    fn new(p: &nn::Path, d: i64) -> Self {
        Self {
            up: nn::linear(p / "up", d, 2 * d, Default::default()),
            down: nn::linear(p / "down", 2 * d, d, Default::default()),
        }
    }

    fn forward(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        self.down.forward(&self.up.forward(x).gelu("none").dropout(dropout, train))
    }
}

#[derive(Debug)]
struct EncoderBlock {
    ln1: nn::LayerNorm,
    attn: Attention,
    ln2: nn::LayerNorm,
    ff: FeedForward,
}

#[derive(Debug)]
struct DecoderBlock {
    ln1: nn::LayerNorm,
    self_attn: Attention,
    ln2: nn::LayerNorm,
    cross: Attention,
    ln3: nn::LayerNorm,
    ff: FeedForward,
}

/// The network.
#[derive(Debug)]
pub struct TransformerNet {
    embed: StaticEmbeddings,
    enc_in: nn::Linear,
    dec_in: nn::Linear,
    encoder: Vec<EncoderBlock>,
    decoder: Vec<DecoderBlock>,
    ln_enc: nn::LayerNorm,
    ln_dec: nn::LayerNorm,
    head: nn::Linear,
    anchoring: Option<Anchoring>,
    d: i64,
    dropout: f64,
}

/// Builds the network under `p` for `layout`, static vocabularies of `sizes`, and `cfg`.
pub fn transformer_net(p: &nn::Path, layout: &Layout, sizes: &[usize], cfg: &NnConfig) -> TransformerNet {
    let embed = StaticEmbeddings::new(&(p / "embed"), sizes, cfg.embed_max);
    let e = embed.dim();
    let d = cfg.hidden.max(1) as i64;
    let heads = if cfg.heads > 0 && d % cfg.heads as i64 == 0 { cfg.heads as i64 } else { 1 };
    let ln = |q: nn::Path| nn::layer_norm(q, vec![d], Default::default());
    let encoder = (0..cfg.layers.max(1))
        .map(|i| {
            let q = p / format!("enc{i}");
            EncoderBlock {
                ln1: ln(&q / "ln1"),
                attn: Attention::new(&(&q / "attn"), d, heads),
                ln2: ln(&q / "ln2"),
                ff: FeedForward::new(&(&q / "ff"), d),
            }
        })
        .collect();
    let decoder = (0..cfg.layers.max(1))
        .map(|i| {
            let q = p / format!("dec{i}");
            DecoderBlock {
                ln1: ln(&q / "ln1"),
                self_attn: Attention::new(&(&q / "self"), d, heads),
                ln2: ln(&q / "ln2"),
                cross: Attention::new(&(&q / "cross"), d, heads),
                ln3: ln(&q / "ln3"),
                ff: FeedForward::new(&(&q / "ff"), d),
            }
        })
        .collect();
    let dec_dim = layout.decoder_dim() as i64 + e;
    TransformerNet {
        enc_in: nn::linear(p / "enc_in", layout.encoder_dim() as i64 + e, d, Default::default()),
        dec_in: nn::linear(p / "dec_in", dec_dim, d, Default::default()),
        encoder,
        decoder,
        ln_enc: ln(p / "ln_enc"),
        ln_dec: ln(p / "ln_dec"),
        head: nn::linear(p / "head", d + dec_dim, 1 + cfg.quantiles.len() as i64, Default::default()),
        anchoring: Anchoring::new(p, layout, 1 + cfg.quantiles.len() as i64, cfg.point_loss),
        embed,
        d,
        dropout: cfg.dropout,
    }
}

/// Sinusoidal positions `from..from + len` of width `d`: `[len, d]`.
fn positions(from: i64, len: i64, d: i64, device: tch::Device) -> Tensor {
    let mut pe = vec![0f32; (len * d) as usize];
    for p in 0..len {
        for i in 0..d {
            let rate = 10_000f64.powf(-((i - i % 2) as f64) / d as f64);
            let a = (from + p) as f64 * rate;
            pe[(p * d + i) as usize] = if i % 2 == 0 { a.sin() } else { a.cos() } as f32;
        }
    }
    Tensor::from_slice(&pe).view([len, d]).to_device(device)
}

impl Net for TransformerNet {
    fn forward(&self, b: &Batch, train: bool) -> Tensor {
        let (bs, l) = (b.encoder.size()[0], b.encoder.size()[1]);
        let h = b.decoder.size()[1];
        let device = b.encoder.device();
        let emb = self.embed.forward(&b.statics);
        let enc_in = Tensor::cat(&[&b.encoder, &repeat_steps(&emb, l)], 2);
        let dec_in = Tensor::cat(&[&b.decoder, &repeat_steps(&emb, h)], 2);
        // Encoder feature 1 is the "observed" flag: padding before a series starts is not attended to.
        let mask = b.encoder.select(2, 1).eq(0.0).view([bs, 1, 1, l]);
        let mut x = (self.enc_in.forward(&enc_in) + positions(0, l, self.d, device)).dropout(self.dropout, train);
        for blk in &self.encoder {
            let n = blk.ln1.forward(&x);
            x = &x + blk.attn.forward(&n, &n, Some(&mask), self.dropout, train).dropout(self.dropout, train);
            x = &x + blk.ff.forward(&blk.ln2.forward(&x), self.dropout, train).dropout(self.dropout, train);
        }
        let memory = self.ln_enc.forward(&x);
        let mut y = (self.dec_in.forward(&dec_in) + positions(l, h, self.d, device)).dropout(self.dropout, train);
        for blk in &self.decoder {
            let n = blk.ln1.forward(&y);
            y = &y + blk.self_attn.forward(&n, &n, None, self.dropout, train).dropout(self.dropout, train);
            y = &y
                + blk
                    .cross
                    .forward(&blk.ln2.forward(&y), &memory, Some(&mask), self.dropout, train)
                    .dropout(self.dropout, train);
            y = &y + blk.ff.forward(&blk.ln3.forward(&y), self.dropout, train).dropout(self.dropout, train);
        }
        let y = self.ln_dec.forward(&y);
        let out = self.head.forward(&Tensor::cat(&[&y, &dec_in], 2));
        anchored::apply(self.anchoring.as_ref(), out, b)
    }
}

/// The `transformer` model.
#[derive(Debug)]
pub struct Transformer(pub DeepModel);

impl Transformer {
    /// An unfitted model.
    pub fn new(cfg: NnConfig) -> Self {
        Self(DeepModel::new(Architecture::Transformer, cfg))
    }
}

super::model::delegate_forecaster!(Transformer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_bounded_and_distinct() {
        let p = positions(0, 4, 8, tch::Device::Cpu);
        assert_eq!(p.size(), [4, 8]);
        assert!(f64::try_from(p.abs().max()).unwrap() <= 1.0);
        let diff = f64::try_from((p.get(1) - p.get(2)).abs().sum(Kind::Float)).unwrap();
        assert!(diff > 0.1);
    }
}
