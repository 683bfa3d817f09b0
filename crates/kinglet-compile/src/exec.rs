//! Runs a [`Program`] on the host, calling the same kernels the generated firmware calls
//! (kinglet-m4's DSP kernels run through their portable instruction models here). It checks
//! lowering — constant layouts, folded biases, the arena plan — against the graph executor
//! and the TFLite goldens without an emulator.

use kinglet_m4::arena::{self, Place};
use kinglet_micro::fully_connected::{FcShape, fully_connected_i8};
use kinglet_micro::{QuantParams, Requant, Shape4, TensorMut, TensorRef};

use crate::error::CompileError;
use crate::program::{
    ConvWeights, Elem, KernelSet, Loc, Program, RequantData, StepKind, micro_conv_params,
    micro_pool_params,
};

/// Arena storage with 4-byte alignment, as the generated code declares it.
struct Arena(Vec<u32>);

impl Arena {
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: u32 storage viewed as bytes: same memory, alignment 4 ≥ 1, length ×4.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), self.0.len() * 4)
        }
    }
}

fn fc_requant(r: &RequantData) -> kinglet_m4::FcRequant<'_> {
    kinglet_m4::FcRequant {
        scales: &r.scales,
        output_offset: r.output_offset,
        act_min: r.act_min,
        act_max: r.act_max,
    }
}

fn ref_quant(r: &RequantData, input_offset: i32) -> QuantParams<'_> {
    QuantParams {
        input_offset,
        filter_offset: 0,
        output_offset: r.output_offset,
        requant: if r.scales.is_empty() {
            Requant::new(&r.multipliers, &r.shifts)
        } else {
            Requant::double(&r.scales)
        },
        act_min: r.act_min,
        act_max: r.act_max,
    }
}

fn shape(d: [usize; 4]) -> Shape4 {
    Shape4::new(d[0], d[1], d[2], d[3])
}

/// A step's source (int8 or int16) and destination (int8 or int16); one of each is set.
type Operands<'a> = (
    Option<&'a [i8]>,
    Option<&'a [i16]>,
    Option<&'a mut [i8]>,
    Option<&'a mut [i16]>,
);

/// Element type of the caller's input and output arrays of an integer program, as the
/// int8 or int16 view a step takes.
trait IoElem: Copy + Default {
    const ELEM: Elem;
    fn views(s: &[Self]) -> (Option<&[i8]>, Option<&[i16]>);
    fn views_mut(s: &mut [Self]) -> (Option<&mut [i8]>, Option<&mut [i16]>);
}

impl IoElem for i8 {
    const ELEM: Elem = Elem::I8;
    fn views(s: &[i8]) -> (Option<&[i8]>, Option<&[i16]>) {
        (Some(s), None)
    }
    fn views_mut(s: &mut [i8]) -> (Option<&mut [i8]>, Option<&mut [i16]>) {
        (Some(s), None)
    }
}

impl IoElem for i16 {
    const ELEM: Elem = Elem::I16;
    fn views(s: &[i16]) -> (Option<&[i8]>, Option<&[i16]>) {
        (None, Some(s))
    }
    fn views_mut(s: &mut [i16]) -> (Option<&mut [i8]>, Option<&mut [i16]>) {
        (None, Some(s))
    }
}

/// Runs the int8 `program` on `input`, returning the output.
pub fn run(program: &Program, input: &[i8]) -> Result<Vec<i8>, CompileError> {
    run_io(program, input)
}

/// Runs the a16w8 (int16 input and output) `program` on `input`, returning the output.
pub fn run_i16(program: &Program, input: &[i16]) -> Result<Vec<i16>, CompileError> {
    run_io(program, input)
}

fn run_io<T: IoElem>(program: &Program, input: &[T]) -> Result<Vec<T>, CompileError> {
    if input.len() != program.input_len {
        return Err(CompileError::Run(format!(
            "input has {} values, the model takes {}",
            input.len(),
            program.input_len
        )));
    }
    if program.io != T::ELEM {
        return Err(CompileError::Unsupported(format!(
            "this program takes {} input; the host program runner was given {} (float models \
             are checked in firmware against kinglet-graph's interpreter, `firmware::profile`)",
            program.io.rust(),
            T::ELEM.rust()
        )));
    }
    let mut arena = Arena(vec![0; program.arena_bytes.div_ceil(4)]);
    let mut output = vec![T::default(); program.output_len];
    let place = |loc: Loc| match loc {
        Loc::Arena(b) => {
            let buf = &program.buffers[b];
            Some((Place::new(buf.offset, buf.len), buf.elem))
        }
        _ => None,
    };
    for (i, step) in program.steps.iter().enumerate() {
        let fail = |what: String| {
            CompileError::Run(format!(
                "step {i} ({}): {what}",
                program.layers[step.layer].name
            ))
        };
        let kind = &step.kind;
        let (src_place, dst_place) = (place(kind.src()), place(kind.dst()));
        let input = match kind.src() {
            Loc::InputPart { offset, len } => input
                .get(offset..offset + len)
                .ok_or_else(|| fail("input part out of range".into()))?,
            _ => input,
        };
        let bytes = arena.bytes();
        // Source as i8 or i16, destination as i8 or i16, from the caller's arrays or the arena.
        let (src8, src16, dst8, dst16): Operands = match (src_place, dst_place) {
            (Some((s, Elem::I8)), Some((d, Elem::I8))) => {
                let (a, b) =
                    arena::split::<i8, i8>(bytes, s, d).map_err(|_| fail("arena split".into()))?;
                (Some(a), None, Some(b), None)
            }
            (Some((s, Elem::I8)), Some((d, Elem::I16))) => {
                let (a, b) =
                    arena::split::<i8, i16>(bytes, s, d).map_err(|_| fail("arena split".into()))?;
                (Some(a), None, None, Some(b))
            }
            (Some((s, Elem::I16)), Some((d, Elem::I8))) => {
                let (a, b) =
                    arena::split::<i16, i8>(bytes, s, d).map_err(|_| fail("arena split".into()))?;
                (None, Some(a), Some(b), None)
            }
            (Some((s, Elem::I16)), Some((d, Elem::I16))) => {
                let (a, b) = arena::split::<i16, i16>(bytes, s, d)
                    .map_err(|_| fail("arena split".into()))?;
                (None, Some(a), None, Some(b))
            }
            (None, Some((d, Elem::I8))) => {
                let (a, b) = T::views(input);
                let view = arena::view_mut::<i8>(bytes, d).map_err(|_| fail("view".into()))?;
                (a, b, Some(view), None)
            }
            (None, Some((d, Elem::I16))) => {
                let (a, b) = T::views(input);
                let view = arena::view_mut::<i16>(bytes, d).map_err(|_| fail("view".into()))?;
                (a, b, None, Some(view))
            }
            (Some((s, Elem::I8)), None) => {
                let (c, d) = T::views_mut(&mut output);
                let view = arena::view::<i8>(bytes, s).map_err(|_| fail("view".into()))?;
                (Some(view), None, c, d)
            }
            (Some((s, Elem::I16)), None) => {
                let (c, d) = T::views_mut(&mut output);
                let view = arena::view::<i16>(bytes, s).map_err(|_| fail("view".into()))?;
                (None, Some(view), c, d)
            }
            (None, None) => {
                let (a, b) = T::views(input);
                let (c, d) = T::views_mut(&mut output);
                (a, b, c, d)
            }
            (Some((_, Elem::F32)), _) | (_, Some((_, Elem::F32))) => {
                return Err(fail("float buffer in an int8 program".into()));
            }
        };
        let need8 = || src8.ok_or_else(|| fail("expected an int8 source".into()));
        let need16 = || src16.ok_or_else(|| fail("expected an int16 source".into()));
        let m4 = |r: Result<(), kinglet_m4::ShapeError>| {
            r.map_err(|_| fail("kernel rejected its buffers".into()))
        };
        let micro = |r: Result<(), kinglet_micro::KernelError>| r.map_err(|e| fail(e.to_string()));
        match kind {
            StepKind::Float(_) => return Err(fail("float step in an int8 program".into())),
            StepKind::SparseConv(c) => {
                let dst = dst8.ok_or_else(|| fail("conv writes int8".into()))?;
                crate::sparse::run_conv(c, need8()?, dst).map_err(fail)?;
            }
            StepKind::DspConv2D(c) => {
                let dst = dst8.ok_or_else(|| fail("conv writes int8".into()))?;
                c.run(need8()?, dst).map_err(fail)?;
            }
            StepKind::SparseFc(f) => {
                use kinglet_micro::sparse_fully_connected as sfc;
                let dst = dst8.ok_or_else(|| fail("fc writes int8".into()))?;
                let (x, weights, bias) = (need8()?, f.weights.weights(), f.bias.as_deref());
                micro(
                    if program.kernels == KernelSet::CortexM4 && !f.requant.scales.is_empty() {
                        sfc::sparse_fully_connected_i8_with(
                            f.shape(),
                            f.input_offset,
                            x,
                            &weights,
                            bias,
                            dst,
                            crate::sparse::dsp_finish(&f.requant),
                        )
                    } else {
                        sfc::sparse_fully_connected_i8(
                            f.shape(),
                            &ref_quant(&f.requant, f.input_offset),
                            x,
                            &weights,
                            bias,
                            dst,
                        )
                    },
                )?;
            }
            StepKind::Widen {
                in_ch,
                zero_point,
                pad_before,
                ..
            } => {
                let dst = dst16.ok_or_else(|| fail("widen writes int16".into()))?;
                m4(kinglet_m4::widen_padded_before(
                    need8()?,
                    *in_ch,
                    *zero_point,
                    *pad_before,
                    dst,
                ))?;
            }
            StepKind::WidenChannelMajor {
                channels,
                zero_point,
                pad_before,
                row_len,
                ..
            } => {
                let dst = dst16.ok_or_else(|| fail("widen writes int16".into()))?;
                m4(kinglet_m4::widen_channel_major(
                    need8()?,
                    *channels,
                    *zero_point,
                    *pad_before,
                    *row_len,
                    dst,
                ))?;
            }
            StepKind::Conv1d {
                width,
                in_ch,
                out_ch,
                kernel,
                pool,
                weights,
                bias,
                requant: r,
                ..
            } => {
                let row = kinglet_m4::conv1d_row_len(*in_ch, *kernel);
                let scratch_words = match weights.bits() {
                    16 => 0,
                    bits => kinglet_m4::subbyte::packed_scratch_words(bits, *out_ch, row),
                };
                let mut scratch = vec![0u32; scratch_words];
                let words = narrow_words(weights);
                let params = kinglet_m4::Conv1d {
                    width: *width,
                    kernel: *kernel,
                    weights: m4_weights(weights, &words),
                    bias,
                    requant: r.m4(),
                    pool: *pool,
                };
                let dst = dst8.ok_or_else(|| fail("conv writes int8".into()))?;
                m4(kinglet_m4::conv1d_dyn(
                    *in_ch,
                    *out_ch,
                    &params,
                    need16()?,
                    dst,
                    &mut scratch,
                ))?;
            }
            StepKind::Depthwise1d {
                width,
                channels,
                kernel,
                weights,
                bias,
                requant: r,
                ..
            } => {
                let words = narrow_words(weights);
                let params = kinglet_m4::Depthwise1d {
                    width: *width,
                    kernel: *kernel,
                    weights: m4_weights(weights, &words),
                    bias,
                    requant: r.m4(),
                };
                let dst = dst8.ok_or_else(|| fail("depthwise conv writes int8".into()))?;
                m4(kinglet_m4::depthwise1d_dyn(
                    *channels,
                    &params,
                    need16()?,
                    dst,
                ))?;
            }
            StepKind::FullyConnectedQ15 {
                in_len,
                out_len,
                weights,
                bias,
                requant: r,
                ..
            } => {
                let words = narrow_words(weights);
                let params = kinglet_m4::FullyConnected {
                    weights: m4_weights(weights, &words),
                    bias,
                    requant: fc_requant(r),
                };
                let dst = dst8.ok_or_else(|| fail("fc writes int8".into()))?;
                m4(kinglet_m4::fully_connected_dyn(
                    *in_len,
                    *out_len,
                    &params,
                    need16()?,
                    dst,
                ))?;
            }
            StepKind::RefConv2D {
                input: xd,
                output: yd,
                filter,
                geometry: g,
                weights,
                bias,
                input_offset,
                requant: r,
                ..
            } => {
                let params = micro_conv_params(g);
                let dst = dst8.ok_or_else(|| fail("conv writes int8".into()))?;
                micro(kinglet_micro::conv2d::conv2d_i8(
                    &params,
                    &ref_quant(r, *input_offset),
                    TensorRef::new(need8()?, shape(*xd)),
                    TensorRef::new(weights, shape(*filter)),
                    bias.as_deref(),
                    TensorMut::new(dst, shape(*yd)),
                ))?;
            }
            StepKind::RefMaxPool2D {
                input: xd,
                output: yd,
                window: w,
                act_min,
                act_max,
                ..
            } => {
                let params = micro_pool_params(w);
                let dst = dst8.ok_or_else(|| fail("pool writes int8".into()))?;
                micro(kinglet_micro::max_pool2d::max_pool2d_i8(
                    &params,
                    *act_min,
                    *act_max,
                    TensorRef::new(need8()?, shape(*xd)),
                    TensorMut::new(dst, shape(*yd)),
                ))?;
            }
            StepKind::RefFullyConnected {
                batches,
                in_len,
                out_len,
                weights,
                bias,
                input_offset,
                requant: r,
                ..
            } => {
                let dst = dst8.ok_or_else(|| fail("fc writes int8".into()))?;
                micro(fully_connected_i8(
                    FcShape {
                        batches: *batches,
                        in_features: *in_len,
                        out_features: *out_len,
                    },
                    &ref_quant(r, *input_offset),
                    need8()?,
                    weights,
                    bias.as_deref(),
                    dst,
                ))?;
            }
            StepKind::Copy { len, .. } => {
                copy_rows((src8, src16, dst8, dst16), 1, *len, *len, 0).map_err(fail)?;
            }
            StepKind::RefDepthwiseConv2D {
                input: xd,
                output: yd,
                filter,
                geometry: g,
                depth_multiplier,
                weights,
                bias,
                input_offset,
                requant: r,
                ..
            } => {
                let params = kinglet_micro::depthwise_conv2d::DepthwiseParams {
                    conv: micro_conv_params(g),
                    depth_multiplier: *depth_multiplier,
                };
                let dst = dst8.ok_or_else(|| fail("depthwise conv writes int8".into()))?;
                micro(kinglet_micro::depthwise_conv2d::depthwise_conv2d_i8(
                    &params,
                    &ref_quant(r, *input_offset),
                    TensorRef::new(need8()?, shape(*xd)),
                    TensorRef::new(weights, shape(*filter)),
                    bias.as_deref(),
                    TensorMut::new(dst, shape(*yd)),
                ))?;
            }
            StepKind::RefMean {
                view,
                input_zero_point,
                output_zero_point,
                multiplier,
                shift,
                ..
            } if program.kernels == KernelSet::CortexM4 => {
                let dst = dst8.ok_or_else(|| fail("mean writes int8".into()))?;
                m4(kinglet_m4::mean_i8(
                    need8()?,
                    view[1] * view[2],
                    view[3],
                    *input_zero_point,
                    *output_zero_point,
                    *multiplier,
                    *shift,
                    dst,
                ))?;
            }
            StepKind::RefMean {
                view,
                scales,
                input_zero_point,
                output_zero_point,
                ..
            } => {
                let quant = kinglet_micro::mean::MeanQuant {
                    input_scale: scales[0],
                    input_zero_point: *input_zero_point,
                    output_scale: scales[1],
                    output_zero_point: *output_zero_point,
                };
                let dst = dst8.ok_or_else(|| fail("mean writes int8".into()))?;
                micro(kinglet_micro::mean::mean_hw_i8(
                    &quant,
                    TensorRef::new(need8()?, shape(*view)),
                    dst,
                ))?;
            }
            StepKind::ConcatPart {
                outer,
                src_inner,
                dst_inner,
                dst_offset,
                ..
            } => {
                copy_rows(
                    (src8, src16, dst8, dst16),
                    *outer,
                    *src_inner,
                    *dst_inner,
                    *dst_offset,
                )
                .map_err(fail)?;
            }
            StepKind::S16(s) => {
                let dst = dst16.ok_or_else(|| fail("int16 steps write int16".into()))?;
                crate::s16::run(s, need16()?, dst).map_err(fail)?;
            }
        }
    }
    Ok(output)
}

/// For each of `outer` rows, `src_inner` values of the source go to
/// `dst[row·dst_inner + dst_offset ..]` (a CONCATENATION part; a copy is one row), int8 to
/// int8 or int16 to int16.
fn copy_rows(
    operands: Operands,
    outer: usize,
    src_inner: usize,
    dst_inner: usize,
    dst_offset: usize,
) -> Result<(), String> {
    fn rows<T: Copy>(
        src: &[T],
        dst: &mut [T],
        outer: usize,
        src_inner: usize,
        dst_inner: usize,
        dst_offset: usize,
    ) -> Result<(), String> {
        if src.len() < outer * src_inner
            || dst.len() < outer * dst_inner
            || dst_offset + src_inner > dst_inner
        {
            return Err("copy out of range".into());
        }
        for row in 0..outer {
            let to = row * dst_inner + dst_offset;
            dst[to..to + src_inner].copy_from_slice(&src[row * src_inner..(row + 1) * src_inner]);
        }
        Ok(())
    }
    match operands {
        (Some(s), _, Some(d), _) => rows(s, d, outer, src_inner, dst_inner, dst_offset),
        (_, Some(s), _, Some(d)) => rows(s, d, outer, src_inner, dst_inner, dst_offset),
        _ => Err("a copy keeps its element type".into()),
    }
}

/// Narrow and sub-byte weights are read as words: a 4-byte aligned copy of them, as the
/// generated code declares them (empty for wide weights).
fn narrow_words(weights: &ConvWeights) -> Vec<u32> {
    weights.packed_bytes().map_or_else(Vec::new, |bytes| {
        bytes
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                u32::from_ne_bytes(b)
            })
            .collect()
    })
}

/// kinglet-m4's view of `weights`, narrow and sub-byte ones read from `words`
/// ([`narrow_words`]).
fn m4_weights<'a>(weights: &'a ConvWeights, words: &'a [u32]) -> kinglet_m4::ConvWeights<'a> {
    let len = weights.bytes();
    let bytes = || {
        assert!(
            words.len() * 4 >= len,
            "narrow_words made from these weights"
        );
        // SAFETY: the words hold `len` bytes (rounded up to whole words), aligned.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) }
    };
    match weights {
        ConvWeights::Wide(w) => kinglet_m4::ConvWeights::Wide(w),
        // SAFETY: u8 and i8 have the same layout.
        ConvWeights::Narrow(_) => kinglet_m4::ConvWeights::Narrow(unsafe {
            std::slice::from_raw_parts(bytes().as_ptr().cast::<i8>(), len)
        }),
        ConvWeights::Int4(_) => kinglet_m4::ConvWeights::Int4(bytes()),
        ConvWeights::Int2(_) => kinglet_m4::ConvWeights::Int2(bytes()),
    }
}
