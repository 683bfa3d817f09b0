//! int8 Conv2D and DepthwiseConv2D (multiplier 1) with real 2D filters in the Cortex-M4
//! schedule: kinglet-m4's `conv2d::conv2d` and `depthwise2d::depthwise2d` (`SMLAD` pairs over
//! a zero-point-padded `i16` image widened per call into an arena buffer that lives only for
//! the layer), filter packed and zero point folded into the bias at compile time. Outputs
//! equal kinglet-micro's `conv2d_i8` / `depthwise_conv2d_i8` bit for bit. The C output has no
//! such kernels yet and runs the reference `kl_conv2d_i8` / `kl_depthwise_conv2d_i8` for these
//! steps (the step keeps the filter and bias as TFLite stores them for that).

use crate::program::{Dims, Loc, RequantData};

/// One convolution on a DSP kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct DspConv2dStep {
    /// A depthwise convolution (filter `[1, kh, kw, channels]`).
    pub depthwise: bool,
    pub src: Loc,
    pub dst: Loc,
    /// The widened, padded image (`i16`, [`DspConv2dStep::padded_len`] values).
    pub padded: Loc,
    pub input: Dims,
    pub output: Dims,
    pub filter: Dims,
    /// stride h, stride w, dilation h, dilation w, pad top, pad left.
    pub geometry: [usize; 6],
    /// Input zero point.
    pub zero_point: i8,
    /// Filter packed by kinglet-m4 `pack_conv2d_weights` (`pack_depthwise2d_weights`).
    pub packed: Vec<i16>,
    /// `bias − zp_in · Σ w` per output channel.
    pub folded_bias: Vec<i32>,
    /// Filter (OHWI) and bias as TFLite stores them, and `−zp_in`: the C output's reference
    /// call.
    pub weights: Vec<i8>,
    pub bias: Option<Vec<i32>>,
    pub input_offset: i32,
    pub requant: RequantData,
}

/// Whether the DSP kernel takes this shape: batch 1, filter depth = input depth, and filter
/// rows that read contiguous runs (horizontal dilation 1, or a filter one column wide).
pub fn fits(input: Dims, output: Dims, filter: Dims, geometry: [usize; 6]) -> bool {
    input[0] == 1
        && output[0] == 1
        && filter[0] == output[3]
        && filter[3] == input[3]
        && filter.iter().all(|&d| d > 0)
        && output.iter().all(|&d| d > 0)
        && geometry[0] > 0
        && geometry[1] > 0
        && geometry[2] > 0
        && (geometry[3] == 1 || filter[2] == 1)
}

/// Whether the depthwise DSP kernel takes this shape: batch 1, multiplier 1, and filter rows
/// that read contiguous runs.
pub fn fits_depthwise(
    input: Dims,
    output: Dims,
    filter: Dims,
    geometry: [usize; 6],
    depth_multiplier: usize,
) -> bool {
    depth_multiplier == 1
        && input[0] == 1
        && output[0] == 1
        && filter[0] == 1
        && filter[3] == input[3]
        && output[3] == input[3]
        && filter.iter().all(|&d| d > 0)
        && output.iter().all(|&d| d > 0)
        && geometry[0] > 0
        && geometry[1] > 0
        && geometry[2] > 0
        && (geometry[3] == 1 || filter[2] == 1)
}

impl DspConv2dStep {
    /// Packs the filter and folds the zero point; `None` if the shape does not fit
    /// ([`fits`], [`fits_depthwise`]) or the filter's size disagrees with it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        depthwise: bool,
        src: Loc,
        dst: Loc,
        padded: Loc,
        input: Dims,
        output: Dims,
        filter: Dims,
        geometry: [usize; 6],
        weights: Vec<i8>,
        bias: Option<Vec<i32>>,
        input_offset: i32,
        requant: RequantData,
    ) -> Option<Self> {
        let zero_point = i8::try_from(-input_offset).ok()?;
        let zp = i32::from(zero_point);
        let (packed, folded_bias) = if depthwise {
            if !fits_depthwise(input, output, filter, geometry, 1) {
                return None;
            }
            let [_, kh, kw, channels] = filter;
            let row = kinglet_m4::depthwise2d::depthwise2d_row_len(kw);
            let mut packed = vec![0i16; channels * kh * row];
            kinglet_m4::depthwise2d::pack_depthwise2d_weights(
                &weights,
                channels,
                kh,
                kw,
                &mut packed,
            )
            .ok()?;
            let folded =
                crate::lower::fold_zero_point_depthwise(bias.as_deref(), &weights, channels, zp);
            (packed, folded)
        } else {
            if !fits(input, output, filter, geometry) {
                return None;
            }
            let [out_ch, kh, kw, in_ch] = filter;
            let row = kinglet_m4::conv2d::conv2d_row_len(kw, in_ch);
            let mut packed = vec![0i16; out_ch * kh * row];
            kinglet_m4::conv2d::pack_conv2d_weights(&weights, out_ch, kh, kw, in_ch, &mut packed)
                .ok()?;
            let folded = crate::lower::fold_zero_point(bias.as_deref(), &weights, out_ch, zp);
            (packed, folded)
        };
        Some(DspConv2dStep {
            depthwise,
            src,
            dst,
            padded,
            input,
            output,
            filter,
            geometry,
            zero_point,
            packed,
            folded_bias,
            weights,
            bias,
            input_offset,
            requant,
        })
    }

    /// `i16` values of the padded image (depthwise: padded planes) buffer.
    pub fn padded_len(
        depthwise: bool,
        input: Dims,
        output: Dims,
        filter: Dims,
        geometry: [usize; 6],
    ) -> usize {
        if depthwise {
            kinglet_m4::depthwise2d::depthwise2d_padded_len(
                output[3],
                [output[1], output[2]],
                [filter[1], filter[2]],
                [geometry[0], geometry[1]],
                geometry[2],
            )
        } else {
            kinglet_m4::conv2d::conv2d_padded_len(
                input[3],
                [output[1], output[2], output[3]],
                [filter[1], filter[2]],
                [geometry[0], geometry[1]],
                geometry[2],
            )
        }
    }

    fn depthwise_params(&self) -> kinglet_m4::depthwise2d::Depthwise2d<'_> {
        kinglet_m4::depthwise2d::Depthwise2d {
            input: [self.input[1], self.input[2]],
            output: [self.output[1], self.output[2]],
            channels: self.output[3],
            kernel: [self.filter[1], self.filter[2]],
            stride: [self.geometry[0], self.geometry[1]],
            dilation_h: self.geometry[2],
            pad: [self.geometry[4], self.geometry[5]],
            zero_point: self.zero_point,
            weights: &self.packed,
            bias: &self.folded_bias,
            requant: self.requant.m4(),
        }
    }

    /// Constant bytes of the Rust (DSP) form: widened filter, folded bias, requantisation.
    pub fn constant_bytes(&self) -> usize {
        let r = &self.requant;
        2 * self.packed.len()
            + 4 * self.folded_bias.len()
            + 4 * (r.multipliers.len() + r.shifts.len())
            + 8 * r.scales.len()
    }

    /// The kernel parameters, for the host executor.
    pub fn params(&self) -> kinglet_m4::conv2d::Conv2d<'_> {
        kinglet_m4::conv2d::Conv2d {
            input: [self.input[1], self.input[2], self.input[3]],
            output: [self.output[1], self.output[2], self.output[3]],
            kernel: [self.filter[1], self.filter[2]],
            stride: [self.geometry[0], self.geometry[1]],
            dilation_h: self.geometry[2],
            pad: [self.geometry[4], self.geometry[5]],
            zero_point: self.zero_point,
            weights: &self.packed,
            bias: &self.folded_bias,
            requant: self.requant.m4(),
        }
    }

    /// The generated Rust call (constants `<p>_W`, `<p>_B`, `<p>_MULT`, `<p>_SHIFT` must be
    /// declared by the caller); `src`, `dst` and `scratch` (the padded image) are in scope.
    pub fn rust_call(&self, p: &str) -> String {
        let r = &self.requant;
        let fast = kinglet_m4::requant_is_fast(&r.shifts, r.output_offset, r.act_min);
        if self.depthwise {
            return format!(
                "kinglet_m4::depthwise2d::depthwise2d::<{fast}>(\n            &kinglet_m4::depthwise2d::Depthwise2d {{ input: [{}, {}], output: [{}, {}], channels: {}, kernel: [{}, {}], stride: [{}, {}], dilation_h: {}, pad: [{}, {}], zero_point: {}, weights: &{p}_W.0, bias: &{p}_B, requant: kinglet_m4::Requant {{ multipliers: &{p}_MULT, shifts: &{p}_SHIFT, output_offset: {}, act_min: {}, act_max: {} }} }},\n            src,\n            scratch,\n            dst,\n        )?;",
                self.input[1],
                self.input[2],
                self.output[1],
                self.output[2],
                self.output[3],
                self.filter[1],
                self.filter[2],
                self.geometry[0],
                self.geometry[1],
                self.geometry[2],
                self.geometry[4],
                self.geometry[5],
                self.zero_point,
                r.output_offset,
                r.act_min,
                r.act_max,
            );
        }
        let block = kinglet_m4::channel_block(self.output[3]);
        format!(
            "kinglet_m4::conv2d::conv2d::<{block}, {fast}>(\n            &kinglet_m4::conv2d::Conv2d {{ input: [{}, {}, {}], output: [{}, {}, {}], kernel: [{}, {}], stride: [{}, {}], dilation_h: {}, pad: [{}, {}], zero_point: {}, weights: &{p}_W.0, bias: &{p}_B, requant: kinglet_m4::Requant {{ multipliers: &{p}_MULT, shifts: &{p}_SHIFT, output_offset: {}, act_min: {}, act_max: {} }} }},\n            src,\n            scratch,\n            dst,\n        )?;",
            self.input[1],
            self.input[2],
            self.input[3],
            self.output[1],
            self.output[2],
            self.output[3],
            self.filter[1],
            self.filter[2],
            self.geometry[0],
            self.geometry[1],
            self.geometry[2],
            self.geometry[4],
            self.geometry[5],
            self.zero_point,
            r.output_offset,
            r.act_min,
            r.act_max,
        )
    }

    /// Runs the step on the host (a fresh padded buffer stands in for the arena's).
    pub fn run(&self, input: &[i8], output: &mut [i8]) -> Result<(), String> {
        let len = Self::padded_len(
            self.depthwise,
            self.input,
            self.output,
            self.filter,
            self.geometry,
        );
        let mut padded = vec![0i16; len];
        if self.depthwise {
            return kinglet_m4::depthwise2d::depthwise2d_dyn(
                &self.depthwise_params(),
                input,
                &mut padded,
                output,
            )
            .map_err(|_| "2D depthwise kernel rejected its buffers".to_owned());
        }
        kinglet_m4::conv2d::conv2d_dyn(&self.params(), input, &mut padded, output)
            .map_err(|_| "2D convolution kernel rejected its buffers".to_owned())
    }
}
