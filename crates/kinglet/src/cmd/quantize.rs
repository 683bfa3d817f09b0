//! `kinglet quantize --model <model> --data <calibration spec> [--scheme int8|w4a8|w2a8|mixed|a16w8|dynamic|float16]
//! [--calibration minmax|percentile|mse] --out <file.tflite>`: post-training quantisation of a
//! float model: full-integer int8 calibrated on windows of a dataset, dynamic range (int8
//! weights, float activations) or float16 weights; the latter two use the data only to report
//! how often the quantised model agrees with the float one.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kinglet::jobs::quantize::QuantizeJob;

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Float model: a `.tflite` float32 file or a trained `.kgl` model (lowered first).
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration data, e.g. `uci-har:../shared/data/uci-har` (split `train` unless given).
    #[arg(long)]
    pub data: String,
    /// Quantisation scheme: `int8` (full-integer, per-channel weights), `w4a8` / `w2a8` (4- or
    /// 2-bit per-channel weights packed as TFLite INT4 / INT2, int8 activations), `mixed` (a
    /// weight width per layer, `--bits`), `a16w8` (TFLite's 16×8: int16 activations, int8
    /// weights, int64 biases), `dynamic` (int8 weights, float activations: TFLite's
    /// dynamic range / hybrid ops) or `float16` (half float weights behind DEQUANTIZE, float
    /// activations).
    #[arg(long, default_value = "int8")]
    pub scheme: String,
    /// `mixed`: weight bit width (8, 4 or 2) per Conv2D / DepthwiseConv2D / FullyConnected
    /// layer in op order, e.g. `8,4,4,2,8` (`kinglet inspect` lists the layers).
    #[arg(long)]
    pub bits: Option<String>,
    /// `dynamic` only: weight tensors with fewer elements stay float (the TFLite converter's
    /// default, 1024).
    #[arg(long, default_value_t = 1024)]
    pub min_elements: usize,
    /// How activation ranges are chosen: `minmax` (as the TFLite converter), `percentile`
    /// (99.99th; `percentile:P` for another) or `mse` (error-minimising clipping).
    #[arg(long, default_value = "minmax")]
    pub calibration: String,
    /// `int8`: where activation ranges come from: `recorded` (those a `--qat` model carries,
    /// see `kinglet train --qat`), `calibrate` (from the data, as for any float model) or
    /// `auto` (recorded when the model has them).
    #[arg(long, default_value = "auto")]
    pub ranges: String,
    /// Number of calibration windows, spread evenly over the split.
    #[arg(long, default_value_t = 300)]
    pub windows: usize,
    /// Keep float inputs and outputs (QUANTIZE/DEQUANTIZE at the edges) instead of int8.
    #[arg(long)]
    pub float_io: bool,
    /// Per-tensor FullyConnected weights (older converters) instead of per-channel.
    #[arg(long)]
    pub per_tensor_dense: bool,
    /// `int8`: centre logit outputs (FullyConnected without activation; softmax and argmax
    /// unchanged) and clip their range to ±this, so an overconfident classifier's huge
    /// min/max logit range does not swallow its close decisions; `off` keeps the converter's
    /// min/max range for them.
    #[arg(long, default_value = "16")]
    pub logit_clip: String,
    /// Also score the float and the int8 model on this data (e.g. `hapt:…:test`) and print
    /// both accuracies.
    #[arg(long)]
    pub eval: Option<String>,
    /// Output `.tflite` file (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Write every weight dense. By default pruned weights (mostly exact zeros, see `kinglet
    /// prune`) are stored in TFLite's sparse format behind DENSIFY ops whenever that makes the
    /// file smaller; TFLite's builtin and reference kernels run such files, its default
    /// XNNPACK delegate refuses int8 ones.
    #[arg(long)]
    pub dense_weights: bool,
    /// Choose a weight width (8, 4 or 2) per layer so that packed weights and biases fit this
    /// many bytes (`3kB`, `2KiB`, `1500`) with the least accuracy lost on `--validation`, then
    /// fine-tune a `.kgl` model with QAT at those widths (scheme `mixed`).
    #[arg(long)]
    pub weight_budget: Option<String>,
    /// As `--weight-budget`, for the size of the whole `.tflite` file.
    #[arg(long)]
    pub flash_budget: Option<String>,
    /// Validation windows the widths are chosen on (default: the `--data` source's `val`
    /// split).
    #[arg(long)]
    pub validation: Option<String>,
    /// QAT epochs at the chosen widths (`.kgl` models; 0 keeps post-training quantisation).
    #[arg(long, default_value_t = 2)]
    pub fine_tune_epochs: usize,
}

/// The `val` split of the `--data` source (`hapt:DIR:train` → `hapt:DIR:val`).
fn validation_split(data: &str) -> Option<String> {
    let spec = kinglet_data::spec::DataSpec::parse(data).ok()?;
    Some(spec.with_split(kinglet_data::spec::Split::Val).to_string())
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let validation = args.validation.or_else(|| validation_split(&args.data));
    let job = QuantizeJob {
        model: args.model,
        data: args.data,
        scheme: args.scheme,
        bits: args.bits,
        min_elements: args.min_elements,
        calibration: args.calibration,
        ranges: args.ranges,
        windows: args.windows,
        float_io: args.float_io,
        per_tensor_dense: args.per_tensor_dense,
        logit_clip: args.logit_clip,
        eval: args.eval,
        out: args.out,
        dense_weights: args.dense_weights,
        budget: kinglet::jobs::bitwidth::BudgetChoice {
            weight_budget: args.weight_budget,
            flash_budget: args.flash_budget,
            validation,
            fine_tune_epochs: args.fine_tune_epochs,
        },
    };
    kinglet::jobs::quantize::run(&job, &mut std::io::stdout().lock())
}
