//! What the kernel test files share: a seeded generator (no external randomness), random
//! requantisation, bias folding, packed weights in word storage, and kinglet-micro's
//! reference kernels, which the DSP kernels must match bit for bit.
use kinglet_micro::quant::{
    FusedActivation, activation_range_quantized, conv_output_multipliers, fc_reference_scales,
};
use kinglet_micro::{ConvParams, PoolParams, QuantParams, Shape4, TensorMut, TensorRef};

pub struct Lcg(pub u32);
impl Lcg {
    pub fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
        self.0 >> 8
    }
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u32) as i32
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 10_000.0
    }
}

/// Random requantisation for `channels` outputs; every fourth case has output scales small
/// enough that some multipliers exceed 1 (left shifts).
pub fn random_requant(rng: &mut Lcg, case: usize, channels: usize) -> (f32, Vec<i32>, Vec<i32>) {
    let in_s = 0.002 + rng.unit() * 0.05;
    let out_s = if case.is_multiple_of(4) {
        0.00005 + rng.unit() * 0.0002
    } else {
        0.0005 + rng.unit() * 0.2
    };
    let f_s: Vec<f32> = (0..channels).map(|_| 0.001 + rng.unit() * 0.02).collect();
    let (mut m, mut sh) = (vec![0; channels], vec![0; channels]);
    conv_output_multipliers(in_s, &f_s, out_s, &mut m, &mut sh).unwrap();
    (out_s, m, sh)
}

/// A fully-connected layer's quantisation: TFLite's reference scales per output, the input
/// and output zero points and the clamp.
pub struct FcQuant {
    pub scales: Vec<f64>,
    pub in_zp: i32,
    pub out_zp: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// Random fully-connected quantisation for `out_len` outputs, ReLU or none.
pub fn random_fc_quant(rng: &mut Lcg, out_len: usize, relu: bool) -> FcQuant {
    let in_s = 0.002 + rng.unit() * 0.05;
    let out_s = 0.01 + rng.unit() * 0.5;
    let f_s: Vec<f32> = (0..out_len).map(|_| 0.001 + rng.unit() * 0.02).collect();
    let mut scales = vec![0f64; out_len];
    fc_reference_scales(in_s, &f_s, out_s, &mut scales).unwrap();
    let in_zp = rng.range(-128, 127);
    let out_zp = rng.range(-128, 127);
    let activation = if relu {
        FusedActivation::Relu
    } else {
        FusedActivation::None
    };
    let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
    FcQuant {
        scales,
        in_zp,
        out_zp,
        act_min,
        act_max,
    }
}

/// `bias − zp · Σ w` per output of `out` rows of weights.
pub fn fold(bias: &[i32], weights: &[i8], out: usize, zp: i32) -> Vec<i32> {
    let row = weights.len() / out;
    (0..out)
        .map(|o| {
            bias[o].wrapping_sub(
                zp * weights[o * row..(o + 1) * row]
                    .iter()
                    .map(|&v| i32::from(v))
                    .sum::<i32>(),
            )
        })
        .collect()
}

/// Packed bytes in word storage, as the generated code declares them (the kernels read
/// them as words).
pub fn words_of(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// `words` viewed as the `len` bytes they hold.
pub fn bytes_of(words: &[u32], len: usize) -> &[u8] {
    assert!(4 * words.len() >= len);
    // SAFETY: `words` holds at least `len` initialised bytes.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) }
}

/// The reference kernels' quantisation of a layer with input and output zero points
/// `in_zp`, `out_zp` (symmetric weights) and the clamp `act`.
pub fn quant_params(
    in_zp: i32,
    out_zp: i32,
    requant: kinglet_micro::Requant<'_>,
    (act_min, act_max): (i32, i32),
) -> QuantParams<'_> {
    QuantParams {
        input_offset: -in_zp,
        filter_offset: 0,
        output_offset: out_zp,
        requant,
        act_min,
        act_max,
    }
}

/// A 1D convolution's shape: `in_width × in_ch` inputs, `out_ch` filters of `kernel` taps,
/// `pad_before` zero-point positions on the left.
pub struct Conv1dShape {
    pub in_width: usize,
    pub in_ch: usize,
    pub out_ch: usize,
    pub kernel: usize,
    pub pad_before: usize,
    /// Convolution output positions (before pooling).
    pub width: usize,
    /// Followed by a 1×2, stride-2 VALID max pool.
    pub pool: bool,
}

impl Conv1dShape {
    /// SAME padding (any odd kernel): as many outputs as inputs.
    #[allow(dead_code)] // goldens.rs draws VALID shapes too and builds its own.
    pub fn same(in_ch: usize, out_ch: usize, kernel: usize, width: usize, pool: bool) -> Self {
        Conv1dShape {
            in_width: width,
            in_ch,
            out_ch,
            kernel,
            pad_before: (kernel - 1) / 2,
            width,
            pool,
        }
    }
}

/// Draws a bias and an input for a convolution of `c` with `weights` (`[out_ch][kernel][in_ch]`,
/// OHWI) and computes its output with kinglet-micro's `conv2d_i8` (then `max_pool2d_i8` when
/// pooled): `(bias, input, expected)`.
pub fn random_conv1d_io(
    rng: &mut Lcg,
    c: &Conv1dShape,
    weights: &[i8],
    q: &QuantParams,
) -> (Vec<i32>, Vec<i8>, Vec<i8>) {
    let bias: Vec<i32> = (0..c.out_ch).map(|_| rng.range(-20_000, 20_000)).collect();
    let input: Vec<i8> = (0..c.in_width * c.in_ch)
        .map(|_| rng.range(-128, 127) as i8)
        .collect();
    let conv = ConvParams {
        pad_left: c.pad_before,
        ..ConvParams::unit()
    };
    let mut conv_out = vec![0i8; c.width * c.out_ch];
    kinglet_micro::conv2d::conv2d_i8(
        &conv,
        q,
        TensorRef::new(&input, Shape4::new(1, 1, c.in_width, c.in_ch)),
        TensorRef::new(weights, Shape4::new(c.out_ch, 1, c.kernel, c.in_ch)),
        Some(&bias),
        TensorMut::new(&mut conv_out, Shape4::new(1, 1, c.width, c.out_ch)),
    )
    .unwrap();
    if !c.pool {
        return (bias, input, conv_out);
    }
    let pooled_w = c.width / 2;
    let mut pooled = vec![0i8; pooled_w * c.out_ch];
    let p = PoolParams {
        filter_h: 1,
        filter_w: 2,
        stride_h: 1,
        stride_w: 2,
        pad_top: 0,
        pad_left: 0,
    };
    kinglet_micro::max_pool2d::max_pool2d_i8(
        &p,
        -128,
        127,
        TensorRef::new(&conv_out, Shape4::new(1, 1, c.width, c.out_ch)),
        TensorMut::new(&mut pooled, Shape4::new(1, 1, pooled_w, c.out_ch)),
    )
    .unwrap();
    (bias, input, pooled)
}

/// Draws a bias and an input for a fully-connected layer of `in_len` inputs with `weights`
/// (`[out_len][in_len]`) and computes its output with kinglet-micro's `fully_connected_i8`
/// (TFLite reference, double-precision requantisation): `(bias, input, expected)`.
pub fn random_fc_io(
    rng: &mut Lcg,
    fq: &FcQuant,
    weights: &[i8],
    in_len: usize,
) -> (Vec<i32>, Vec<i8>, Vec<i8>) {
    let out_len = fq.scales.len();
    let bias: Vec<i32> = (0..out_len).map(|_| rng.range(-5000, 5000)).collect();
    let input: Vec<i8> = (0..in_len).map(|_| rng.range(-128, 127) as i8).collect();
    let q = quant_params(
        fq.in_zp,
        fq.out_zp,
        kinglet_micro::Requant::double(&fq.scales),
        (fq.act_min, fq.act_max),
    );
    let mut expected = vec![0i8; out_len];
    kinglet_micro::fully_connected::fully_connected_i8(
        kinglet_micro::fully_connected::FcShape {
            batches: 1,
            in_features: in_len,
            out_features: out_len,
        },
        &q,
        &input,
        weights,
        Some(&bias),
        &mut expected,
    )
    .unwrap();
    (bias, input, expected)
}
