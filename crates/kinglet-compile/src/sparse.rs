//! Pruned layers in flash: when an int8 FULLY_CONNECTED's weights or a CONV_2D's filters are
//! mostly exact zeros, the layer stores only the non-zero weights (with a per-row column
//! bitmask or per-entry column deltas, whichever is smaller; a convolution's row is one output
//! channel's `kh·kw·in_c` taps) and calls kinglet-micro's `sparse_fully_connected_i8` /
//! `sparse_conv2d_i8`, whose integer results equal the dense kernels'. The choice is per layer,
//! by flash bytes: compressed when smaller than the dense int8 weights (hence also than the
//! Cortex-M4 DSP kernels' widened int16 rows) — for convolutions by at least
//! [`CONV_CODE_BYTES`], their kernel's extra code. Unpruned layers never qualify, so they keep
//! the faster dense kernels. Depthwise convolutions stay dense.

use kinglet_micro::fully_connected::FcShape;
use kinglet_micro::sparse_fully_connected::{
    SparseFormat, SparseWeights, encode_bitmask, encode_deltas,
};

use crate::program::{Dims, Loc, RequantData};

/// Compressed weights in one of kinglet-micro's [`SparseFormat`]s.
#[derive(Clone, Debug, PartialEq)]
pub enum SparseConst {
    Bitmask {
        masks: Vec<u8>,
        values: Vec<i8>,
    },
    Deltas {
        row_lens: Vec<u16>,
        deltas: Vec<u8>,
        values: Vec<i8>,
    },
}

impl SparseConst {
    /// Flash bytes.
    pub fn bytes(&self) -> usize {
        match self {
            SparseConst::Bitmask { masks, values } => masks.len() + values.len(),
            SparseConst::Deltas {
                row_lens,
                deltas,
                values,
            } => 2 * row_lens.len() + deltas.len() + values.len(),
        }
    }

    pub fn weights(&self) -> SparseWeights<'_> {
        match self {
            SparseConst::Bitmask { masks, values } => SparseWeights::Bitmask { masks, values },
            SparseConst::Deltas {
                row_lens,
                deltas,
                values,
            } => SparseWeights::Deltas {
                row_lens,
                deltas,
                values,
            },
        }
    }

    /// Non-zero weights (the MACs the kernel performs per batch).
    pub fn nonzero(&self) -> usize {
        match self {
            SparseConst::Bitmask { values, .. } => values.len(),
            SparseConst::Deltas { values, .. } => values.iter().filter(|v| **v != 0).count(),
        }
    }
}

/// A sparse int8 fully-connected call (kinglet-micro `sparse_fully_connected_i8`).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseFcStep {
    pub src: Loc,
    pub dst: Loc,
    pub batches: usize,
    pub in_len: usize,
    pub out_len: usize,
    pub weights: SparseConst,
    pub bias: Option<Vec<i32>>,
    pub input_offset: i32,
    pub requant: RequantData,
}

impl SparseFcStep {
    pub fn shape(&self) -> FcShape {
        FcShape {
            batches: self.batches,
            in_features: self.in_len,
            out_features: self.out_len,
        }
    }

    pub fn constant_bytes(&self) -> usize {
        self.weights.bytes()
            + 4 * self.bias.as_ref().map_or(0, Vec::len)
            + 4 * (self.requant.multipliers.len() + self.requant.shifts.len())
            + 8 * self.requant.scales.len()
    }
}

/// A sparse int8 convolution (kinglet-micro `sparse_conv2d_i8`); the filter's taps of each
/// output channel are one compressed row. The generated code keeps the per-pixel patch on the
/// stack (`filter[1]·filter[2]·filter[3]` bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseConvStep {
    pub src: Loc,
    pub dst: Loc,
    /// NHWC input, output and `[out_c, kh, kw, in_c]` filter dimensions.
    pub input: Dims,
    pub output: Dims,
    pub filter: Dims,
    /// stride h, stride w, dilation h, dilation w, pad top, pad left.
    pub geometry: [usize; 6],
    pub weights: SparseConst,
    pub bias: Option<Vec<i32>>,
    pub input_offset: i32,
    pub requant: RequantData,
}

impl SparseConvStep {
    pub fn patch_len(&self) -> usize {
        self.filter[1] * self.filter[2] * self.filter[3]
    }

    pub fn constant_bytes(&self) -> usize {
        self.weights.bytes()
            + 4 * self.bias.as_ref().map_or(0, Vec::len)
            + 4 * (self.requant.multipliers.len() + self.requant.shifts.len())
            + 8 * self.requant.scales.len()
    }

    pub fn params(&self) -> kinglet_micro::ConvParams {
        crate::program::micro_conv_params(&self.geometry)
    }
}

fn shape4(d: &Dims) -> kinglet_micro::Shape4 {
    kinglet_micro::Shape4::new(d[0], d[1], d[2], d[3])
}

/// Runs a sparse convolution on the host (the generated code's call, for [`crate::exec`]).
pub(crate) fn run_conv(step: &SparseConvStep, src: &[i8], dst: &mut [i8]) -> Result<(), String> {
    let mut patch = vec![0i8; step.patch_len()];
    let quant = kinglet_micro::QuantParams {
        input_offset: step.input_offset,
        filter_offset: 0,
        output_offset: step.requant.output_offset,
        requant: if step.requant.scales.is_empty() {
            kinglet_micro::Requant::new(&step.requant.multipliers, &step.requant.shifts)
        } else {
            kinglet_micro::Requant::double(&step.requant.scales)
        },
        act_min: step.requant.act_min,
        act_max: step.requant.act_max,
    };
    kinglet_micro::sparse_conv2d::sparse_conv2d_i8(
        &step.params(),
        &quant,
        kinglet_micro::TensorRef::new(src, shape4(&step.input)),
        shape4(&step.filter),
        &step.weights.weights(),
        step.bias.as_deref(),
        kinglet_micro::TensorMut::new(dst, shape4(&step.output)),
        &mut patch,
    )
    .map_err(|e| e.to_string())
}

/// Flash a convolution must save before it is compressed: the sparse convolution's code (the
/// window gather around the row kernel) is this much larger than the dense convolution's in a
/// Cortex-M4 build (mnist-cnn with its 108-weight filter compressed: 17,860 bytes of flash
/// against 11,891 with it dense).
pub const CONV_CODE_BYTES: usize = 6 * 1024;

/// The smallest compressed form of dense `[out, in]` `weights`, if it takes fewer than
/// `dense_bytes` bytes of flash.
pub fn compress_if_smaller(
    shape: FcShape,
    weights: &[i8],
    dense_bytes: usize,
) -> Option<SparseConst> {
    let (format, sizes) = SparseFormat::smallest(shape, weights).ok()?;
    if sizes.bytes(format) >= dense_bytes {
        return None;
    }
    let mut values = vec![0i8; sizes.values_len];
    match format {
        SparseFormat::Bitmask => {
            let mut masks = vec![0u8; sizes.index_len];
            encode_bitmask(shape, weights, &mut masks, &mut values).ok()?;
            Some(SparseConst::Bitmask { masks, values })
        }
        SparseFormat::Deltas => {
            let mut row_lens = vec![0u16; sizes.index_len];
            let mut deltas = vec![0u8; sizes.deltas_len];
            encode_deltas(shape, weights, &mut row_lens, &mut deltas, &mut values).ok()?;
            Some(SparseConst::Deltas {
                row_lens,
                deltas,
                values,
            })
        }
    }
}

/// Rust source of the call (constants appended to `consts` under prefix `p`); `src`/`dst`
/// are bound by the caller. The Cortex-M4 schedule (`dsp`) requantises with kinglet-m4's
/// integer `requantize_double` (same results as the reference kernels' soft-float double,
/// at a fraction of the instructions).
pub(crate) fn emit_rust_call(
    consts: &mut String,
    p: &str,
    step: &SparseFcStep,
    dsp: bool,
) -> String {
    let weights = weights_rust(consts, p, &step.weights);
    let bias = bias_rust(consts, p, step.bias.as_deref());
    crate::emit_rust::requant_arrays(consts, p, &step.requant);
    let r = &step.requant;
    if dsp && !r.scales.is_empty() {
        return format!(
            "{{\n            use kinglet_micro::sparse_fully_connected::{{SparseWeights, sparse_fully_connected_i8_with}};\n            sparse_fully_connected_i8_with(\n                FcShape {{ batches: {}, in_features: {}, out_features: {} }},\n                {},\n                src,\n                &{weights},\n                {bias},\n                dst,\n                |acc, o| kinglet_m4::requantize_double(acc, {p}_SCALE[o]).saturating_add({}).clamp({}, {}) as i8,\n            )\n            .map_err(|_| ShapeError)?;\n        }}",
            step.batches,
            step.in_len,
            step.out_len,
            step.input_offset,
            r.output_offset,
            r.act_min,
            r.act_max,
        );
    }
    format!(
        "{{\n            use kinglet_micro::sparse_fully_connected::{{SparseWeights, sparse_fully_connected_i8}};\n            sparse_fully_connected_i8(\n                FcShape {{ batches: {}, in_features: {}, out_features: {} }},\n                &{},\n                src,\n                &{weights},\n                {bias},\n                dst,\n            )\n            .map_err(|_| ShapeError)?;\n        }}",
        step.batches,
        step.in_len,
        step.out_len,
        crate::emit_rust::ref_quant_expr(p, &step.requant, step.input_offset),
    )
}

/// Rust source of a sparse convolution (see [`emit_rust_call`]).
pub(crate) fn emit_rust_conv_call(consts: &mut String, p: &str, step: &SparseConvStep) -> String {
    let weights = weights_rust(consts, p, &step.weights);
    let bias = bias_rust(consts, p, step.bias.as_deref());
    crate::emit_rust::requant_arrays(consts, p, &step.requant);
    format!(
        "{{\n            use kinglet_micro::sparse_fully_connected::SparseWeights;\n            let mut patch = [0i8; {}];\n            kinglet_micro::sparse_conv2d::sparse_conv2d_i8(\n                &{},\n                &{},\n                TensorRef::new(src, {}),\n                {},\n                &{weights},\n                {bias},\n                TensorMut::new(dst, {}),\n                &mut patch,\n            )\n            .map_err(|_| ShapeError)?;\n        }}",
        step.patch_len(),
        crate::emit_rust::conv_params_expr(&step.geometry),
        crate::emit_rust::ref_quant_expr(p, &step.requant, step.input_offset),
        crate::emit_rust::shape4(&step.input),
        crate::emit_rust::shape4(&step.filter),
        crate::emit_rust::shape4(&step.output),
    )
}

/// `Some(&<p>_B)` over a bias constant appended to `consts`, or `None`.
fn bias_rust(consts: &mut String, p: &str, bias: Option<&[i32]>) -> String {
    match bias {
        Some(b) => {
            crate::emit_rust::array(consts, &format!("{p}_B"), "i32", b);
            format!("Some(&{p}_B)")
        }
        None => "None".into(),
    }
}

/// `<s>_b` over a bias constant appended to `consts`, or `NULL`.
fn bias_c(consts: &mut String, s: &str, bias: Option<&[i32]>) -> String {
    match bias {
        Some(b) => {
            crate::emit_c::array(consts, "int32_t", &format!("{s}_b"), b);
            format!("{s}_b")
        }
        None => "NULL".into(),
    }
}

/// `SparseWeights` expression over constants appended to `consts`.
fn weights_rust(consts: &mut String, p: &str, weights: &SparseConst) -> String {
    match weights {
        SparseConst::Bitmask { masks, values } => {
            crate::emit_rust::array(consts, &format!("{p}_M"), "u8", masks);
            crate::emit_rust::array(consts, &format!("{p}_V"), "i8", values);
            format!("SparseWeights::Bitmask {{ masks: &{p}_M, values: &{p}_V }}")
        }
        SparseConst::Deltas {
            row_lens,
            deltas,
            values,
        } => {
            crate::emit_rust::array(consts, &format!("{p}_L"), "u16", row_lens);
            crate::emit_rust::array(consts, &format!("{p}_D"), "u8", deltas);
            crate::emit_rust::array(consts, &format!("{p}_V"), "i8", values);
            format!("SparseWeights::Deltas {{ row_lens: &{p}_L, deltas: &{p}_D, values: &{p}_V }}")
        }
    }
}

/// C source of a sparse convolution, reading `src8` and writing `dst8`; the patch is a local
/// array.
pub(crate) fn emit_c_conv_call(
    consts: &mut String,
    s: &str,
    step: &SparseConvStep,
    src8: &str,
    dst8: &str,
) -> String {
    let bias = bias_c(consts, s, step.bias.as_deref());
    let rq = crate::emit_c::requant(consts, s, &step.requant);
    for (name, d) in [
        ("in", &step.input[..]),
        ("fd", &step.filter[..]),
        ("out", &step.output[..]),
        ("g", &step.geometry[..]),
    ] {
        crate::emit_c::array(consts, "int", &format!("{s}_{name}"), d);
    }
    let [masks, lens, deltas] = sparse_arrays_c(consts, s, &step.weights);
    format!(
        "{{\n        int8_t patch[{}];\n        kl_sparse_conv2d_i8({src8}, {s}_in, {s}_fd, {s}_out, {s}_g, {masks}, {lens}, {deltas}, {s}_v, {bias}, {}, {rq}, patch, {dst8});\n    }}",
        step.patch_len(),
        step.input_offset
    )
}

/// Appends the C arrays of sparse weights under prefix `s` (values as `<s>_v`); returns the
/// names of the bitmask, row-length and delta arrays, `NULL` for those the encoding lacks.
fn sparse_arrays_c(consts: &mut String, s: &str, weights: &SparseConst) -> [String; 3] {
    match weights {
        SparseConst::Bitmask { masks, values } => {
            crate::emit_c::array(consts, "uint8_t", &format!("{s}_m"), masks);
            crate::emit_c::array(consts, "int8_t", &format!("{s}_v"), values);
            [format!("{s}_m"), "NULL".to_owned(), "NULL".to_owned()]
        }
        SparseConst::Deltas {
            row_lens,
            deltas,
            values,
        } => {
            crate::emit_c::array(consts, "uint16_t", &format!("{s}_l"), row_lens);
            crate::emit_c::array(consts, "uint8_t", &format!("{s}_d"), deltas);
            crate::emit_c::array(consts, "int8_t", &format!("{s}_v"), values);
            ["NULL".to_owned(), format!("{s}_l"), format!("{s}_d")]
        }
    }
}

/// The output stage the Cortex-M4 schedule uses (see [`emit_rust_call`]), for the host
/// runner.
pub(crate) fn dsp_finish(r: &RequantData) -> impl Fn(i32, usize) -> i8 + '_ {
    move |acc, o| {
        kinglet_m4::requantize_double(acc, r.scales.get(o).copied().unwrap_or(0.0))
            .saturating_add(r.output_offset)
            .clamp(r.act_min, r.act_max) as i8
    }
}

/// C source of the call (constants appended to `consts` under prefix `s`), reading `src8` and
/// writing `dst8`.
pub(crate) fn emit_c_call(
    consts: &mut String,
    s: &str,
    step: &SparseFcStep,
    src8: &str,
    dst8: &str,
) -> String {
    let bias = bias_c(consts, s, step.bias.as_deref());
    let rq = crate::emit_c::requant(consts, s, &step.requant);
    let (batches, in_len, out_len, x_off) =
        (step.batches, step.in_len, step.out_len, step.input_offset);
    let [masks, lens, deltas] = sparse_arrays_c(consts, s, &step.weights);
    match &step.weights {
        SparseConst::Bitmask { .. } => format!(
            "kl_sparse_fc_bitmask_i8({src8}, {batches}, {in_len}, {out_len}, {masks}, {s}_v, {bias}, {x_off}, {rq}, {dst8});"
        ),
        SparseConst::Deltas { .. } => format!(
            "kl_sparse_fc_deltas_i8({src8}, {batches}, {in_len}, {out_len}, {lens}, {deltas}, {s}_v, {bias}, {x_off}, {rq}, {dst8});"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_only_when_smaller() {
        let shape = FcShape {
            batches: 1,
            in_features: 64,
            out_features: 4,
        };
        let dense: Vec<i8> = (0..256).map(|i| (i % 7) as i8 + 1).collect();
        assert!(compress_if_smaller(shape, &dense, 256).is_none());
        let pruned: Vec<i8> = (0..256).map(|i| if i % 5 == 0 { 3 } else { 0 }).collect();
        let c = compress_if_smaller(shape, &pruned, 256).unwrap();
        assert!(matches!(c, SparseConst::Bitmask { .. }));
        assert_eq!((c.bytes(), c.nonzero()), (32 + 52, 52));
    }
}
