//! Float16 post-training quantisation: the weights and biases of Conv2D, DepthwiseConv2D and
//! FullyConnected are stored as IEEE half floats behind a DEQUANTIZE op (exactly the graph
//! shape TensorFlow's converter writes for `supported_types=[tf.float16]`), activations stay
//! f32. Halves the weight bytes; TFLite and kinglet's interpreter (after
//! [`kinglet_graph::passes::fold_constants`]) run the result with f32 kernels.

use std::collections::BTreeMap;

use kinglet_graph::{DType, Graph, Op, OpKind, TensorId};

use crate::error::CompressError;

/// Converts an f32 to IEEE half-precision bits, rounding to nearest, ties to even (as
/// numpy's `astype(float16)` and TensorFlow's converter do); overflow gives ±infinity.
pub fn f32_to_f16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        // Infinity stays infinity; NaN keeps a set quiet bit.
        let nan = if mant != 0 { 0x200 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    let half_exp = exp - 127 + 15;
    if half_exp >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exp <= 0 {
        // Subnormal (or zero) half: value = m · 2^-24 with m = full_mantissa · 2^(exp-126-... ).
        if half_exp < -10 {
            return sign;
        }
        let full = mant | 0x80_0000;
        let shift = (14 - half_exp) as u32; // bits dropped from the 24-bit significand
        let kept = full >> shift;
        let rest = full & ((1 << shift) - 1);
        let halfway = 1 << (shift - 1);
        let round_up = rest > halfway || (rest == halfway && kept & 1 == 1);
        return sign | (kept + u32::from(round_up)) as u16;
    }
    let kept = (half_exp as u32) << 10 | (mant >> 13);
    let rest = mant & 0x1fff;
    let round_up = rest > 0x1000 || (rest == 0x1000 && kept & 1 == 1);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | (kept + u32::from(round_up)) as u16
}

/// The float16 version of a float graph. Each f32 constant read by a Conv2D, DepthwiseConv2D
/// or FullyConnected (filter, weights, bias) becomes an f16 constant named `<name>_f16` and a
/// DEQUANTIZE op at the start of the graph producing the original tensor (same id and name),
/// so consumers are unchanged. A constant shared by several ops is converted once.
pub fn quantize_float16(graph: &Graph) -> Result<Graph, CompressError> {
    graph.validate()?;
    if let Some(t) = graph
        .tensors
        .iter()
        .find(|t| !t.is_constant() && t.dtype != DType::F32)
    {
        return Err(CompressError::NotFloat(format!(
            "activation '{}' is {}, float16 quantisation needs a float32 model",
            t.name, t.dtype
        )));
    }
    let mut g = graph.clone();
    let mut converted: BTreeMap<TensorId, TensorId> = BTreeMap::new();
    let mut dequantize_ops = Vec::new();
    for op in &graph.ops {
        let weighted = matches!(
            op.kind,
            OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } | OpKind::FullyConnected { .. }
        );
        if !weighted {
            continue;
        }
        for &id in op.inputs.iter().skip(1) {
            let t = graph.tensor(id);
            if converted.contains_key(&id) || t.dtype != DType::F32 {
                continue;
            }
            let Some(values) = t.data_f32() else {
                continue;
            };
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(CompressError::Unsupported(format!(
                    "constant '{}' holds a non-finite value at index {i}",
                    t.name
                )));
            }
            let bytes: Vec<u8> = values
                .iter()
                .flat_map(|v| f32_to_f16(*v).to_le_bytes())
                .collect();
            let half =
                g.add_constant(format!("{}_f16", t.name), &t.shape, DType::F16, None, bytes)?;
            let target = g.tensor_mut(id);
            target.data = None;
            target.quant = None;
            converted.insert(id, half);
            dequantize_ops.push(Op {
                kind: OpKind::Dequantize,
                inputs: vec![half],
                outputs: vec![id],
            });
        }
    }
    if converted.is_empty() {
        return Err(CompressError::Unsupported(
            "the model has no float32 Conv2D, DepthwiseConv2D or FullyConnected constants".into(),
        ));
    }
    dequantize_ops.append(&mut g.ops);
    g.ops = dequantize_ops;
    g.validate()?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinglet_graph::passes::f16_to_f32;

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(f32_to_f16(0.0), 0);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.5), 0xc100);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up past the largest finite half
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        // Smallest subnormal 2^-24, and half of it (a tie to even zero), and just above half.
        assert_eq!(f32_to_f16(2f32.powi(-24)), 1);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0);
        assert_eq!(f32_to_f16(2f32.powi(-25) * 1.0001), 1);
        assert_eq!(f32_to_f16(3.0 * 2f32.powi(-25)), 2);
        // Largest subnormal rounds up into the smallest normal.
        assert_eq!(f32_to_f16(2f32.powi(-14) * (1.0 - 2f32.powi(-12))), 0x0400);
    }

    #[test]
    fn every_half_round_trips() {
        for bits in 0..=u16::MAX {
            let v = f16_to_f32(bits);
            if v.is_nan() {
                continue;
            }
            assert_eq!(f32_to_f16(v), bits, "{bits:#06x}");
        }
    }

    #[test]
    fn weights_move_behind_dequantize() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 4], DType::F32, None);
        let w = g
            .add_constant_f32("w", &[2, 4], &[0.1, 0.2, 0.3, 0.4, 1.0, -1.0, 0.5, 1e-3])
            .unwrap();
        let b = g.add_constant_f32("b", &[2], &[0.25, -0.125]).unwrap();
        let y = g
            .add_op_inferred(
                OpKind::FullyConnected {
                    activation: kinglet_graph::Activation::None,
                    keep_num_dims: false,
                },
                &[x, w, b],
                "y",
            )
            .unwrap();
        g.mark_output(y);
        let h = quantize_float16(&g).unwrap();
        assert_eq!(h.ops.len(), 3);
        assert_eq!(h.ops[0].kind, OpKind::Dequantize);
        assert_eq!(h.ops[0].outputs, vec![w]);
        assert!(!h.tensor(w).is_constant());
        assert_eq!(h.tensor(h.ops[0].inputs[0]).dtype, DType::F16);
        assert!(h.weight_bytes() < g.weight_bytes());
        // An integer model is refused with the tensor's name.
        let mut q = Graph::new();
        let xi = q.add_input("xi", &[1, 4], DType::I8, None);
        q.mark_output(xi);
        let err = quantize_float16(&q).unwrap_err().to_string();
        assert!(err.contains("'xi'"), "{err}");
    }
}
