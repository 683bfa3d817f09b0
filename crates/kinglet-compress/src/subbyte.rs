//! Sub-byte and mixed-precision weights: 4- and 2-bit symmetric per-channel weights with int8
//! activations (`w4a8`, `w2a8`), or a bit width per layer (`mixed`).
//!
//! Only the weights of Conv2D, DepthwiseConv2D and FullyConnected layers narrow; activations,
//! biases (int32) and requantisation stay exactly as in int8 post-training quantisation, so a
//! sub-byte model runs on every int8 kernel once its weights are unpacked, and its arithmetic
//! is TFLite's int8 arithmetic with smaller weight integers. Weights are stored packed, as
//! TFLite's `INT4` (two per byte) and `INT2` (four per byte) tensor types, lowest bits first.
//!
//! A `b`-bit weight uses the symmetric range `±(2^(b−1) − 1)`: ±7 at 4 bits, and the three
//! values −1, 0, 1 at 2 bits (symmetric 2-bit weights are ternary; the fourth code, −2, would
//! need an asymmetric scale). At these widths the converter's `max|w|` scale wastes most of
//! the grid on a channel's one or two largest weights, so post-training quantisation searches
//! each channel's clipping for the least squared weight error instead (see
//! [`sub_byte_scales`]); quantisation-aware training can replace that choice by learned scales.

use kinglet_graph::{DType, Graph, OpKind, TensorId};

use crate::error::CompressError;

/// Weight bit widths kinglet stores (16 is an activation width, scheme `a16w8`).
pub const WEIGHT_BITS: [u32; 3] = [8, 4, 2];

/// Largest weight magnitude (in quantisation steps) of a symmetric `bits`-bit weight.
pub fn weight_qmax(bits: u32) -> i32 {
    (1 << (bits - 1)) - 1
}

/// Checks a weight bit width, saying what is allowed.
pub fn check_weight_bits(bits: u32) -> Result<(), CompressError> {
    match bits {
        8 | 4 | 2 => Ok(()),
        16 => Err(CompressError::Unsupported(
            "16 bits is an activation width (scheme a16w8, with int8 weights); weights take 8, 4 or 2 bits".into(),
        )),
        other => Err(CompressError::Unsupported(format!(
            "a bit width of {other}: kinglet quantises to 2, 4, 8 or 16 bits (weights: 8, 4 or 2)"
        ))),
    }
}

/// A layer whose weights can narrow, in graph op order (the order `--bits` lists widths in).
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedLayer {
    /// Index of the op in `graph.ops`.
    pub op: usize,
    /// Op name (`CONV_2D`, …).
    pub kind: &'static str,
    pub weights: TensorId,
    pub bias: Option<TensorId>,
    /// Name of the weight tensor.
    pub name: String,
    /// Number of weights.
    pub parameters: usize,
    /// Output channels (one scale each).
    pub channels: usize,
}

/// The Conv2D, DepthwiseConv2D and FullyConnected layers of `graph` with constant weights.
pub fn weighted_layers(graph: &Graph) -> Vec<WeightedLayer> {
    graph
        .ops
        .iter()
        .enumerate()
        .filter_map(|(index, op)| {
            let channel_axis = match op.kind {
                OpKind::Conv2D { .. } | OpKind::FullyConnected { .. } => 0,
                OpKind::DepthwiseConv2D { .. } => 3,
                _ => return None,
            };
            let w = graph.tensor(*op.inputs.get(1)?);
            w.is_constant().then(|| WeightedLayer {
                op: index,
                kind: op.kind.name(),
                weights: op.inputs[1],
                bias: op.inputs.get(2).copied(),
                name: w.name.clone(),
                parameters: w.elements(),
                channels: w.shape.get(channel_axis).copied().unwrap_or(1),
            })
        })
        .collect()
}

/// Parses a list of weight bit widths (`8,4,4,2,8`, or one width), each checked.
pub fn parse_bit_list(spec: &str) -> Result<Vec<u32>, CompressError> {
    let bits = spec
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.parse::<u32>().map_err(|_| {
                CompressError::Unsupported(format!("bit width '{s}' in '{spec}' is not a number"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for b in &bits {
        check_weight_bits(*b)?;
    }
    Ok(bits)
}

/// Parses a per-layer list of bit widths (`8,4,4,2,8`) for a graph with `layers` weighted
/// layers. A single width applies to every layer.
pub fn parse_bits(spec: &str, layers: usize) -> Result<Vec<u32>, CompressError> {
    let bits = parse_bit_list(spec)?;
    match bits.len() {
        1 => Ok(vec![bits[0]; layers]),
        n if n == layers => Ok(bits),
        n => Err(CompressError::Unsupported(format!(
            "{n} bit widths given for a model with {layers} weighted layers (one per layer, in op order, or one for all)"
        ))),
    }
}

/// Bytes the weights and biases of `layers` take with the given bit widths (weights packed,
/// biases int32): the part of a model's flash that bit widths change.
pub fn weight_bytes(graph: &Graph, layers: &[WeightedLayer], bits: &[u32]) -> usize {
    layers
        .iter()
        .zip(bits)
        .map(|(l, b)| {
            let bias = l.bias.map_or(0, |id| 4 * graph.tensor(id).elements());
            (l.parameters * *b as usize).div_ceil(8) + bias
        })
        .sum()
}

/// One symmetric scale per channel along `axis` for `bits`-bit weights, choosing each
/// channel's clipping magnitude among `max|w| · k/32` (k = 8…32) by the least squared
/// quantisation error of that channel's weights. At 4 and 2 bits the full range is rarely
/// best: clipping the few largest weights buys a finer step for all the others. An all-zero
/// channel gets the converter's minimal scale.
pub fn sub_byte_scales(values: &[f32], shape: &[usize], axis: usize, bits: u32) -> Vec<f32> {
    let channels = shape.get(axis).copied().unwrap_or(1).max(1);
    let inner: usize = shape.iter().skip(axis + 1).product::<usize>().max(1);
    let mut per_channel: Vec<Vec<f32>> = vec![Vec::new(); channels];
    for (i, v) in values.iter().enumerate() {
        per_channel[(i / inner) % channels].push(*v);
    }
    let qmax = weight_qmax(bits) as f32;
    per_channel
        .iter()
        .map(|w| {
            let max_abs = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if !(max_abs.is_finite() && max_abs > 0.0) {
                return crate::params::weight_scale(0.0);
            }
            let error = |scale: f32| -> f64 {
                w.iter()
                    .map(|v| {
                        let q = (v / scale).round().clamp(-qmax, qmax);
                        f64::from(v - q * scale).powi(2)
                    })
                    .sum()
            };
            (8..=32)
                .map(|k| max_abs * k as f32 / 32.0 / qmax)
                .map(|s| (error(s), s))
                .fold((f64::INFINITY, max_abs / qmax), |best, c| {
                    if c.0 < best.0 { c } else { best }
                })
                .1
        })
        .collect()
}

/// Weight clipping learnt by quantisation-aware training, read from the graph's
/// [`kinglet_graph::meta::WEIGHT_CLIPS`] metadata: width and per-channel ratios by weight
/// tensor name. Malformed lines are errors naming the line.
pub fn learned_clips(
    graph: &Graph,
) -> Result<std::collections::BTreeMap<String, (u32, Vec<f32>)>, CompressError> {
    let mut out = std::collections::BTreeMap::new();
    let Some(text) = graph.metadata.get(kinglet_graph::meta::WEIGHT_CLIPS) else {
        return Ok(out);
    };
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = || {
            CompressError::Unsupported(format!(
                "{} line {}: expected name<TAB>bits<TAB>ratio,…, got '{line}'",
                kinglet_graph::meta::WEIGHT_CLIPS,
                n + 1
            ))
        };
        let mut fields = line.split('\t');
        let (Some(name), Some(bits), Some(ratios), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let bits: u32 = bits.parse().map_err(|_| bad())?;
        let ratios = ratios
            .split(',')
            .map(|r| r.parse::<f32>().ok().filter(|v| v.is_finite() && *v > 0.0))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        out.insert(name.to_owned(), (bits, ratios));
    }
    Ok(out)
}

/// Per-channel scales from learned clipping ratios: `ratio_c · max|w_c| / Q`.
pub fn clipped_scales(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    bits: u32,
    ratios: &[f32],
) -> Vec<f32> {
    let qmax = weight_qmax(bits) as f32;
    crate::params::channel_max_abs(values, shape, axis)
        .iter()
        .zip(ratios)
        .map(|(m, r)| {
            if *m > 0.0 {
                r * m / qmax
            } else {
                crate::params::weight_scale(0.0)
            }
        })
        .collect()
}

/// `round(w / scale)` clamped to `±(2^(bits−1) − 1)`, one scale per channel along `axis` (or
/// one in total).
pub fn quantize_sub_byte(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    scales: &[f32],
    bits: u32,
) -> Vec<i8> {
    let channels = scales.len().max(1);
    let inner: usize = shape.iter().skip(axis + 1).product::<usize>().max(1);
    let qmax = weight_qmax(bits) as f32;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = scales[if scales.len() == 1 {
                0
            } else {
                (i / inner) % channels
            }];
            (v / s).round().clamp(-qmax, qmax) as i8
        })
        .collect()
}

/// The bit width of every weighted layer of a quantised graph (8 for int8 weights), in op
/// order.
pub fn layer_bits(graph: &Graph) -> Vec<u32> {
    weighted_layers(graph)
        .iter()
        .map(|l| graph.tensor(l.weights).dtype.bits() as u32)
        .collect()
}

/// The scheme name of a quantised graph's weight widths: `int8`, `w4a8`, `w2a8` or `mixed`.
pub fn scheme_name(bits: &[u32]) -> &'static str {
    match bits.first() {
        Some(&b) if bits.iter().all(|x| *x == b) => match b {
            4 => "w4a8",
            2 => "w2a8",
            _ => "int8",
        },
        Some(_) => "mixed",
        None => "int8",
    }
}

/// The packed type of `bits`-bit weights.
pub(crate) fn weight_dtype(bits: u32) -> Result<DType, CompressError> {
    check_weight_bits(bits)?;
    DType::signed_weights(bits)
        .ok_or_else(|| CompressError::Unsupported(format!("{bits}-bit weights")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_widths_are_checked_and_expanded() {
        assert_eq!(parse_bits("4", 3).unwrap(), vec![4, 4, 4]);
        assert_eq!(parse_bits("8, 4,2", 3).unwrap(), vec![8, 4, 2]);
        let e = parse_bits("8,3,8", 3).unwrap_err().to_string();
        assert!(e.contains("bit width of 3"), "{e}");
        let e = parse_bits("16", 3).unwrap_err().to_string();
        assert!(e.contains("a16w8"), "{e}");
        let e = parse_bits("8,4", 3).unwrap_err().to_string();
        assert!(
            e.contains("2 bit widths") && e.contains("3 weighted layers"),
            "{e}"
        );
        assert!(parse_bits("8,x", 2).is_err());
    }

    #[test]
    fn sub_byte_weights_stay_in_their_symmetric_range() {
        let w: Vec<f32> = (0..40)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        for bits in [4, 2] {
            let scales = sub_byte_scales(&w, &[2, 20], 0, bits);
            let q = quantize_sub_byte(&w, &[2, 20], 0, &scales, bits);
            let qmax = weight_qmax(bits) as i8;
            assert!(q.iter().all(|v| (-qmax..=qmax).contains(v)));
            // The searched clipping is never worse than the full range.
            for (c, s) in scales.iter().enumerate() {
                let ch = &w[c * 20..(c + 1) * 20];
                let max_abs = ch.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let err = |s: f32| -> f32 {
                    ch.iter()
                        .map(|v| {
                            (v - (v / s).round().clamp(-(qmax as f32), qmax as f32) * s).powi(2)
                        })
                        .sum()
                };
                assert!(err(*s) <= err(max_abs / qmax as f32) + 1e-6);
            }
        }
    }

    #[test]
    fn scheme_names_follow_the_widths() {
        assert_eq!(scheme_name(&[4, 4]), "w4a8");
        assert_eq!(scheme_name(&[2]), "w2a8");
        assert_eq!(scheme_name(&[8, 8]), "int8");
        assert_eq!(scheme_name(&[8, 4, 2]), "mixed");
    }
}
