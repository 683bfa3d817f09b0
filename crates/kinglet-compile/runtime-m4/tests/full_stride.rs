//! Full-stride execution of a nested network's narrower widths (kinglet-compile `nested`,
//! `Layout::FullStride`): the full width's kernels compute the leading `active` output
//! channels, at the full width's strides, from the full width's weights, with the input
//! channels the width leaves out holding the zero point and its biases folded over the full
//! rows. On seeded random layers this must give, bit for bit, what kinglet-micro's reference
//! convolution gives on the width's own weights and input; the depthwise variant must give the
//! ordinary kernel's leading channels; `fill_channels` sets the rest to the zero point.
use kinglet_m4::requant_form::{BIT31, GENERAL, HIGH_WORD};
use kinglet_m4::{
    Conv1d, ConvWeights, Depthwise1d, Requant, ShapeError, channel_block, conv1d_active,
    conv1d_padded_len, conv1d_row_len, conv1d_scratch_words, depthwise_row_len, depthwise1d_active,
    depthwise1d_dyn, fill_channels, pack_depthwise_weights, pack_weights, pack_weights_narrow,
    requant_form_1d, widen_channel_major, widen_padded_before,
};
use kinglet_micro::quant::{FusedActivation, activation_range_quantized};

#[allow(dead_code)] // the helpers other kernel tests use too
mod common;
use common::{Conv1dShape, Lcg, fold, quant_params, random_conv1d_io, random_requant};

/// Output bytes the kernels must leave alone.
const UNTOUCHED: i8 = 0x55;

/// `conv1d_active` for the shapes this test draws, in the requantisation form `form`, with
/// widened (`narrow == false`) or int8 weights.
fn run_active(
    shape: (usize, usize, usize),
    form: u8,
    narrow: bool,
    params: &Conv1d,
    padded: &[i16],
    out: &mut [i8],
    active: usize,
) -> Result<(), ShapeError> {
    macro_rules! shapes {
        ($(($i:literal, $o:literal, $k:literal)),*) => {
            match (shape, narrow) {
                $(
                    (($i, $o, $k), false) => match form {
                        HIGH_WORD => conv1d_active::<$i, $o, $k, 0, HIGH_WORD>(params, padded, out, active),
                        BIT31 => conv1d_active::<$i, $o, $k, 0, BIT31>(params, padded, out, active),
                        _ => conv1d_active::<$i, $o, $k, 0, GENERAL>(params, padded, out, active),
                    },
                    (($i, $o, $k), true) => {
                        const S: usize = conv1d_scratch_words($o, conv1d_row_len($i, $k));
                        match form {
                            HIGH_WORD => conv1d_active::<$i, $o, $k, S, HIGH_WORD>(params, padded, out, active),
                            BIT31 => conv1d_active::<$i, $o, $k, S, BIT31>(params, padded, out, active),
                            _ => conv1d_active::<$i, $o, $k, S, GENERAL>(params, padded, out, active),
                        }
                    }
                )*
                _ => Err(ShapeError),
            }
        };
    }
    shapes!((9, 16, 5), (16, 24, 3), (12, 8, 1))
}

#[test]
fn conv1d_active_gives_the_narrower_widths_own_outputs() {
    let mut rng = Lcg(29);
    let shapes = [(9usize, 16usize, 5usize), (16, 24, 3), (12, 8, 1)];
    let mut narrower = 0;
    for case in 0..360 {
        let (in_full, out_full, kernel) = shapes[case % shapes.len()];
        let block = channel_block(out_full);
        let active = block * rng.range(1, (out_full / block) as i32) as usize;
        // The first layer (9 input channels) reads the whole input at every width.
        let in_ch = if in_full == 9 {
            9
        } else {
            rng.range(1, in_full as i32) as usize
        };
        narrower += usize::from(active < out_full && in_ch < in_full);
        let width = rng.range(kernel as i32, 24) as usize;
        let pool = case % 3 == 1 && width >= 2;
        let activation = if case % 5 == 4 {
            FusedActivation::Relu
        } else {
            FusedActivation::None
        };
        let (in_zp, out_zp) = (rng.range(-128, 127), rng.range(-128, 127));
        let (out_s, multipliers, mut shifts) = random_requant(&mut rng, case, out_full);
        if case % 5 == 4 {
            shifts[0] = 0;
        }
        let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
        let full_weights: Vec<i8> = (0..out_full * kernel * in_full)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        // The width's own weights: leading filters, each tap's leading inputs.
        let own: Vec<i8> = (0..active)
            .flat_map(|o| (0..kernel).map(move |t| (o, t)))
            .flat_map(|(o, t)| {
                let start = (o * kernel + t) * in_full;
                full_weights[start..start + in_ch].to_vec()
            })
            .collect();
        let requant = kinglet_micro::Requant::new(&multipliers[..active], &shifts[..active]);
        let q = quant_params(in_zp, out_zp, requant, (act_min, act_max));
        let shape = Conv1dShape::same(in_ch, active, kernel, width, pool);
        let (bias, input, expected) = random_conv1d_io(&mut rng, &shape, &own, &q);
        // At full stride: the left-out input channels hold the zero point, the biases are
        // folded over the full rows.
        let full_input: Vec<i8> = input
            .chunks_exact(in_ch)
            .flat_map(|x| (0..in_full).map(move |c| x.get(c).copied().unwrap_or(in_zp as i8)))
            .collect();
        let mut padded = vec![0i16; conv1d_padded_len(width, in_full, kernel)];
        widen_padded_before(
            &full_input,
            in_full,
            in_zp as i8,
            shape.pad_before,
            &mut padded,
        )
        .unwrap();
        let folded = fold(
            &bias,
            &full_weights[..active * kernel * in_full],
            active,
            in_zp,
        );
        let row = conv1d_row_len(in_full, kernel);
        let form = requant_form_1d(&shifts, out_zp, act_min, &folded, row);
        let mut wide = vec![0i16; out_full * row];
        pack_weights(&full_weights, out_full, kernel * in_full, &mut wide).unwrap();
        let blocks = out_full / block * kinglet_m4::narrow_block_bytes(block, row);
        let mut packed = vec![0u32; blocks.div_ceil(4)];
        // SAFETY: u32 storage viewed as its bytes, as the generated code declares them.
        let int8 =
            unsafe { std::slice::from_raw_parts_mut(packed.as_mut_ptr().cast::<i8>(), blocks) };
        pack_weights_narrow(&full_weights, out_full, kernel * in_full, int8).unwrap();
        let positions = if pool { width / 2 } else { width };
        for (narrow, weights) in [
            (false, ConvWeights::Wide(&wide)),
            (true, ConvWeights::Narrow(int8)),
        ] {
            let params = Conv1d {
                width,
                kernel,
                weights,
                bias: &folded,
                requant: Requant {
                    multipliers: &multipliers,
                    shifts: &shifts,
                    output_offset: out_zp,
                    act_min,
                    act_max,
                },
                pool,
            };
            let mut out = vec![UNTOUCHED; positions * out_full];
            let what = format!(
                "case {case}: {in_ch}/{in_full} in, {active}/{out_full} out, k {kernel}, width {width}, pool {pool}, narrow {narrow}"
            );
            run_active(
                (in_full, out_full, kernel),
                form,
                narrow,
                &params,
                &padded,
                &mut out,
                active,
            )
            .unwrap_or_else(|_| panic!("{what}"));
            for p in 0..positions {
                let row = &out[p * out_full..(p + 1) * out_full];
                assert_eq!(
                    row[..active],
                    expected[p * active..(p + 1) * active],
                    "{what}"
                );
                assert!(row[active..].iter().all(|&v| v == UNTOUCHED), "{what}");
            }
            fill_channels(&mut out, out_full, active, out_zp as i8).unwrap();
            for p in 0..positions {
                let row = &out[p * out_full..(p + 1) * out_full];
                assert!(row[active..].iter().all(|&v| v == out_zp as i8), "{what}");
            }
            // A count that is not whole blocks, or biases of another length, are refused.
            if block > 1 {
                let mut out = vec![0i8; positions * out_full];
                assert!(
                    run_active(
                        (in_full, out_full, kernel),
                        GENERAL,
                        narrow,
                        &params,
                        &padded,
                        &mut out,
                        active - 1
                    )
                    .is_err(),
                    "{what}"
                );
            }
            let mut out = vec![0i8; positions * out_full];
            assert!(
                run_active(
                    (in_full, out_full, kernel),
                    GENERAL,
                    narrow,
                    &params,
                    &padded,
                    &mut out,
                    out_full + block
                )
                .is_err()
            );
        }
    }
    assert!(narrower >= 100, "{narrower}");
}

#[test]
fn depthwise1d_active_gives_the_ordinary_kernels_leading_channels() {
    const CH: usize = 20;
    const K: usize = 3;
    let mut rng = Lcg(31);
    for case in 0..120 {
        let active = rng.range(1, CH as i32) as usize;
        let width = rng.range(1, 24) as usize;
        let (in_zp, out_zp) = (rng.range(-128, 127), rng.range(-128, 127));
        let (out_s, multipliers, shifts) = random_requant(&mut rng, case, CH);
        let (act_min, act_max) =
            activation_range_quantized(FusedActivation::Relu, out_s, out_zp, -128, 127);
        let weights: Vec<i8> = (0..K * CH).map(|_| rng.range(-128, 127) as i8).collect();
        let bias: Vec<i32> = (0..CH).map(|_| rng.range(-20_000, 20_000)).collect();
        let input: Vec<i8> = (0..width * CH)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        let mut packed = vec![0i16; CH * 2 * kinglet_m4::depthwise_pairs(K)];
        pack_depthwise_weights(&weights, CH, K, &mut packed).unwrap();
        let row_len = depthwise_row_len(width, K);
        let mut padded = vec![0i16; CH * row_len];
        widen_channel_major(&input, CH, in_zp as i8, 1, row_len, &mut padded).unwrap();
        let requant = Requant {
            multipliers: &multipliers,
            shifts: &shifts,
            output_offset: out_zp,
            act_min,
            act_max,
        };
        let params = |bias| Depthwise1d {
            width,
            kernel: K,
            weights: ConvWeights::Wide(&packed),
            bias,
            requant,
        };
        let mut all = vec![0i8; width * CH];
        depthwise1d_dyn(CH, &params(&bias), &padded, &mut all).unwrap();
        let leading = params(&bias[..active]);
        let form = requant_form_1d(&shifts, out_zp, act_min, &bias, K);
        let mut out = vec![UNTOUCHED; width * CH];
        match form {
            HIGH_WORD => {
                depthwise1d_active::<CH, K, HIGH_WORD>(&leading, &padded, &mut out, active)
            }
            BIT31 => depthwise1d_active::<CH, K, BIT31>(&leading, &padded, &mut out, active),
            _ => depthwise1d_active::<CH, K, GENERAL>(&leading, &padded, &mut out, active),
        }
        .unwrap();
        for p in 0..width {
            let (got, want) = (&out[p * CH..(p + 1) * CH], &all[p * CH..(p + 1) * CH]);
            assert_eq!(
                got[..active],
                want[..active],
                "case {case}, active {active}"
            );
            assert!(got[active..].iter().all(|&v| v == UNTOUCHED), "case {case}");
        }
        let mut out = vec![0i8; width * CH];
        assert!(depthwise1d_active::<CH, K, GENERAL>(&leading, &padded, &mut out, CH + 1).is_err());
    }
    // fill_channels refuses a stride that does not divide the buffer.
    assert!(fill_channels(&mut [0i8; 10], 4, 1, 0).is_err());
    assert!(fill_channels(&mut [0i8; 8], 4, 5, 0).is_err());
}
