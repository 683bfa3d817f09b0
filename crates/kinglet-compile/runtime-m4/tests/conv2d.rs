//! kinglet-m4's 2D convolution and 2D depthwise convolution (run here through the portable
//! instruction models; the same code runs natively in the QEMU tests) against kinglet-micro's
//! `conv2d_i8` and `depthwise_conv2d_i8`, bit for bit, on seeded random shapes: kernels 1–5 × 1–5, strides 1–3, vertical dilation 1–2, VALID and
//! SAME padding, fused ReLU/ReLU6, left-shift multipliers, odd and even filter rows.
use kinglet_m4::Requant;
use kinglet_m4::conv2d::{
    Conv2d, conv2d_dyn as conv2d, conv2d_padded_len, conv2d_row_len, pack_conv2d_weights,
};
use kinglet_micro::quant::{FusedActivation, activation_range_quantized, conv_output_multipliers};
use kinglet_micro::{ConvParams, QuantParams, Shape4, TensorMut, TensorRef};

struct Lcg(u32);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
        self.0 >> 8
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u32) as i32
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 10_000.0
    }
}

/// TFLite's output size and leading padding of one axis.
fn axis(same: bool, input: usize, k: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let span = (k - 1) * dilation + 1;
    if same {
        let out = input.div_ceil(stride);
        let total = ((out - 1) * stride + span).saturating_sub(input);
        (out, total / 2)
    } else {
        ((input - span) / stride + 1, 0)
    }
}

#[test]
fn conv2d_matches_reference_kernel() {
    let mut rng = Lcg(2024);
    let channel_choices = [1usize, 2, 3, 4, 5, 8, 12, 16];
    let (mut left_shifts, mut padded_cases, mut odd_rows) = (0, 0, 0);
    for case in 0..600 {
        let kh = rng.range(1, 5) as usize;
        let kw = rng.range(1, 5) as usize;
        let stride = [rng.range(1, 3) as usize, rng.range(1, 3) as usize];
        let dilation_h = if rng.range(0, 3) == 0 { 2 } else { 1 };
        let same = rng.range(0, 1) == 1;
        let ih = rng.range(((kh - 1) * dilation_h + 1) as i32, 14) as usize;
        let iw = rng.range(kw as i32, 14) as usize;
        let ic = channel_choices[rng.range(0, 7) as usize];
        let oc = channel_choices[rng.range(0, 7) as usize];
        let (oh, pad_top) = axis(same, ih, kh, stride[0], dilation_h);
        let (ow, pad_left) = axis(same, iw, kw, stride[1], 1);
        padded_cases += usize::from(pad_top + pad_left > 0);
        odd_rows += usize::from(!(kw * ic).is_multiple_of(2));
        let activation = [
            FusedActivation::None,
            FusedActivation::Relu,
            FusedActivation::Relu6,
        ][rng.range(0, 2) as usize];
        let in_zp = rng.range(-128, 127);
        let out_zp = rng.range(-128, 127);
        let in_s = 0.002 + rng.unit() * 0.05;
        let out_s = if case % 4 == 0 {
            0.00005 + rng.unit() * 0.0002
        } else {
            0.0005 + rng.unit() * 0.2
        };
        let f_s: Vec<f32> = (0..oc).map(|_| 0.001 + rng.unit() * 0.02).collect();
        let (mut m, mut sh) = (vec![0; oc], vec![0; oc]);
        conv_output_multipliers(in_s, &f_s, out_s, &mut m, &mut sh).unwrap();
        left_shifts += usize::from(sh.iter().any(|&v| v > 0));
        let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
        let weights: Vec<i8> = (0..oc * kh * kw * ic)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let bias: Vec<i32> = (0..oc).map(|_| rng.range(-20_000, 20_000)).collect();
        let input: Vec<i8> = (0..ih * iw * ic)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();

        let q = QuantParams {
            input_offset: -in_zp,
            filter_offset: 0,
            output_offset: out_zp,
            requant: kinglet_micro::Requant::new(&m, &sh),
            act_min,
            act_max,
        };
        let geometry = ConvParams {
            stride_h: stride[0],
            stride_w: stride[1],
            dilation_h,
            dilation_w: 1,
            pad_top,
            pad_left,
        };
        let mut expected = vec![0i8; oh * ow * oc];
        kinglet_micro::conv2d::conv2d_i8(
            &geometry,
            &q,
            TensorRef::new(&input, Shape4::new(1, ih, iw, ic)),
            TensorRef::new(&weights, Shape4::new(oc, kh, kw, ic)),
            Some(&bias),
            TensorMut::new(&mut expected, Shape4::new(1, oh, ow, oc)),
        )
        .unwrap();

        let mut packed = vec![0i16; oc * kh * conv2d_row_len(kw, ic)];
        pack_conv2d_weights(&weights, oc, kh, kw, ic, &mut packed).unwrap();
        let row = kh * kw * ic;
        let folded: Vec<i32> = (0..oc)
            .map(|o| {
                let sum: i32 = weights[o * row..(o + 1) * row]
                    .iter()
                    .map(|&v| i32::from(v))
                    .sum();
                bias[o].wrapping_sub(in_zp * sum)
            })
            .collect();
        let params = Conv2d {
            input: [ih, iw, ic],
            output: [oh, ow, oc],
            kernel: [kh, kw],
            stride,
            dilation_h,
            pad: [pad_top, pad_left],
            zero_point: in_zp as i8,
            weights: &packed,
            bias: &folded,
            requant: Requant {
                multipliers: &m,
                shifts: &sh,
                output_offset: out_zp,
                act_min,
                act_max,
            },
        };
        let mut padded =
            vec![0i16; conv2d_padded_len(ic, [oh, ow, oc], [kh, kw], stride, dilation_h)];
        let mut out = vec![0i8; oh * ow * oc];
        conv2d(&params, &input, &mut padded, &mut out).unwrap();
        assert_eq!(
            out, expected,
            "case {case}: {ih}x{iw}x{ic} -> {oh}x{ow}x{oc}, k {kh}x{kw}, stride {stride:?}, dilation {dilation_h}, same {same}"
        );
    }
    assert!(left_shifts > 50, "{left_shifts} cases with left shifts");
    assert!(padded_cases > 100, "{padded_cases} padded cases");
    assert!(odd_rows > 100, "{odd_rows} cases with odd filter rows");
}

#[test]
fn conv2d_rejects_mismatched_buffers() {
    let weights = [0i16; 4 * 3 * 4];
    let bias = [0i32; 4];
    let (m, sh) = ([1 << 30; 4], [-1; 4]);
    let params = Conv2d {
        input: [5, 5, 1],
        output: [3, 3, 4],
        kernel: [3, 3],
        stride: [1, 1],
        dilation_h: 1,
        pad: [0, 0],
        zero_point: 0,
        weights: &weights,
        bias: &bias,
        requant: Requant {
            multipliers: &m,
            shifts: &sh,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        },
    };
    let len = conv2d_padded_len(1, [3, 3, 4], [3, 3], [1, 1], 1);
    let input = [0i8; 25];
    let mut out = [0i8; 36];
    assert!(conv2d(&params, &input, &mut vec![0; len - 1], &mut out).is_err());
    assert!(conv2d(&params, &input[..24], &mut vec![0; len], &mut out).is_err());
    assert!(conv2d(&params, &input, &mut vec![0; len], &mut out[..35]).is_err());
    assert!(conv2d(&params, &input, &mut vec![0; len], &mut out).is_ok());
    // The compile-time block size and requantisation form must match the parameters.
    // (act_min −128 is below the zero point 0: the general form.)
    let block_2 = kinglet_m4::conv2d::conv2d::<2, false>;
    assert!(block_2(&params, &input, &mut vec![0; len], &mut out).is_err());
    let fast = kinglet_m4::conv2d::conv2d::<4, true>;
    assert!(fast(&params, &input, &mut vec![0; len], &mut out).is_err());
    let right = kinglet_m4::conv2d::conv2d::<4, false>;
    assert!(right(&params, &input, &mut vec![0; len], &mut out).is_ok());
}

#[test]
fn depthwise2d_matches_reference_kernel() {
    use kinglet_m4::depthwise2d::{
        Depthwise2d, depthwise2d_dyn as depthwise2d, depthwise2d_padded_len, depthwise2d_row_len,
        pack_depthwise2d_weights,
    };
    let mut rng = Lcg(77);
    let (mut left_shifts, mut padded_cases, mut fast_cases) = (0, 0, 0);
    for case in 0..500 {
        let kh = rng.range(1, 5) as usize;
        let kw = rng.range(1, 5) as usize;
        let stride = [rng.range(1, 3) as usize, rng.range(1, 3) as usize];
        let dilation_h = if rng.range(0, 3) == 0 { 2 } else { 1 };
        let same = rng.range(0, 1) == 1;
        let ih = rng.range(((kh - 1) * dilation_h + 1) as i32, 12) as usize;
        let iw = rng.range(kw as i32, 12) as usize;
        let ch = [1usize, 2, 3, 4, 7, 8, 16][rng.range(0, 6) as usize];
        let (oh, pad_top) = axis(same, ih, kh, stride[0], dilation_h);
        let (ow, pad_left) = axis(same, iw, kw, stride[1], 1);
        padded_cases += usize::from(pad_top + pad_left > 0);
        let activation = [
            FusedActivation::None,
            FusedActivation::Relu,
            FusedActivation::Relu6,
        ][rng.range(0, 2) as usize];
        let in_zp = rng.range(-128, 127);
        let out_zp = rng.range(-128, 127);
        let in_s = 0.002 + rng.unit() * 0.05;
        let out_s = if case % 4 == 0 {
            0.00005 + rng.unit() * 0.0002
        } else {
            0.0005 + rng.unit() * 0.2
        };
        let f_s: Vec<f32> = (0..ch).map(|_| 0.001 + rng.unit() * 0.02).collect();
        let (mut m, mut sh) = (vec![0; ch], vec![0; ch]);
        conv_output_multipliers(in_s, &f_s, out_s, &mut m, &mut sh).unwrap();
        left_shifts += usize::from(sh.iter().any(|&v| v > 0));
        let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
        fast_cases += usize::from(kinglet_m4::requant_is_fast(&sh, out_zp, act_min));
        let weights: Vec<i8> = (0..kh * kw * ch)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let bias: Vec<i32> = (0..ch).map(|_| rng.range(-20_000, 20_000)).collect();
        let input: Vec<i8> = (0..ih * iw * ch)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        let q = QuantParams {
            input_offset: -in_zp,
            filter_offset: 0,
            output_offset: out_zp,
            requant: kinglet_micro::Requant::new(&m, &sh),
            act_min,
            act_max,
        };
        let geometry = ConvParams {
            stride_h: stride[0],
            stride_w: stride[1],
            dilation_h,
            dilation_w: 1,
            pad_top,
            pad_left,
        };
        let mut expected = vec![0i8; oh * ow * ch];
        kinglet_micro::depthwise_conv2d::depthwise_conv2d_i8(
            &kinglet_micro::depthwise_conv2d::DepthwiseParams {
                conv: geometry,
                depth_multiplier: 1,
            },
            &q,
            TensorRef::new(&input, Shape4::new(1, ih, iw, ch)),
            TensorRef::new(&weights, Shape4::new(1, kh, kw, ch)),
            Some(&bias),
            TensorMut::new(&mut expected, Shape4::new(1, oh, ow, ch)),
        )
        .unwrap();

        let mut packed = vec![0i16; ch * kh * depthwise2d_row_len(kw)];
        pack_depthwise2d_weights(&weights, ch, kh, kw, &mut packed).unwrap();
        let folded: Vec<i32> = (0..ch)
            .map(|c| {
                let sum: i32 = (0..kh * kw).map(|t| i32::from(weights[t * ch + c])).sum();
                bias[c].wrapping_sub(in_zp * sum)
            })
            .collect();
        let params = Depthwise2d {
            input: [ih, iw],
            output: [oh, ow],
            channels: ch,
            kernel: [kh, kw],
            stride,
            dilation_h,
            pad: [pad_top, pad_left],
            zero_point: in_zp as i8,
            weights: &packed,
            bias: &folded,
            requant: Requant {
                multipliers: &m,
                shifts: &sh,
                output_offset: out_zp,
                act_min,
                act_max,
            },
        };
        let len = depthwise2d_padded_len(ch, [oh, ow], [kh, kw], stride, dilation_h);
        let mut out = vec![0i8; oh * ow * ch];
        assert!(depthwise2d(&params, &input, &mut vec![0; len - 1], &mut out).is_err());
        depthwise2d(&params, &input, &mut vec![0; len], &mut out).unwrap();
        assert_eq!(
            out, expected,
            "case {case}: {ih}x{iw}x{ch} -> {oh}x{ow}, k {kh}x{kw}, stride {stride:?}, dilation {dilation_h}, same {same}"
        );
    }
    assert!(left_shifts > 50, "{left_shifts} cases with left shifts");
    assert!(padded_cases > 100, "{padded_cases} padded cases");
    assert!(fast_cases > 50, "{fast_cases} one-rounding cases");
}
