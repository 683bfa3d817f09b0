//! Lowering of a16w8 models (int16 activations, int8 weights, int64 biases) to
//! [`S16Step`]s, with the constants kinglet-graph's host interpreter prepares for the same ops
//! (`interp::s16::prepare`, reference kernels), so the firmware computes what the host does.

use kinglet_graph::{Activation, DType, Op, OpKind, Tensor};
use kinglet_micro::quant::{
    activation_range_quantized, conv_output_multipliers, fc_reference_scales,
};
use kinglet_micro::s16::softmax::SoftmaxS16;

use super::{
    Lowering, dims4, fc_dims, filter_dims, fused, mean_requant, mean_view, op_err, weight_scales,
};
use crate::error::CompileError;
use crate::program::{Step, StepKind};
use crate::s16::{Quant16Data, S16Step};

/// Scale of a symmetric per-tensor int16 tensor (the only kind the 16×8 scheme has).
pub(super) fn scale16(t: &Tensor) -> Option<f32> {
    let q = t.quant.as_ref()?;
    (t.dtype == DType::I16 && q.is_per_tensor() && q.zero_point[0] == 0).then(|| q.scale[0])
}

/// The fused activation's clamp in int16 output units.
fn act_range16(act: Activation, output_scale: f32) -> (i32, i32) {
    activation_range_quantized(
        fused(act),
        output_scale,
        0,
        i32::from(i16::MIN),
        i32::from(i16::MAX),
    )
}

/// The op's optional constant int64 bias (input 2) of `len` values.
fn bias64(
    lowering: &Lowering<'_>,
    index: usize,
    op: &Op,
    len: usize,
) -> Result<Option<Vec<i64>>, CompileError> {
    let Some(&b) = op.inputs.get(2) else {
        return Ok(None);
    };
    let t = lowering.tensor(index, op, b)?;
    let values: Vec<i64> = match (&t.data, t.dtype) {
        (Some(d), DType::I64) => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        _ => {
            return Err(op_err(
                index,
                op,
                format!(
                    "bias '{}' must be an int64 constant for int16 input, is {}",
                    t.name, t.dtype
                ),
            ));
        }
    };
    if values.len() != len {
        return Err(op_err(
            index,
            op,
            format!("bias has {} values for {len} outputs", values.len()),
        ));
    }
    Ok(Some(values))
}

/// Int8 weights (the 16×8 scheme has no packed ones).
fn weights8(index: usize, op: &Op, w: &Tensor) -> Result<Vec<i8>, CompileError> {
    match (&w.data, w.dtype) {
        (Some(d), DType::I8) => Ok(d.iter().map(|&b| b as i8).collect()),
        _ => Err(op_err(
            index,
            op,
            format!(
                "weights '{}' must be an int8 constant for int16 input, are {}",
                w.name, w.dtype
            ),
        )),
    }
}

/// Whether every window of a pool along one axis covers at least one input position
/// (kinglet-micro's average pool refuses a window lying entirely in padding; the C kernel
/// cannot report that, so such a pool is refused at compile time).
fn windows_cover_input(size: usize, out: usize, filter: usize, stride: usize, pad: usize) -> bool {
    (0..out).all(|o| {
        let start = o * stride;
        start + filter > pad && start < pad + size
    })
}

impl Lowering<'_> {
    /// Scale of the int16 tensor `t`, or an error naming the op and `what`.
    fn scale16_of(
        &self,
        index: usize,
        op: &Op,
        t: &Tensor,
        what: &str,
    ) -> Result<f32, CompileError> {
        scale16(t).ok_or_else(|| {
            op_err(
                index,
                op,
                format!(
                    "{what} '{}' is {}; an a16w8 model keeps symmetric per-tensor int16 activations throughout",
                    t.name, t.dtype
                ),
            )
        })
    }

    fn push_s16(&mut self, name: &str, index: usize, macs: usize, step: S16Step) {
        let layer = self.push_layer(name.into(), vec![index], macs);
        self.steps.push(Step {
            layer,
            kind: StepKind::S16(step),
        });
    }

    /// Lowers one op of an a16w8 model; returns how many ops it consumed.
    pub(super) fn s16_op(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        match &op.kind {
            OpKind::Reshape { .. } => self.reshape(index, op),
            OpKind::Concatenation { axis, activation } => {
                if *activation != Activation::None {
                    return Err(op_err(index, op, "a fused activation is not supported"));
                }
                let (_, y) = self.output(index, op)?;
                let ys = self.scale16_of(index, op, y, "output")?;
                self.concatenation_copies(index, op, *axis, false, |slot, x| {
                    // TFLite's int16 concatenation requires the output's scale: a copy is exact.
                    if scale16(x) != Some(ys) {
                        return Err(format!(
                            "input {slot} is not int16 with the output's scale (requantising concatenation is not compiled)"
                        ));
                    }
                    if x.shape.len() != y.shape.len() || x.shape[..*axis] != y.shape[..*axis] {
                        return Err(format!(
                            "input {slot} shape {:?} does not fit output {:?}",
                            x.shape, y.shape
                        ));
                    }
                    Ok(())
                })
            }
            OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } => self.s16_conv(index, op),
            OpKind::FullyConnected { .. } => self.s16_fully_connected(index, op),
            OpKind::MaxPool2D { .. } | OpKind::AvgPool2D { .. } => self.s16_pool(index, op),
            OpKind::Mean { .. } => self.s16_mean(index, op),
            OpKind::Softmax { beta } => self.s16_softmax(index, op, *beta),
            other => Err(op_err(
                index,
                op,
                format!("{} has no compiled int16 (a16w8) kernel yet", other.name()),
            )),
        }
    }

    fn s16_conv(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let (depth_multiplier, name) = match op.kind {
            OpKind::DepthwiseConv2D {
                depth_multiplier, ..
            } => (Some(depth_multiplier), "DEPTHWISE_CONV_2D"),
            _ => (None, "CONV_2D"),
        };
        let x = self.input(index, op, 0)?;
        let w = self.input(index, op, 1)?;
        let (out_id, y) = self.output(index, op)?;
        let (xd, wd, yd) = filter_dims(index, op, x, w, y)?;
        let weights = weights8(index, op, w)?;
        let channels = yd[3];
        let bias = bias64(self, index, op, channels)?;
        let xs = self.scale16_of(index, op, x, "input")?;
        let ys = self.scale16_of(index, op, y, "output")?;
        let mut multipliers = vec![0; channels];
        let mut shifts = vec![0; channels];
        conv_output_multipliers(
            xs,
            weight_scales(index, op, w, channels)?,
            ys,
            &mut multipliers,
            &mut shifts,
        )
        .map_err(|e| op_err(index, op, format!("requantisation: {e}")))?;
        // The kernels' 64-bit requantisation takes shifts in -31..=7 (the C port cannot say
        // otherwise at run time).
        shifts
            .iter()
            .try_for_each(|&s| kinglet_micro::s16::check_shift_i64(s))
            .map_err(|e| op_err(index, op, format!("requantisation: {e}")))?;
        let (act_min, act_max) = act_range16(op.kind.activation(), ys);
        let geometry = self.conv_geometry(index, op, xd, wd)?;
        let macs = yd[0]
            * yd[1]
            * yd[2]
            * channels
            * wd[1]
            * wd[2]
            * if depth_multiplier.is_some() { 1 } else { wd[3] };
        let src = self.src_loc(index, op)?;
        let dst = self.dst_loc(out_id);
        self.push_s16(
            name,
            index,
            macs,
            S16Step::Conv2D {
                src,
                dst,
                input: xd,
                output: yd,
                filter: wd,
                geometry,
                depth_multiplier,
                weights,
                bias,
                requant: Quant16Data {
                    multipliers,
                    shifts,
                    act_min,
                    act_max,
                },
            },
        );
        Ok(1)
    }

    fn s16_fully_connected(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let x = self.input(index, op, 0)?;
        let w = self.input(index, op, 1)?;
        let (out_id, y) = self.output(index, op)?;
        let (batches, in_len, out_len) = fc_dims(index, op, x, w)?;
        let weights = weights8(index, op, w)?;
        let bias = bias64(self, index, op, out_len)?;
        let xs = self.scale16_of(index, op, x, "input")?;
        let ys = self.scale16_of(index, op, y, "output")?;
        let mut scales = vec![0.0; out_len];
        fc_reference_scales(xs, weight_scales(index, op, w, out_len)?, ys, &mut scales)
            .map_err(|e| op_err(index, op, format!("requantisation: {e}")))?;
        if let Some(bad) = scales.iter().position(|s| !s.is_finite()) {
            return Err(op_err(
                index,
                op,
                format!("requantisation scale of output {bad} is not finite"),
            ));
        }
        let (act_min, act_max) = act_range16(op.kind.activation(), ys);
        let src = self.src_loc(index, op)?;
        let dst = self.dst_loc(out_id);
        self.push_s16(
            "FULLY_CONNECTED",
            index,
            batches * in_len * out_len,
            S16Step::FullyConnected {
                src,
                dst,
                batches,
                in_len,
                out_len,
                weights,
                bias,
                scales,
                act_min,
                act_max,
            },
        );
        Ok(1)
    }

    fn s16_pool(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let average = matches!(op.kind, OpKind::AvgPool2D { .. });
        let x = self.input(index, op, 0)?;
        let (out_id, y) = self.output(index, op)?;
        let (Some(xd), Some(yd)) = (dims4(x), dims4(y)) else {
            return Err(op_err(index, op, "input and output must be 4D NHWC"));
        };
        let ys = self.scale16_of(index, op, y, "output")?;
        if self.scale16_of(index, op, x, "input")? != ys {
            return Err(op_err(
                index,
                op,
                "int16 pooling needs equal input and output scales",
            ));
        }
        let window = self.pool_window(index, op, xd)?;
        if average
            && !(windows_cover_input(xd[1], yd[1], window[0], window[2], window[4])
                && windows_cover_input(xd[2], yd[2], window[1], window[3], window[5]))
        {
            return Err(op_err(
                index,
                op,
                "a pooling window lies entirely in padding",
            ));
        }
        let (act_min, act_max) = act_range16(op.kind.activation(), ys);
        let src = self.src_loc(index, op)?;
        let dst = self.dst_loc(out_id);
        self.push_s16(
            op.kind.name(),
            index,
            0,
            S16Step::Pool2D {
                src,
                dst,
                input: xd,
                output: yd,
                window,
                average,
                act_min,
                act_max,
            },
        );
        Ok(1)
    }

    fn s16_mean(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::Mean { axes, .. } = &op.kind else {
            unreachable!("dispatched on Mean");
        };
        let x = self.input(index, op, 0)?;
        let (out_id, y) = self.output(index, op)?;
        let view = mean_view(index, op, axes, &x.shape)?;
        let xs = self.scale16_of(index, op, x, "input")?;
        let ys = self.scale16_of(index, op, y, "output")?;
        if view[1] == 0 || !(xs > 0.0 && ys > 0.0) {
            return Err(op_err(index, op, "empty mean or non-positive scales"));
        }
        let (multiplier, shift) = mean_requant(index, op, xs, ys, view[1])?;
        let src = self.src_loc(index, op)?;
        let dst = self.dst_loc(out_id);
        self.push_s16(
            "MEAN",
            index,
            0,
            S16Step::Mean {
                src,
                dst,
                view,
                scales: [xs, ys],
                multiplier,
                shift,
            },
        );
        Ok(1)
    }

    fn s16_softmax(&mut self, index: usize, op: &Op, beta: f32) -> Result<usize, CompileError> {
        let x = self.input(index, op, 0)?;
        let (out_id, y) = self.output(index, op)?;
        let xs = self.scale16_of(index, op, x, "input")?;
        let ys = self.scale16_of(index, op, y, "output")?;
        if (ys - 1.0 / 32768.0).abs() > 0.001 / 32768.0 {
            return Err(op_err(
                index,
                op,
                format!("int16 softmax output must have scale 1/32768, has {ys}"),
            ));
        }
        let depth = y.shape.last().copied().unwrap_or(1);
        // The sum of a row's exponentials (each at most 32767) must stay below 2^31.
        if depth == 0 || depth > 65536 || !y.elements().is_multiple_of(depth) {
            return Err(op_err(
                index,
                op,
                format!("softmax depth {depth} outside 1..=65536"),
            ));
        }
        let tables = SoftmaxS16::with_exp(xs, beta, f64::exp)
            .map_err(|e| op_err(index, op, format!("softmax tables: {e}")))?;
        let src = self.src_loc(index, op)?;
        let dst = self.dst_loc(out_id);
        self.push_s16(
            "SOFTMAX",
            index,
            0,
            S16Step::Softmax {
                src,
                dst,
                rows: y.elements() / depth,
                depth,
                exp_lut: tables.exp_lut.to_vec(),
                one_over_one_plus_x_lut: tables.one_over_one_plus_x_lut.to_vec(),
                input_multiplier: tables.input_multiplier,
                input_left_shift: tables.input_left_shift,
            },
        );
        Ok(1)
    }
}
