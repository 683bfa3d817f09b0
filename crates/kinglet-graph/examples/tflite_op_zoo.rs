//! Writes two small graphs that use every op kinglet supports, built with the graph builder
//! and exported with kinglet's `.tflite` writer: `zoo_f32.tflite` (float) and
//! `zoo_i8.tflite` (full int8, per-channel weights). `scripts/tflite_op_zoo_goldens.py` runs
//! them in the TFLite interpreter; `tests/op_zoo.rs` checks kinglet against those outputs.
//!
//! `cargo run --release -p kinglet-graph --example tflite_op_zoo -- <out dir>`

use std::path::PathBuf;

use kinglet_graph::{
    Activation, DType, Graph, GraphError, Hw, OpKind, Padding, QuantParams, TensorId,
};

/// `lcg_values` times `factor` (keeps the logits small so softmax is not saturated).
fn scaled(n: usize, seed: u32, factor: f32) -> Vec<f32> {
    lcg_values(n, seed).iter().map(|v| v * factor).collect()
}

/// Deterministic values in [-1, 1) from the seed README's LCG.
fn lcg_values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((s >> 16) & 0xff) as f32 / 128.0 - 1.0
        })
        .collect()
}

struct Layers {
    pad: OpKind,
    conv: OpKind,
    dw: OpKind,
    max: OpKind,
    avg: OpKind,
}

fn layers() -> Layers {
    Layers {
        pad: OpKind::Pad {
            paddings: vec![[0, 0], [1, 1], [1, 1], [0, 0]],
        },
        conv: OpKind::Conv2D {
            stride: Hw::ONE,
            dilation: Hw::ONE,
            padding: Padding::Valid,
            activation: Activation::Relu,
        },
        dw: OpKind::DepthwiseConv2D {
            stride: Hw::new(2, 2),
            dilation: Hw::ONE,
            padding: Padding::Same,
            depth_multiplier: 2,
            activation: Activation::Relu6,
        },
        max: OpKind::MaxPool2D {
            filter: Hw::new(2, 2),
            stride: Hw::new(2, 2),
            padding: Padding::Valid,
            activation: Activation::None,
        },
        avg: OpKind::AvgPool2D {
            filter: Hw::new(2, 2),
            stride: Hw::new(2, 2),
            padding: Padding::Valid,
            activation: Activation::None,
        },
    }
}

/// x [1,8,8,3] → pad → conv 3×3 relu → depthwise ×2 stride 2 relu6 → {max, avg} pool → add
/// → concat(add, max) → {mean, reshape → fc} → fc(mean) + fc(flat) → softmax.
fn float_zoo() -> Result<Graph, GraphError> {
    let l = layers();
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 8, 8, 3], DType::F32, None);
    let p = g.add_op_inferred(l.pad, &[x], "pad")?;
    let cw = g.add_constant_f32("conv/w", &[4, 3, 3, 3], &lcg_values(108, 1))?;
    let cb = g.add_constant_f32("conv/b", &[4], &lcg_values(4, 2))?;
    let c = g.add_op_inferred(l.conv, &[p, cw, cb], "conv")?;
    let dw = g.add_constant_f32("dw/w", &[1, 3, 3, 8], &lcg_values(72, 3))?;
    let db = g.add_constant_f32("dw/b", &[8], &lcg_values(8, 4))?;
    let d = g.add_op_inferred(l.dw, &[c, dw, db], "dw")?;
    let m = g.add_op_inferred(l.max, &[d], "max")?;
    let a = g.add_op_inferred(l.avg, &[d], "avg")?;
    let s = g.add_op_inferred(
        OpKind::Add {
            activation: Activation::None,
        },
        &[m, a],
        "add",
    )?;
    let cat = g.add_op_inferred(
        OpKind::Concatenation {
            axis: 3,
            activation: Activation::None,
        },
        &[s, m],
        "concat",
    )?;
    let mean = g.add_op_inferred(
        OpKind::Mean {
            axes: vec![1, 2],
            keep_dims: false,
        },
        &[cat],
        "mean",
    )?;
    let flat = g.add_op_inferred(
        OpKind::Reshape {
            new_shape: vec![1, 64],
        },
        &[cat],
        "flat",
    )?;
    let w1 = g.add_constant_f32("fc1/w", &[6, 64], &scaled(384, 5, 0.1))?;
    let b1 = g.add_constant_f32("fc1/b", &[6], &lcg_values(6, 6))?;
    let f1 = g.add_op_inferred(
        OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        },
        &[flat, w1, b1],
        "fc1",
    )?;
    let w2 = g.add_constant_f32("fc2/w", &[6, 16], &scaled(96, 7, 0.1))?;
    let f2 = g.add_op_inferred(
        OpKind::FullyConnected {
            activation: Activation::Relu,
            keep_num_dims: false,
        },
        &[mean, w2],
        "fc2",
    )?;
    let sum = g.add_op_inferred(
        OpKind::Add {
            activation: Activation::None,
        },
        &[f1, f2],
        "logits",
    )?;
    let prob = g.add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[sum], "prob")?;
    g.mark_output(prob);
    g.mark_output(sum);
    Ok(g)
}

fn q(scale: f32, zp: i32) -> Option<QuantParams> {
    Some(QuantParams::per_tensor(scale, zp))
}

/// Symmetric per-output-channel int8 weights along axis `axis` of `shape`.
fn weights_i8(
    g: &mut Graph,
    name: &str,
    shape: &[usize],
    axis: usize,
    seed: u32,
    factor: f32,
) -> Result<(TensorId, Vec<f32>), GraphError> {
    let values = scaled(shape.iter().product(), seed, factor);
    let channels = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let scales: Vec<f32> = (0..channels)
        .map(|c| factor / (127.0 - 7.0 * c as f32))
        .collect();
    let data: Vec<i8> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (v / scales[(i / inner) % channels])
                .round()
                .clamp(-127.0, 127.0) as i8
        })
        .collect();
    let quant = QuantParams::per_axis(scales.clone(), vec![0; channels], axis);
    Ok((g.add_constant_i8(name, shape, &data, Some(quant))?, scales))
}

fn bias_i32(
    g: &mut Graph,
    name: &str,
    in_scale: f32,
    w_scales: &[f32],
    seed: u32,
) -> Result<TensorId, GraphError> {
    let values = lcg_values(w_scales.len(), seed);
    let scales: Vec<f32> = w_scales.iter().map(|w| in_scale * w).collect();
    let data: Vec<i32> = values
        .iter()
        .zip(&scales)
        .map(|(v, s)| (v / s).round() as i32)
        .collect();
    let quant = QuantParams::per_axis(scales.clone(), vec![0; scales.len()], 0);
    let quant = if scales.len() == 1 {
        QuantParams::per_tensor(scales[0], 0)
    } else {
        quant
    };
    g.add_constant_i32(name, &[w_scales.len()], &data, Some(quant))
}

/// The same structure in full int8: f32 input → QUANTIZE → int8 ops → int8 softmax output,
/// plus a DEQUANTIZE'd logits output and a requantising QUANTIZE (int8 → int8).
fn int8_zoo() -> Result<Graph, GraphError> {
    let l = layers();
    let mut g = Graph::new();
    let x = g.add_input("x", &[1, 8, 8, 3], DType::F32, None);
    let (xs, xz) = (1.0 / 128.0, 0);
    let xq = g.add_activation("x_q", &[1, 8, 8, 3], DType::I8, q(xs, xz));
    g.add_op(OpKind::Quantize, &[x], &[xq]);
    let p = g.add_op_inferred(l.pad, &[xq], "pad")?;
    g.tensor_mut(p).quant = q(xs, xz);
    let (cw, cws) = weights_i8(&mut g, "conv/w", &[4, 3, 3, 3], 0, 1, 1.0)?;
    let cb = bias_i32(&mut g, "conv/b", xs, &cws, 2)?;
    let c = g.add_op_inferred(l.conv, &[p, cw, cb], "conv")?;
    let (cs, cz) = (0.03, -128);
    g.tensor_mut(c).quant = q(cs, cz);
    let (dw, dws) = weights_i8(&mut g, "dw/w", &[1, 3, 3, 8], 3, 3, 1.0)?;
    let db = bias_i32(&mut g, "dw/b", cs, &dws, 4)?;
    let d = g.add_op_inferred(l.dw, &[c, dw, db], "dw")?;
    let (ds, dz) = (6.0 / 255.0, -128);
    g.tensor_mut(d).quant = q(ds, dz);
    let m = g.add_op_inferred(l.max, &[d], "max")?;
    g.tensor_mut(m).quant = q(ds, dz);
    let a = g.add_op_inferred(l.avg, &[d], "avg")?;
    g.tensor_mut(a).quant = q(ds, dz);
    let s = g.add_op_inferred(
        OpKind::Add {
            activation: Activation::None,
        },
        &[m, a],
        "add",
    )?;
    g.tensor_mut(s).quant = q(2.0 * ds, dz);
    // Concat in int8 needs equal quantisation on all inputs: requantise `m` to `s`'s.
    let mr = g.add_activation("max_rq", &[1, 2, 2, 8], DType::I8, q(2.0 * ds, dz));
    g.add_op(OpKind::Quantize, &[m], &[mr]);
    let cat = g.add_op_inferred(
        OpKind::Concatenation {
            axis: 3,
            activation: Activation::None,
        },
        &[s, mr],
        "concat",
    )?;
    g.tensor_mut(cat).quant = q(2.0 * ds, dz);
    let mean = g.add_op_inferred(
        OpKind::Mean {
            axes: vec![1, 2],
            keep_dims: false,
        },
        &[cat],
        "mean",
    )?;
    g.tensor_mut(mean).quant = q(ds, dz);
    let flat = g.add_op_inferred(
        OpKind::Reshape {
            new_shape: vec![1, 64],
        },
        &[cat],
        "flat",
    )?;
    g.tensor_mut(flat).quant = q(2.0 * ds, dz);
    let (w1, w1s) = weights_i8(&mut g, "fc1/w", &[6, 64], 0, 5, 0.1)?;
    let b1 = bias_i32(&mut g, "fc1/b", 2.0 * ds, &w1s, 6)?;
    let f1 = g.add_op_inferred(
        OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        },
        &[flat, w1, b1],
        "fc1",
    )?;
    g.tensor_mut(f1).quant = q(0.02, 3);
    let (w2, _) = weights_i8(&mut g, "fc2/w", &[6, 16], 0, 7, 0.1)?;
    let f2 = g.add_op_inferred(
        OpKind::FullyConnected {
            activation: Activation::Relu,
            keep_num_dims: false,
        },
        &[mean, w2],
        "fc2",
    )?;
    g.tensor_mut(f2).quant = q(0.01, -128);
    let sum = g.add_op_inferred(
        OpKind::Add {
            activation: Activation::None,
        },
        &[f1, f2],
        "logits",
    )?;
    g.tensor_mut(sum).quant = q(0.025, -5);
    let prob = g.add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[sum], "prob")?;
    g.tensor_mut(prob).quant = q(1.0 / 256.0, -128);
    let logits = g.add_op_inferred(OpKind::Dequantize, &[sum], "logits_f32")?;
    g.mark_output(prob);
    g.mark_output(logits);
    Ok(g)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: tflite_op_zoo <out dir>")?,
    );
    std::fs::create_dir_all(&dir)?;
    for (name, g) in [("zoo_f32", float_zoo()?), ("zoo_i8", int8_zoo()?)] {
        let path = dir.join(format!("{name}.tflite"));
        kinglet_graph::tflite::write_tflite_file(&g, &path)?;
        println!("wrote {} ({} ops)", path.display(), g.ops.len());
    }
    Ok(())
}
