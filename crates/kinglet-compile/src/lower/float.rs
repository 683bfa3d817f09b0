//! Lowering of float models (float32, float16 weights, dynamic range) to [`FloatStep`]s: the
//! same kernel choice and constants as kinglet-graph's host interpreter (`prepare_op` /
//! `prepare_hybrid`), so the firmware computes exactly what the host computes.

use kinglet_graph::{DType, Op, OpKind, Tensor, TensorId};
use kinglet_micro::conv2d::ActivationF32;

use super::{Lowering, dims4, fc_dims, filter_dims, fused, op_err, sanitize};
use crate::error::CompileError;
use crate::float::{FloatConst, FloatStep, HybridKind, widened_len};
use crate::program::{Elem, KernelSet, Loc, Step, StepKind};

/// Whether the graph's inputs and output are all float32 (a float model); errors if they mix
/// float and other types.
pub(super) fn is_float_model(ends: &[&Tensor]) -> Result<bool, CompileError> {
    let floats = ends.iter().filter(|t| t.dtype == DType::F32).count();
    if floats == 0 {
        return Ok(false);
    }
    if floats != ends.len() {
        return Err(CompileError::Unsupported(
            "graph inputs and output mix float32 and other types; compiled models take int8 \
             or float32 at both ends"
                .into(),
        ));
    }
    Ok(true)
}

fn f32_values(t: &Tensor) -> Option<Vec<f32>> {
    let d = t.data.as_ref()?;
    (t.dtype == DType::F32).then(|| {
        d.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

fn act_range(op: &Op) -> [f32; 2] {
    let a = ActivationF32::from_fused(fused(op.kind.activation()));
    [a.min, a.max]
}

impl Lowering<'_> {
    /// Pushes a float op's one step as its own layer, writing the op's output location
    /// (allocated after the scratch buffers the caller made, as buffers are numbered).
    fn push_float_step(
        &mut self,
        name: String,
        index: usize,
        macs: usize,
        out_id: TensorId,
        step: impl FnOnce(Loc) -> FloatStep,
    ) -> Result<usize, CompileError> {
        let layer = self.push_layer(name, vec![index], macs);
        let dst = self.float_dst(out_id);
        self.steps.push(Step {
            layer,
            kind: StepKind::Float(step(dst)),
        });
        Ok(1)
    }

    /// A new f32 arena buffer.
    fn float_buffer(&mut self, name: &str, len: usize) -> Loc {
        self.new_buffer(name, Elem::F32, len)
    }

    /// Location of a float op's output: the caller's output array or a new f32 buffer.
    pub(super) fn float_dst(&mut self, id: TensorId) -> Loc {
        let loc = if self.graph.outputs[0] == id {
            Loc::Output
        } else {
            let t = self.graph.tensor(id);
            let name = format!("t{}_{}", id.0, sanitize(&t.name));
            self.float_buffer(&name, t.elements())
        };
        self.locs.insert(id, loc);
        loc
    }

    /// A float constant input (weights or bias): float32 data, or float16 data behind a
    /// DEQUANTIZE lowered earlier.
    fn float_const(
        &self,
        index: usize,
        op: &Op,
        slot: usize,
        what: &str,
    ) -> Result<FloatConst, CompileError> {
        let id = op.inputs[slot];
        if let Some(half) = self.half_consts.get(&id) {
            return Ok(FloatConst::F16(half.clone()));
        }
        let t = self.tensor(index, op, id)?;
        f32_values(t).map(FloatConst::F32).ok_or_else(|| {
            op_err(
                index,
                op,
                format!(
                    "{what} '{}' must be a float32 constant or a float16 one behind DEQUANTIZE (is {})",
                    t.name, t.dtype
                ),
            )
        })
    }

    fn float_bias(
        &self,
        index: usize,
        op: &Op,
        len: usize,
    ) -> Result<Option<FloatConst>, CompileError> {
        if op.inputs.len() <= 2 {
            return Ok(None);
        }
        let b = self.float_const(index, op, 2, "bias")?;
        if b.len() != len {
            return Err(op_err(
                index,
                op,
                format!("bias has {} values, expected {len}", b.len()),
            ));
        }
        Ok(Some(b))
    }

    /// Lowers one op of a float model; returns how many ops it consumed.
    pub(super) fn float_op(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        if let Some(&first) = op.inputs.first() {
            let x = self.tensor(index, op, first)?;
            let half_dequantize = matches!(op.kind, OpKind::Dequantize) && x.dtype == DType::F16;
            if x.dtype != DType::F32 && !half_dequantize {
                return Err(op_err(
                    index,
                    op,
                    format!(
                        "input '{}' is {} in a float model (only float32 activations compile)",
                        x.name, x.dtype
                    ),
                ));
            }
        }
        match &op.kind {
            OpKind::Dequantize => self.half_dequantize(index, op),
            OpKind::Reshape { .. } => self.reshape(index, op),
            OpKind::Conv2D { .. } | OpKind::DepthwiseConv2D { .. } => self.float_conv(index, op),
            OpKind::FullyConnected { .. } => self.float_fully_connected(index, op),
            OpKind::MaxPool2D { .. } => self.float_max_pool(index, op),
            OpKind::Concatenation { .. } => self.float_concatenation(index, op),
            OpKind::Mean { .. } => self.float_mean(index, op),
            other => Err(op_err(
                index,
                op,
                format!("float {} has no compiled kernel yet", other.name()),
            )),
        }
    }

    /// DEQUANTIZE of a float16 constant: no step; consumers read the half floats from flash.
    fn half_dequantize(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let x = self.input(index, op, 0)?;
        let (out_id, y) = self.output(index, op)?;
        let data = x.data.as_ref().filter(|_| x.dtype == DType::F16);
        let Some(data) = data else {
            return Err(op_err(
                index,
                op,
                "only DEQUANTIZE of a float16 constant compiles in a float model",
            ));
        };
        if y.dtype != DType::F32 || data.len() != 2 * y.elements() {
            return Err(op_err(
                index,
                op,
                "float16 DEQUANTIZE must give float32 of the same size",
            ));
        }
        let half = data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        self.half_consts.insert(out_id, half);
        Ok(1)
    }

    /// Per-output-channel hybrid weight scales (one scale is broadcast), as the host's
    /// `prepare_hybrid` takes them.
    fn hybrid_scales(
        &self,
        index: usize,
        op: &Op,
        w: &Tensor,
        channels: usize,
        axis: usize,
    ) -> Result<Vec<f32>, CompileError> {
        let q = w
            .quant
            .as_ref()
            .ok_or_else(|| op_err(index, op, "int8 weights have no quantisation"))?;
        if q.zero_point.iter().any(|&z| z != 0) {
            return Err(op_err(
                index,
                op,
                "hybrid weights must be symmetric (zero point 0)",
            ));
        }
        if q.scale.len() == channels && (channels == 1 || q.axis == axis) {
            Ok(q.scale.clone())
        } else if q.scale.len() == 1 {
            Ok(vec![q.scale[0]; channels])
        } else {
            Err(op_err(
                index,
                op,
                format!(
                    "hybrid weights have {} scales on axis {}, expected {channels} on axis {axis}",
                    q.scale.len(),
                    q.axis
                ),
            ))
        }
    }

    fn hybrid_bias(
        &self,
        index: usize,
        op: &Op,
        len: usize,
    ) -> Result<Option<Vec<f32>>, CompileError> {
        match self.float_bias(index, op, len)? {
            None => Ok(None),
            Some(FloatConst::F32(b)) => Ok(Some(b)),
            Some(FloatConst::F16(_)) => Err(op_err(
                index,
                op,
                "a hybrid op's bias must be float32, not float16",
            )),
        }
    }

    fn float_conv(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let x = self.input(index, op, 0)?;
        let w = self.input(index, op, 1)?;
        let (out_id, y) = self.output(index, op)?;
        let (xd, wd, yd) = filter_dims(index, op, x, w, y)?;
        let geometry = self.conv_geometry(index, op, xd, wd)?;
        let act = act_range(op);
        let src = self.src_loc(index, op)?;
        let (name, macs, depth_multiplier) = match op.kind {
            OpKind::DepthwiseConv2D {
                depth_multiplier, ..
            } => (
                "DEPTHWISE_CONV_2D",
                yd[0] * yd[1] * yd[2] * yd[3] * wd[1] * wd[2],
                Some(depth_multiplier),
            ),
            _ => (
                "CONV_2D",
                yd[0] * yd[1] * yd[2] * yd[3] * wd[1] * wd[2] * wd[3],
                None,
            ),
        };
        let out_ch = yd[3];
        if w.dtype == DType::I8 {
            let weights = super::i8_data(w)
                .ok_or_else(|| op_err(index, op, "int8 weights must be constant"))?;
            let scales = match depth_multiplier {
                Some(_) => self.hybrid_scales(index, op, w, wd[3], 3)?,
                None => self.hybrid_scales(index, op, w, wd[0], 0)?,
            };
            let bias = self.hybrid_bias(index, op, out_ch)?;
            let kind = match depth_multiplier {
                Some(depth_multiplier) => HybridKind::DepthwiseConv2D {
                    input: xd,
                    output: yd,
                    filter: wd,
                    geometry,
                    depth_multiplier,
                },
                None => HybridKind::Conv2D {
                    input: xd,
                    output: yd,
                    filter: wd,
                    geometry,
                },
            };
            let scratch = self.new_buffer(
                &format!("op{index}_quantised_input"),
                Elem::I8,
                xd[1] * xd[2] * xd[3],
            );
            return self.push_float_step(format!("{name}(hybrid)"), index, macs, out_id, |dst| {
                FloatStep::Hybrid {
                    src,
                    dst,
                    kind,
                    weights,
                    scales,
                    bias,
                    act,
                    scratch,
                }
            });
        }
        let mut weights = self.float_const(index, op, 1, "filter")?;
        let bias = self.float_bias(index, op, out_ch)?;
        // The Cortex-M4 schedule runs kinglet-m4's blocked float convolution, which reads the
        // filter transposed (same results as kinglet-micro's kernel).
        let transposed =
            self.kernels == KernelSet::CortexM4 && depth_multiplier.is_none() && geometry[3] == 1;
        if transposed {
            let bad = |_| op_err(index, op, "filter size disagrees with its shape");
            weights = match weights {
                FloatConst::F32(w) => {
                    let mut t = vec![0f32; w.len()];
                    kinglet_m4::float_conv::transpose_filter(&w, wd[0], &mut t).map_err(bad)?;
                    FloatConst::F32(t)
                }
                FloatConst::F16(w) => {
                    let mut t = vec![0u16; w.len()];
                    kinglet_m4::float_conv::transpose_filter(&w, wd[0], &mut t).map_err(bad)?;
                    FloatConst::F16(t)
                }
            };
        }
        let widened = widened_len(&weights, bias.as_ref());
        let scratch =
            (widened > 0).then(|| self.float_buffer(&format!("op{index}_widened"), widened));
        self.push_float_step(
            name.into(),
            index,
            macs,
            out_id,
            |dst| match depth_multiplier {
                Some(depth_multiplier) => FloatStep::DepthwiseConv2D {
                    src,
                    dst,
                    input: xd,
                    output: yd,
                    filter: wd,
                    geometry,
                    depth_multiplier,
                    weights,
                    bias,
                    act,
                    scratch,
                },
                None => FloatStep::Conv2D {
                    src,
                    dst,
                    input: xd,
                    output: yd,
                    filter: wd,
                    geometry,
                    transposed,
                    weights,
                    bias,
                    act,
                    scratch,
                },
            },
        )
    }

    fn float_fully_connected(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let x = self.input(index, op, 0)?;
        let w = self.input(index, op, 1)?;
        let (out_id, _) = self.output(index, op)?;
        let (batches, in_len, out_len) = fc_dims(index, op, x, w)?;
        let act = act_range(op);
        let src = self.src_loc(index, op)?;
        let macs = batches * in_len * out_len;
        if w.dtype == DType::I8 {
            let weights = super::i8_data(w)
                .ok_or_else(|| op_err(index, op, "int8 weights must be constant"))?;
            let q = w
                .quant
                .as_ref()
                .ok_or_else(|| op_err(index, op, "int8 weights have no quantisation"))?;
            if q.scale.len() != 1 || q.zero_point.iter().any(|&z| z != 0) {
                return Err(op_err(
                    index,
                    op,
                    "hybrid FULLY_CONNECTED weights must have one scale and zero point 0",
                ));
            }
            let bias = self.hybrid_bias(index, op, out_len)?;
            let scratch = self.new_buffer(&format!("op{index}_quantised_input"), Elem::I8, in_len);
            return self.push_float_step(
                "FULLY_CONNECTED(hybrid)".into(),
                index,
                macs,
                out_id,
                |dst| FloatStep::Hybrid {
                    src,
                    dst,
                    kind: HybridKind::FullyConnected {
                        batches,
                        in_len,
                        out_len,
                    },
                    weights,
                    scales: q.scale.clone(),
                    bias,
                    act,
                    scratch,
                },
            );
        }
        let weights = self.float_const(index, op, 1, "weights")?;
        let bias = self.float_bias(index, op, out_len)?;
        // One batch with float16 weights widens a row at a time (see `crate::float`).
        let widened = match &weights {
            FloatConst::F16(_) if batches == 1 => in_len,
            _ => widened_len(&weights, bias.as_ref()),
        };
        let scratch =
            (widened > 0).then(|| self.float_buffer(&format!("op{index}_widened"), widened));
        self.push_float_step("FULLY_CONNECTED".into(), index, macs, out_id, |dst| {
            FloatStep::FullyConnected {
                src,
                dst,
                batches,
                in_len,
                out_len,
                weights,
                bias,
                act,
                scratch,
            }
        })
    }

    fn float_max_pool(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let x = self.input(index, op, 0)?;
        let (out_id, y) = self.output(index, op)?;
        let (xd, yd) = match (dims4(x), dims4(y)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(op_err(index, op, "input and output must be 4D NHWC")),
        };
        let window = self.pool_window(index, op, xd)?;
        let src = self.src_loc(index, op)?;
        self.push_float_step("MAX_POOL_2D".into(), index, 0, out_id, |dst| {
            FloatStep::MaxPool2D {
                src,
                dst,
                input: xd,
                output: yd,
                window,
                act: act_range(op),
            }
        })
    }

    /// Float MEAN over one contiguous run of axes, viewed as `[outer, reduced, 1, inner]` as
    /// the host interpreter views it.
    fn float_mean(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::Mean { axes, .. } = op.kind.clone() else {
            unreachable!("dispatched on Mean");
        };
        let x = self.input(index, op, 0)?;
        let (out_id, _) = self.output(index, op)?;
        let view = super::mean_view(index, op, &axes, &x.shape)?;
        let src = self.src_loc(index, op)?;
        self.push_float_step("MEAN".into(), index, 0, out_id, |dst| FloatStep::Mean {
            src,
            dst,
            view,
        })
    }

    /// Float CONCATENATION: plain copies (`ConcatPart` steps over f32 buffers).
    fn float_concatenation(&mut self, index: usize, op: &Op) -> Result<usize, CompileError> {
        let OpKind::Concatenation { axis, activation } = op.kind.clone() else {
            unreachable!("dispatched on Concatenation");
        };
        if activation != kinglet_graph::Activation::None {
            return Err(op_err(index, op, "a fused activation is not supported"));
        }
        let (_, y) = self.output(index, op)?;
        self.concatenation_copies(index, op, axis, true, |slot, x| {
            if x.dtype != DType::F32
                || x.shape.len() != y.shape.len()
                || x.shape[..axis] != y.shape[..axis]
            {
                return Err(format!(
                    "input {slot} ({} {:?}) does not fit output {:?}",
                    x.dtype, x.shape, y.shape
                ));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use kinglet_graph::{Activation, DType, Graph, OpKind, TensorId};

    use crate::float::{FloatConst, FloatStep};
    use crate::program::{Elem, KernelSet, Loc, StepKind};

    fn dense(g: &mut Graph, x: TensorId, inputs: usize) -> TensorId {
        let w = g
            .add_constant_f32("w", &[2, inputs], &vec![0.25; 2 * inputs])
            .unwrap();
        let kind = OpKind::FullyConnected {
            activation: Activation::None,
            keep_num_dims: false,
        };
        g.add_op_inferred(kind, &[x, w], "y").unwrap()
    }

    #[test]
    fn float16_weights_stay_half_in_flash_with_a_live_scratch_row() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 3], DType::F32, None);
        let h = dense(&mut g, x, 3);
        let y = dense(&mut g, h, 2);
        g.outputs = vec![y];
        let half = kinglet_compress::quantize_float16(&g).unwrap();
        let p = crate::lower(&half, KernelSet::CortexM4).unwrap();
        assert_eq!(p.io, Elem::F32);
        assert_eq!(p.constant_bytes(), 2 * (6 + 4));
        let StepKind::Float(FloatStep::FullyConnected {
            weights: FloatConst::F16(w),
            scratch: Some(Loc::Arena(row)),
            dst: Loc::Arena(hidden),
            ..
        }) = &p.steps[0].kind
        else {
            panic!("{:?}", p.steps[0]);
        };
        assert_eq!(w, &vec![0x3400; 6]);
        // The widened row and the layer's output are live together: disjoint.
        let (a, b) = (&p.buffers[*row], &p.buffers[*hidden]);
        assert_eq!(a.len, 3);
        assert!(a.offset + a.bytes() <= b.offset || b.offset + b.bytes() <= a.offset);
    }

    #[test]
    fn unsupported_float_ops_and_axes_are_named() {
        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 4], DType::F32, None);
        let y = g
            .add_op_inferred(OpKind::Softmax { beta: 1.0 }, &[x], "p")
            .unwrap();
        g.outputs = vec![y];
        let err = crate::lower(&g, KernelSet::Reference)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("float SOFTMAX has no compiled kernel"),
            "{err}"
        );

        let mut g = Graph::new();
        let x = g.add_input("x", &[1, 4, 2], DType::F32, None);
        let y = g.add_activation("m", &[4], DType::F32, None);
        let kind = OpKind::Mean {
            axes: vec![2, 0],
            keep_dims: false,
        };
        g.add_op(kind, &[x], &[y]);
        g.outputs = vec![y];
        let err = crate::lower(&g, KernelSet::Reference)
            .unwrap_err()
            .to_string();
        assert!(err.contains("contiguous"), "{err}");
    }
}
