//! The LSTM forecaster: a sequence-to-sequence encoder–decoder with known-future inputs and
//! quantile outputs.
//!
//! References: Sutskever et al., *Sequence to Sequence Learning with Neural Networks* (2014);
//! Salinas et al., *DeepAR* (2020) for the global model over scaled series with item embeddings;
//! Wen et al., *A Multi-Horizon Quantile Recurrent Forecaster* (MQ-RNN, 2017) for the direct
//! multi-horizon quantile head fed with known-future covariates.
//!
//! The encoder LSTM reads the history window (scaled target, observed flag, dates, known and past
//! covariates, and the static embeddings repeated on every step). Its final state starts the
//! decoder LSTM, which reads the horizon's known-future inputs and the embeddings. A linear head
//! over the decoder state and its own inputs (a skip path, so a known-future signal such as a
//! promotion reaches the output directly) gives per step the mean and one value per quantile.

use tch::Tensor;
use tch::nn::{self, Module, RNN};

use super::anchored::{self, Anchoring};
use super::data::{Batch, Layout};
use super::embed::StaticEmbeddings;
use super::model::{Architecture, DeepModel};
use super::train::{Net, NnConfig};

/// The network.
#[derive(Debug)]
pub struct LstmNet {
    embed: StaticEmbeddings,
    encoder: nn::LSTM,
    decoder: nn::LSTM,
    head: nn::Linear,
    anchoring: Option<Anchoring>,
    dropout: f64,
}

/// Builds the network under `p` for `layout`, static vocabularies of `sizes`, and `cfg`.
pub fn lstm_net(p: &nn::Path, layout: &Layout, sizes: &[usize], cfg: &NnConfig) -> LstmNet {
    let embed = StaticEmbeddings::new(&(p / "embed"), sizes, cfg.embed_max);
    let e = embed.dim();
    let hidden = cfg.hidden as i64;
    // Dropout is applied by hand on the outputs: the RNN's own flag is fixed when it is built.
    let rnn = nn::RNNConfig { num_layers: cfg.layers.max(1) as i64, batch_first: true, ..Default::default() };
    let encoder = nn::lstm(p / "encoder", layout.encoder_dim() as i64 + e, hidden, rnn);
    let decoder = nn::lstm(p / "decoder", layout.decoder_dim() as i64 + e, hidden, rnn);
    let head = nn::linear(
        p / "head",
        hidden + layout.decoder_dim() as i64 + e,
        1 + cfg.quantiles.len() as i64,
        Default::default(),
    );
    let anchoring = Anchoring::new(p, layout, 1 + cfg.quantiles.len() as i64, cfg.point_loss);
    LstmNet { embed, encoder, decoder, head, anchoring, dropout: cfg.dropout }
}

/// Repeats `[B, E]` over `steps`: `[B, steps, E]`.
pub fn repeat_steps(x: &Tensor, steps: i64) -> Tensor {
    let s = x.size();
    x.unsqueeze(1).expand([s[0], steps, s[1]], false)
}

impl Net for LstmNet {
    fn forward(&self, b: &Batch, train: bool) -> Tensor {
        let emb = self.embed.forward(&b.statics);
        let enc_in = Tensor::cat(&[&b.encoder, &repeat_steps(&emb, b.encoder.size()[1])], 2);
        let dec_in = Tensor::cat(&[&b.decoder, &repeat_steps(&emb, b.decoder.size()[1])], 2);
        let (_, state) = self.encoder.seq(&enc_in.dropout(self.dropout, train));
        let (out, _) = self.decoder.seq_init(&dec_in, &state);
        let out = out.dropout(self.dropout, train);
        let out = self.head.forward(&Tensor::cat(&[&out, &dec_in], 2));
        anchored::apply(self.anchoring.as_ref(), out, b)
    }
}

/// The `lstm` model.
#[derive(Debug)]
pub struct Lstm(pub DeepModel);

impl Lstm {
    /// An unfitted model.
    pub fn new(cfg: NnConfig) -> Self {
        Self(DeepModel::new(Architecture::Lstm, cfg))
    }
}

super::model::delegate_forecaster!(Lstm);
