//! The DSP kernels (run here through their portable instruction models; the same code runs
//! natively in the QEMU tests) against TFLite and the reference kernels, bit for bit:
//! - fully connected: the TFLite goldens shared with kinglet-micro
//!   (`kinglet-micro/tests/fixtures/tflite_goldens.txt`, `expected` = the interpreter's
//!   reference kernels, which requantise in double precision);
//! - 1D convolution with kernel 1 (pointwise), 3, 5, 7, SAME and VALID (± fused max pool),
//!   and 1D depthwise convolution: kinglet-micro's `conv2d_i8`, `max_pool2d_i8` and
//!   `depthwise_conv2d_i8` (themselves checked against TFLite goldens) on seeded random shapes
//!   and quantisation, since the shared goldens hold no HAR-shaped convolution;
//! - every kernel also with packed 4- and 2-bit weights (a third of the random cases each
//!   draw weights in [-8, 7] or [-2, 1]), unpacked in the scratch or in registers.
use std::collections::BTreeMap;

mod common;
use common::{
    Conv1dShape, Lcg, bytes_of, fold, quant_params, random_conv1d_io, random_fc_io,
    random_fc_quant, random_requant, words_of,
};
use kinglet_m4::subbyte::{
    PACKED_FC_MAX_ROW, depthwise_packed_channel_bytes, pack_depthwise_weights_bits,
    pack_weights_bits, packed_block_bytes, packed_scratch_words,
};
use kinglet_m4::{
    Conv1d, ConvWeights, Depthwise1d, FcRequant, FullyConnected, Requant, channel_block,
    conv1d_dyn, conv1d_k3_padded_len, conv1d_padded_len, conv1d_row_len, depthwise_pairs,
    depthwise_row_len, depthwise1d_dyn, fc_row_len, fully_connected_dyn, narrow_block_bytes,
    pack_depthwise_weights, pack_weights, pack_weights_narrow, widen_channel_major,
    widen_padded_before,
};
use kinglet_micro::quant::{
    FusedActivation, activation_range_quantized, conv_output_multipliers, fc_reference_scales,
    multiply_by_quantized_multiplier,
};
use kinglet_micro::{ConvParams, Shape4, TensorMut, TensorRef};

/// Bits of the weights random case `case` draws: 8, 4, 2 in turn.
fn case_bits(case: usize) -> u32 {
    [8, 4, 2][case % 3]
}

/// A random weight of `bits` bits (int8 ones avoid −128, as TFLite's symmetric ones do).
fn random_weight(rng: &mut Lcg, bits: u32) -> i8 {
    match bits {
        8 => rng.range(-127, 127) as i8,
        _ => rng.range(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) as i8,
    }
}

/// For sub-byte `bits`, `len` bytes filled by `pack` in word storage (empty for int8).
fn sub_byte_words(bits: u32, len: usize, pack: impl FnOnce(&mut [u8])) -> Vec<u32> {
    if bits == 8 {
        return Vec::new();
    }
    let mut bytes = vec![0u8; len];
    pack(&mut bytes);
    words_of(&bytes)
}

/// `ConvWeights` of `bits` bits over `bytes` (sub-byte only).
fn sub_byte(bits: u32, bytes: &[u8]) -> ConvWeights<'_> {
    match bits {
        4 => ConvWeights::Int4(bytes),
        _ => ConvWeights::Int2(bytes),
    }
}

type Case = BTreeMap<String, Vec<String>>;

fn golden_cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../kinglet-micro/tests/fixtures/tflite_goldens.txt"
    );
    let text = std::fs::read_to_string(path).expect("kinglet-micro's golden file");
    let mut cases = Vec::new();
    let mut cur = Case::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.split(' ');
        let key = parts.next().unwrap_or_default().to_owned();
        match key.as_str() {
            "case" => cur = Case::new(),
            "end" => {
                // "=" stands for "same as the reference output" (`expected`).
                if cur
                    .get("expected_opt")
                    .is_some_and(|v| v.len() == 1 && v[0] == "=")
                {
                    let reference = cur["expected"].clone();
                    cur.insert("expected_opt".into(), reference);
                }
                cases.push(std::mem::take(&mut cur));
            }
            _ => {
                cur.insert(key, parts.map(str::to_owned).collect());
            }
        }
    }
    cases
}

fn nums<T: std::str::FromStr>(c: &Case, k: &str) -> Vec<T> {
    c[k].iter()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{k}: {v}")))
        .collect()
}

fn act(name: &str) -> FusedActivation {
    match name {
        "none" => FusedActivation::None,
        "relu" => FusedActivation::Relu,
        "relu6" => FusedActivation::Relu6,
        "relu_n1_to_1" => FusedActivation::ReluN1To1,
        other => panic!("activation {other}"),
    }
}

#[test]
fn fully_connected_matches_tflite_goldens() {
    let mut checked = 0;
    for c in golden_cases() {
        if c["op"][0] != "fully_connected" || c["dtype"][0] != "i8" {
            continue;
        }
        let d: Vec<usize> = nums(&c, "fc_shape");
        let (batches, in_len, out_len) = (d[0], d[1], d[2]);
        let fzp: Vec<i32> = nums(&c, "filter_zp");
        assert!(fzp.iter().all(|&z| z == 0), "int8 weights are symmetric");
        let in_s: f32 = nums(&c, "in_scale")[0];
        let out_s: f32 = nums(&c, "out_scale")[0];
        let f_s: Vec<f32> = nums(&c, "filter_scale");
        let mut scales = vec![0f64; out_len];
        fc_reference_scales(in_s, &f_s, out_s, &mut scales).unwrap();
        let in_zp: i32 = nums(&c, "in_zp")[0];
        let out_zp: i32 = nums(&c, "out_zp")[0];
        let (act_min, act_max) =
            activation_range_quantized(act(&c["act"][0]), out_s, out_zp, -128, 127);
        let weights: Vec<i8> = nums(&c, "filter");
        let mut packed = vec![0i16; out_len * fc_row_len(in_len)];
        pack_weights(&weights, out_len, in_len, &mut packed).unwrap();
        let bias = fold(&nums::<i32>(&c, "bias"), &weights, out_len, in_zp);
        let (words, narrow_len) = narrow_fc_words(&weights, out_len, in_len);
        // SAFETY: `words` holds narrow_len bytes, 4-byte aligned.
        let narrow = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<i8>(), narrow_len) };
        let input: Vec<i8> = nums(&c, "input");
        let expected: Vec<i8> = nums(&c, "expected");
        for (weights, b) in [ConvWeights::Wide(&packed), ConvWeights::Narrow(narrow)]
            .into_iter()
            .flat_map(|w| (0..batches).map(move |b| (w, b)))
        {
            let params = FullyConnected {
                weights,
                bias: &bias,
                requant: FcRequant {
                    scales: &scales,
                    output_offset: out_zp,
                    act_min,
                    act_max,
                },
            };
            let mut padded = vec![0i16; fc_row_len(in_len)];
            widen_padded_before(
                &input[b * in_len..(b + 1) * in_len],
                in_len,
                in_zp as i8,
                0,
                &mut padded,
            )
            .unwrap();
            let mut out = vec![0i8; out_len];
            fully_connected_dyn(in_len, out_len, &params, &padded, &mut out).unwrap();
            assert_eq!(
                out,
                expected[b * out_len..(b + 1) * out_len],
                "batch {b} of {c:?} with {weights:?}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} fully-connected goldens found"
    );
}

/// The fully-connected layer of a trained Little model (kinglet-compile's
/// `little4_fc_tie.int8.tflite`), reduced to its accumulators: Q31 fixed point lands exactly on
/// `−77312 / 2^10 = −75.5` for output 1 and rounds it away from zero (−76), while TFLite's
/// reference kernel rounds `−140172 · 5.386e−4 = −75.4997` in double precision to −75.
#[test]
fn fully_connected_requantises_like_tflite_reference_at_a_fixed_point_tie() {
    let in_s = f32::from_bits(0x3d68_3b25);
    let out_s = f32::from_bits(0x3f23_c56d);
    let f_s = [f32::from_bits(0x3bac_befe), f32::from_bits(0x3bc7_254f)];
    let (out_zp, in_zp) = (-24, -128);
    let accs = [238_515, -140_172];

    // The tie: what fixed-point requantisation (TFLite's conv kernels, TFLite Micro) gives.
    let (mut m, mut sh) = ([0; 2], [0; 2]);
    conv_output_multipliers(in_s, &f_s, out_s, &mut m, &mut sh).unwrap();
    let fixed: Vec<i32> = (0..2)
        .map(|o| multiply_by_quantized_multiplier(accs[o], m[o], sh[o]) + out_zp)
        .collect();
    assert_eq!(fixed, [87, -100]);

    // One input at the zero point: the accumulator is the bias.
    let weights = [1i8, 1];
    let mut packed = vec![0i16; 2 * fc_row_len(1)];
    pack_weights(&weights, 2, 1, &mut packed).unwrap();
    let bias = fold(&accs, &weights, 2, in_zp);
    let mut scales = [0f64; 2];
    fc_reference_scales(in_s, &f_s, out_s, &mut scales).unwrap();
    let params = FullyConnected {
        weights: ConvWeights::Wide(&packed),
        bias: &bias,
        requant: FcRequant {
            scales: &scales,
            output_offset: out_zp,
            act_min: -128,
            act_max: 127,
        },
    };
    let mut padded = vec![0i16; fc_row_len(1)];
    widen_padded_before(&[in_zp as i8], 1, in_zp as i8, 0, &mut padded).unwrap();
    let mut out = [0i8; 2];
    fully_connected_dyn(1, 2, &params, &padded, &mut out).unwrap();
    assert_eq!(out, [87, -99]);
}

#[test]
fn conv1d_matches_reference_kernels() {
    let mut rng = Lcg(7);
    let channel_choices = [1usize, 2, 3, 4, 5, 6, 8, 9, 12, 16, 32];
    let mut left_shifts = 0;
    let mut kernels_seen = [0usize; 8];
    for case in 0..800 {
        let kernel = [1usize, 3, 5, 7, 2][rng.range(0, 4) as usize];
        let same = kernel == 1 || rng.range(0, 3) != 0;
        let in_width = rng.range(kernel as i32, 40) as usize;
        let width = if same {
            in_width
        } else {
            in_width - kernel + 1
        };
        let pad_before = if same { (kernel - 1) / 2 } else { 0 };
        let in_ch = channel_choices[rng.range(0, 10) as usize];
        let out_ch = channel_choices[rng.range(0, 10) as usize];
        let pool = rng.range(0, 1) == 1 && width >= 2;
        kernels_seen[kernel] += 1;
        let activation = [
            FusedActivation::None,
            FusedActivation::Relu,
            FusedActivation::Relu6,
        ][rng.range(0, 2) as usize];
        let in_zp = rng.range(-128, 127);
        let out_zp = rng.range(-128, 127);
        let (out_s, m, sh) = random_requant(&mut rng, case, out_ch);
        left_shifts += usize::from(sh.iter().any(|&v| v > 0));
        let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
        let bits = case_bits(case);
        let weights: Vec<i8> = (0..out_ch * kernel * in_ch)
            .map(|_| random_weight(&mut rng, bits))
            .collect();
        // Reference: conv then optional 1×2/2 VALID max pool.
        let q = quant_params(
            in_zp,
            out_zp,
            kinglet_micro::Requant::new(&m, &sh),
            (act_min, act_max),
        );
        let shape = Conv1dShape {
            in_width,
            in_ch,
            out_ch,
            kernel,
            pad_before,
            width,
            pool,
        };
        let (bias, input, expected) = random_conv1d_io(&mut rng, &shape, &weights, &q);

        let row = conv1d_row_len(in_ch, kernel);
        let mut packed = vec![0i16; out_ch * row];
        pack_weights(&weights, out_ch, kernel * in_ch, &mut packed).unwrap();
        // The same weights kept int8 (word storage: the kernel reads them as words).
        let block = channel_block(out_ch);
        let narrow_len = out_ch / block * narrow_block_bytes(block, row);
        let mut narrow = vec![0i8; narrow_len];
        pack_weights_narrow(&weights, out_ch, kernel * in_ch, &mut narrow).unwrap();
        let words: Vec<u32> = narrow
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]))
            .collect();
        // SAFETY: `words` holds narrow_len bytes, 4-byte aligned.
        let narrow = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<i8>(), narrow_len) };
        // And packed in 4 or 2 bits when they fit.
        let sub_len = out_ch / block * packed_block_bytes(bits, block, row);
        let sub_words = sub_byte_words(bits, sub_len, |b| {
            pack_weights_bits(&weights, out_ch, kernel * in_ch, bits, b).unwrap()
        });
        let folded = fold(&bias, &weights, out_ch, in_zp);
        let mut padded = vec![0i16; conv1d_padded_len(width, in_ch, kernel)];
        widen_padded_before(&input, in_ch, in_zp as i8, pad_before, &mut padded).unwrap();
        let mut variants = vec![ConvWeights::Wide(&packed), ConvWeights::Narrow(narrow)];
        if bits < 8 {
            variants.push(sub_byte(bits, bytes_of(&sub_words, sub_len)));
        }
        for weights in variants {
            let params = Conv1d {
                width,
                kernel,
                weights,
                bias: &folded,
                requant: Requant {
                    multipliers: &m,
                    shifts: &sh,
                    output_offset: out_zp,
                    act_min,
                    act_max,
                },
                pool,
            };
            let scratch_words = match weights.bits() {
                16 => 0,
                bits => packed_scratch_words(bits, out_ch, row),
            };
            let mut scratch = vec![0u32; scratch_words];
            let mut out = vec![0i8; expected.len()];
            conv1d_dyn(in_ch, out_ch, &params, &padded, &mut out, &mut scratch).unwrap();
            assert_eq!(
                out, expected,
                "case {case}: width {width} k {kernel} same {same} in {in_ch} out {out_ch} pool {pool} {activation:?} shifts {sh:?} {weights:?}"
            );
        }
    }
    assert!(
        left_shifts >= 10,
        "only {left_shifts} cases exercise left shifts"
    );
    assert!(
        [1, 3, 5, 7].iter().all(|&k| kernels_seen[k] >= 100),
        "{kernels_seen:?}"
    );
}

#[test]
fn depthwise1d_matches_reference_kernel() {
    let mut rng = Lcg(11);
    let channel_choices = [1usize, 2, 3, 4, 7, 16, 48, 64];
    for case in 0..400 {
        let kernel = rng.range(1, 9) as usize;
        let same = rng.range(0, 3) != 0;
        let in_width = rng.range(kernel as i32, 40) as usize;
        let width = if same {
            in_width
        } else {
            in_width - kernel + 1
        };
        let pad_before = if same { (kernel - 1) / 2 } else { 0 };
        let channels = channel_choices[rng.range(0, 7) as usize];
        let activation = [
            FusedActivation::None,
            FusedActivation::Relu,
            FusedActivation::Relu6,
        ][rng.range(0, 2) as usize];
        let in_zp = rng.range(-128, 127);
        let out_zp = rng.range(-128, 127);
        let (out_s, m, sh) = random_requant(&mut rng, case, channels);
        let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
        let bits = case_bits(case);
        let weights: Vec<i8> = (0..kernel * channels)
            .map(|_| random_weight(&mut rng, bits))
            .collect();
        let bias: Vec<i32> = (0..channels).map(|_| rng.range(-20_000, 20_000)).collect();
        let input: Vec<i8> = (0..in_width * channels)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        let q = quant_params(
            in_zp,
            out_zp,
            kinglet_micro::Requant::new(&m, &sh),
            (act_min, act_max),
        );
        let params = kinglet_micro::depthwise_conv2d::DepthwiseParams {
            conv: ConvParams {
                pad_left: pad_before,
                ..ConvParams::unit()
            },
            depth_multiplier: 1,
        };
        let mut expected = vec![0i8; width * channels];
        kinglet_micro::depthwise_conv2d::depthwise_conv2d_i8(
            &params,
            &q,
            TensorRef::new(&input, Shape4::new(1, 1, in_width, channels)),
            TensorRef::new(&weights, Shape4::new(1, 1, kernel, channels)),
            Some(&bias),
            TensorMut::new(&mut expected, Shape4::new(1, 1, width, channels)),
        )
        .unwrap();

        let mut packed = vec![0i16; channels * 2 * depthwise_pairs(kernel)];
        pack_depthwise_weights(&weights, channels, kernel, &mut packed).unwrap();
        let folded: Vec<i32> = (0..channels)
            .map(|c| {
                let sum: i32 = (0..kernel)
                    .map(|t| i32::from(weights[t * channels + c]))
                    .sum();
                bias[c] - in_zp * sum
            })
            .collect();
        let row_len = depthwise_row_len(width, kernel);
        let mut padded = vec![0i16; channels * row_len];
        widen_channel_major(
            &input,
            channels,
            in_zp as i8,
            pad_before,
            row_len,
            &mut padded,
        )
        .unwrap();
        let sub_len = channels * depthwise_packed_channel_bytes(bits, kernel);
        let mut variants = vec![ConvWeights::Wide(&packed)];
        let sub_words = sub_byte_words(bits, sub_len, |b| {
            pack_depthwise_weights_bits(&weights, channels, kernel, bits, b).unwrap()
        });
        if bits < 8 {
            variants.push(sub_byte(bits, bytes_of(&sub_words, sub_len)));
        }
        for weights in variants {
            let dw = Depthwise1d {
                width,
                kernel,
                weights,
                bias: &folded,
                requant: Requant {
                    multipliers: &m,
                    shifts: &sh,
                    output_offset: out_zp,
                    act_min,
                    act_max,
                },
            };
            let mut out = vec![0i8; width * channels];
            depthwise1d_dyn(channels, &dw, &padded, &mut out).unwrap();
            assert_eq!(
                out, expected,
                "case {case}: width {width} k {kernel} same {same} channels {channels} {activation:?} {weights:?}"
            );
        }
    }
}

#[test]
fn kernels_reject_mismatched_buffers() {
    let packed = vec![0i16; 4 * conv1d_row_len(3, 3)];
    let bias = [0i32; 4];
    let (m, s) = ([1 << 30; 4], [-1; 4]);
    let params = Conv1d {
        width: 8,
        kernel: 3,
        weights: ConvWeights::Wide(&packed),
        bias: &bias,
        requant: Requant {
            multipliers: &m,
            shifts: &s,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        },
        pool: false,
    };
    let padded = vec![0i16; conv1d_k3_padded_len(8, 3)];
    let mut out = vec![0i8; 8 * 4];
    assert!(conv1d_dyn(3, 4, &params, &padded, &mut out, &mut []).is_ok());
    assert!(conv1d_dyn(3, 4, &params, &padded[1..], &mut out, &mut []).is_err());
    assert!(conv1d_dyn(3, 4, &params, &padded, &mut out[1..], &mut []).is_err());
    assert!(conv1d_dyn(4, 4, &params, &padded, &mut out, &mut []).is_err());
    // Narrow weights need their scratch words.
    let narrow = [0u32; 4 * 10 / 4];
    // SAFETY: 40 bytes of aligned, initialised storage.
    let narrow = unsafe { std::slice::from_raw_parts(narrow.as_ptr().cast::<i8>(), 40) };
    let params = Conv1d {
        weights: ConvWeights::Narrow(narrow),
        ..params
    };
    let mut scratch = [0u32; 20];
    assert!(conv1d_dyn(3, 4, &params, &padded, &mut out, &mut scratch).is_ok());
    assert!(conv1d_dyn(3, 4, &params, &padded, &mut out, &mut scratch[1..]).is_err());
    // Packed 4-bit weights: one block of 4 × 10 values in 5 words, unpacked into 20 words.
    let int4 = [0u32; 5];
    let params = Conv1d {
        weights: ConvWeights::Int4(bytes_of(&int4, 20)),
        ..params
    };
    assert!(conv1d_dyn(3, 4, &params, &padded, &mut out, &mut scratch).is_ok());
    assert!(conv1d_dyn(3, 4, &params, &padded, &mut out, &mut scratch[1..]).is_err());
    let params = Conv1d {
        weights: ConvWeights::Int4(bytes_of(&int4, 16)),
        ..params
    };
    assert!(conv1d_dyn(3, 4, &params, &padded, &mut out, &mut scratch).is_err());
    // A packed fully-connected row longer than its scaled accumulators take is refused.
    let in_len = PACKED_FC_MAX_ROW + 2;
    let words = vec![0u32; packed_block_bytes(2, 1, in_len) / 4];
    let params = FullyConnected {
        weights: ConvWeights::Int2(bytes_of(&words, 4 * words.len())),
        bias: &bias[..1],
        requant: FcRequant {
            scales: &[1.0],
            output_offset: 0,
            act_min: -128,
            act_max: 127,
        },
    };
    let vector = vec![0i16; in_len];
    let mut one = [0i8; 1];
    assert!(fully_connected_dyn(in_len, 1, &params, &vector, &mut one).is_err());
    let params = FullyConnected {
        weights: ConvWeights::Int2(bytes_of(&words, packed_block_bytes(2, 1, in_len - 4))),
        ..params
    };
    assert!(fully_connected_dyn(in_len - 4, 1, &params, &vector, &mut one).is_ok());
}

/// The global average pool with compile-time requantisation against kinglet-micro's
/// `mean_hw_i8` (TFLite reference `QuantizedMeanOrSum`), which derives it at run time.
#[test]
fn mean_matches_reference_kernel() {
    use kinglet_micro::mean::{MeanQuant, mean_hw_i8};
    use kinglet_micro::quant::quantize_multiplier;
    let mut rng = Lcg(5);
    for case in 0..300 {
        let count = rng.range(1, 70) as usize;
        let channels = rng.range(1, 70) as usize;
        let q = MeanQuant {
            input_scale: 0.001 + rng.unit() * 0.1,
            input_zero_point: rng.range(-128, 127),
            output_scale: 0.001 + rng.unit() * 0.1,
            output_zero_point: rng.range(-128, 127),
        };
        let input: Vec<i8> = (0..count * channels)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        let mut expected = vec![0i8; channels];
        mean_hw_i8(
            &q,
            TensorRef::new(&input, Shape4::new(1, count, 1, channels)),
            &mut expected,
        )
        .unwrap();
        // kinglet-compile's derivation (the kernel's `multiplier` and `shift`).
        let (m, s) =
            quantize_multiplier(f64::from(q.input_scale) / f64::from(q.output_scale)).unwrap();
        let log2 = 63 - (count as u64).leading_zeros() as i32;
        let k = log2.min(32).min(31 + s);
        let multiplier = ((i64::from(m) << k) / count as i64) as i32;
        let mut out = vec![0i8; channels];
        kinglet_m4::mean_i8(
            &input,
            count,
            channels,
            q.input_zero_point,
            q.output_zero_point,
            multiplier,
            s - k,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out, expected,
            "case {case}: count {count} channels {channels}"
        );
    }
}

/// Packed weights kept int8, in word storage as the generated code declares them (the kernel
/// reads them as words): the words and the byte length.
fn narrow_fc_words(weights: &[i8], out_len: usize, in_len: usize) -> (Vec<u32>, usize) {
    let block = channel_block(out_len);
    let len = out_len / block * narrow_block_bytes(block, fc_row_len(in_len));
    let mut narrow = vec![0i8; len];
    pack_weights_narrow(weights, out_len, in_len, &mut narrow).unwrap();
    let words = narrow
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]))
        .collect();
    (words, len)
}

/// The fully-connected kernel with wide and narrow weights against kinglet-micro's
/// `fully_connected_i8` (TFLite reference, double-precision requantisation) on random sizes:
/// odd and even input lengths (a zero-padded last pair), 1-, 2- and 4-channel blocks, and
/// extreme weights (−128 and 127 sign-extend differently from the bytes beside them).
#[test]
fn fully_connected_wide_and_narrow_match_reference_kernel() {
    let mut rng = Lcg(11);
    let mut blocks_seen = [0usize; 5];
    for case in 0..600 {
        let in_len = rng.range(1, 70) as usize;
        let out_len = [1usize, 2, 3, 4, 5, 6, 8, 10, 12, 16][rng.range(0, 9) as usize];
        blocks_seen[channel_block(out_len)] += 1;
        let relu = case % 3 == 0;
        let fq = random_fc_quant(&mut rng, out_len, relu);
        let (scales, in_zp, out_zp) = (&fq.scales, fq.in_zp, fq.out_zp);
        let (act_min, act_max) = (fq.act_min, fq.act_max);
        let bits = case_bits(case);
        let weights: Vec<i8> = (0..out_len * in_len)
            .map(|_| match (bits, rng.range(0, 7)) {
                (8, 0) => -128,
                (8, 1) => 127,
                (8, _) => rng.range(-128, 127) as i8,
                // The extremes of the narrower ranges, often.
                (_, 0) => -(1 << (bits - 1)),
                (_, 1) => (1 << (bits - 1)) - 1,
                _ => random_weight(&mut rng, bits),
            })
            .collect();
        let (bias, input, expected) = random_fc_io(&mut rng, &fq, &weights, in_len);

        let mut packed = vec![0i16; out_len * fc_row_len(in_len)];
        pack_weights(&weights, out_len, in_len, &mut packed).unwrap();
        let (words, narrow_len) = narrow_fc_words(&weights, out_len, in_len);
        // SAFETY: `words` holds narrow_len bytes, 4-byte aligned.
        let narrow = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<i8>(), narrow_len) };
        let folded = fold(&bias, &weights, out_len, in_zp);
        let mut padded = vec![0i16; fc_row_len(in_len)];
        widen_padded_before(&input, in_len, in_zp as i8, 0, &mut padded).unwrap();
        let block = channel_block(out_len);
        let sub_len = out_len / block * packed_block_bytes(bits, block, fc_row_len(in_len));
        let sub_words = sub_byte_words(bits, sub_len, |b| {
            pack_weights_bits(&weights, out_len, in_len, bits, b).unwrap()
        });
        let mut variants = vec![ConvWeights::Wide(&packed), ConvWeights::Narrow(narrow)];
        if bits < 8 {
            variants.push(sub_byte(bits, bytes_of(&sub_words, sub_len)));
        }
        for weights in variants {
            let params = FullyConnected {
                weights,
                bias: &folded,
                requant: FcRequant {
                    scales,
                    output_offset: out_zp,
                    act_min,
                    act_max,
                },
            };
            let mut out = vec![0i8; out_len];
            fully_connected_dyn(in_len, out_len, &params, &padded, &mut out).unwrap();
            assert_eq!(
                out, expected,
                "case {case}: in {in_len} out {out_len} relu {relu} {weights:?}"
            );
        }
        // A narrow buffer one byte short is refused, not read past.
        let short = ConvWeights::Narrow(&narrow[..narrow_len - 1]);
        let params = FullyConnected {
            weights: short,
            bias: &folded,
            requant: FcRequant {
                scales,
                output_offset: out_zp,
                act_min,
                act_max,
            },
        };
        let mut out = vec![0i8; out_len];
        assert!(fully_connected_dyn(in_len, out_len, &params, &padded, &mut out).is_err());
    }
    assert!(
        blocks_seen[1] >= 50 && blocks_seen[2] >= 50 && blocks_seen[4] >= 50,
        "{blocks_seen:?}"
    );
}
