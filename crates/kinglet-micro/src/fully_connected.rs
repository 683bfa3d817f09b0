//! Fully connected layer: `out[b][o] = act(Σ_i W[o][i] · in[b][i] + bias[o])`, weights stored
//! `[out_features, in_features]` (TFLite layout). The input is any tensor whose element count
//! is `batches · in_features` (TFLite flattens it the same way).
//! Quantised arithmetic as TFLite `reference_integer_ops::FullyConnected` (int8, per-tensor or
//! per-channel) and `reference_ops::FullyConnected` (legacy uint8).

use crate::conv2d::{ActivationF32, QuantParams, dot_q8};
use crate::error::{KernelError, check_len};
use crate::tensor::Quant8;

/// Dimensions of a fully-connected op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FcShape {
    /// Rows of the flattened input.
    pub batches: usize,
    /// Input features (reduction depth).
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

impl FcShape {
    pub(crate) fn check<A, B, C, D>(
        &self,
        input: &[A],
        weights: &[B],
        bias: Option<&[D]>,
        output: &[C],
    ) -> Result<(), KernelError> {
        let overflow = KernelError::InvalidParam {
            what: "fully_connected: dimensions overflow usize",
        };
        let n_in = self.batches.checked_mul(self.in_features).ok_or(overflow)?;
        let n_w = self
            .out_features
            .checked_mul(self.in_features)
            .ok_or(overflow)?;
        let n_out = self
            .batches
            .checked_mul(self.out_features)
            .ok_or(overflow)?;
        check_len("fully_connected input", input.len(), n_in)?;
        check_len("fully_connected weights", weights.len(), n_w)?;
        check_len("fully_connected output", output.len(), n_out)?;
        if let Some(b) = bias {
            check_len("fully_connected bias", b.len(), self.out_features)?;
        }
        Ok(())
    }
}

/// Int8 fully connected (symmetric weights: `filter_offset` 0).
pub fn fully_connected_i8(
    shape: FcShape,
    quant: &QuantParams<'_>,
    input: &[i8],
    weights: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<(), KernelError> {
    fc_q8(shape, quant, input, weights, bias, output)
}

/// Legacy uint8 fully connected.
pub fn fully_connected_u8(
    shape: FcShape,
    quant: &QuantParams<'_>,
    input: &[u8],
    weights: &[u8],
    bias: Option<&[i32]>,
    output: &mut [u8],
) -> Result<(), KernelError> {
    fc_q8(shape, quant, input, weights, bias, output)
}

fn fc_q8<T: Quant8>(
    s: FcShape,
    q: &QuantParams<'_>,
    input: &[T],
    weights: &[T],
    bias: Option<&[i32]>,
    output: &mut [T],
) -> Result<(), KernelError> {
    s.check(input, weights, bias, output)?;
    q.check::<T>(s.out_features)?;
    if s.out_features == 0 || s.in_features == 0 {
        for row in output.chunks_exact_mut(s.out_features.max(1)) {
            for (o, v) in row.iter_mut().enumerate() {
                *v = q.finish(bias.map_or(0, |b| b[o]), o);
            }
        }
        return Ok(());
    }
    for (x, out_row) in input
        .chunks_exact(s.in_features)
        .zip(output.chunks_exact_mut(s.out_features))
    {
        for (o, (w, out_v)) in weights
            .chunks_exact(s.in_features)
            .zip(out_row.iter_mut())
            .enumerate()
        {
            let acc = dot_q8(w, x, q.filter_offset, q.input_offset)
                .wrapping_add(bias.map_or(0, |b| b[o]));
            *out_v = q.finish(acc, o);
        }
    }
    Ok(())
}

/// Float fully connected.
pub fn fully_connected_f32(
    s: FcShape,
    act: ActivationF32,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) -> Result<(), KernelError> {
    s.check(input, weights, bias, output)?;
    if s.out_features == 0 {
        return Ok(());
    }
    for (b_idx, out_row) in output.chunks_exact_mut(s.out_features).enumerate() {
        let x = &input[b_idx * s.in_features..(b_idx + 1) * s.in_features];
        for (o, out_v) in out_row.iter_mut().enumerate() {
            let w = &weights[o * s.in_features..(o + 1) * s.in_features];
            let mut acc = 0.0f32;
            for (&wi, &xi) in w.iter().zip(x) {
                acc += wi * xi;
            }
            if let Some(b) = bias {
                acc += b[o];
            }
            *out_v = act.apply(acc);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Requant, quantize_multiplier};

    #[test]
    fn uint8_with_zero_points_hand_checked() {
        // Weights zp 128, input zp 100, multiplier 0.5, output zp 10.
        let (m, s) = quantize_multiplier(0.5).unwrap();
        let (ms, ss) = ([m], [s]);
        let q = QuantParams {
            input_offset: -100,
            filter_offset: -128,
            output_offset: 10,
            requant: Requant::new(&ms, &ss),
            act_min: 0,
            act_max: 255,
        };
        let shape = FcShape {
            batches: 2,
            in_features: 2,
            out_features: 1,
        };
        let mut out = [0u8; 2];
        // Row 1: (130-128)(104-100) + (126-128)(99-100) = 8 + 2 = 10, +bias 4 = 14 → 7 + 10.
        // Row 2: (130-128)(0-100) + (126-128)(255-100) = -200 - 310 = -510 + 4 → -253 → 0.
        fully_connected_u8(
            shape,
            &q,
            &[104, 99, 0, 255],
            &[130, 126],
            Some(&[4]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [17, 0]);
        assert!(fully_connected_u8(shape, &q, &[104, 99, 0], &[130, 126], None, &mut out).is_err());
    }

    #[test]
    fn double_requant_rounds_ties_away_from_zero() {
        let scales = [0.5f64];
        let q = QuantParams {
            input_offset: 0,
            filter_offset: 0,
            output_offset: 0,
            requant: Requant::double(&scales),
            act_min: -128,
            act_max: 127,
        };
        let shape = FcShape {
            batches: 2,
            in_features: 1,
            out_features: 1,
        };
        let mut out = [0i8; 2];
        fully_connected_i8(shape, &q, &[3, -3], &[1], None, &mut out).unwrap();
        assert_eq!(out, [2, -2]);
    }
}
