//! The DSP kernels (run here through their portable instruction models; the same code runs
//! natively in the QEMU tests) against TFLite and the reference kernels, bit for bit:
//! - fully connected: the TFLite goldens shared with kinglet-micro
//!   (`kinglet-micro/tests/fixtures/tflite_goldens.txt`, `expected_opt` = TFLite's integer
//!   requantisation, which TFLite Micro also uses);
//! - 1D k=3 convolution (± fused max pool): kinglet-micro's `conv2d_i8` + `max_pool2d_i8`
//!   (themselves checked against TFLite goldens) on seeded random shapes and quantisation,
//!   since the shared goldens hold no HAR-shaped convolution.
use std::collections::BTreeMap;

use kinglet_m4::{
    Conv1dK3, FullyConnected, Requant, conv1d_k3_dyn, conv1d_k3_padded_len, conv1d_k3_row_len,
    fc_row_len, fully_connected_dyn, pack_weights, widen_padded,
};
use kinglet_micro::quant::{
    FusedActivation, activation_range_quantized, conv_output_multipliers, legacy_output_multiplier,
};
use kinglet_micro::{ConvParams, PoolParams, QuantParams, Shape4, TensorMut, TensorRef};

fn fold(bias: &[i32], weights: &[i8], out: usize, zp: i32) -> Vec<i32> {
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
        let (mut m, mut sh) = (vec![0; out_len], vec![0; out_len]);
        if f_s.len() == 1 {
            let (mm, ss) = legacy_output_multiplier(in_s, f_s[0], out_s).unwrap();
            m.fill(mm);
            sh.fill(ss);
        } else {
            conv_output_multipliers(in_s, &f_s, out_s, &mut m, &mut sh).unwrap();
        }
        let in_zp: i32 = nums(&c, "in_zp")[0];
        let out_zp: i32 = nums(&c, "out_zp")[0];
        let (act_min, act_max) =
            activation_range_quantized(act(&c["act"][0]), out_s, out_zp, -128, 127);
        let weights: Vec<i8> = nums(&c, "filter");
        let mut packed = vec![0i16; out_len * fc_row_len(in_len)];
        pack_weights(&weights, out_len, in_len, &mut packed).unwrap();
        let bias = fold(&nums::<i32>(&c, "bias"), &weights, out_len, in_zp);
        let params = FullyConnected {
            weights: &packed,
            bias: &bias,
            requant: Requant {
                multipliers: &m,
                shifts: &sh,
                output_offset: out_zp,
                act_min,
                act_max,
            },
        };
        let input: Vec<i8> = nums(&c, "input");
        let expected: Vec<i8> = nums(&c, "expected_opt");
        for b in 0..batches {
            let mut padded = vec![0i16; conv1d_k3_padded_len(1, in_len)];
            widen_padded(
                &input[b * in_len..(b + 1) * in_len],
                in_len,
                in_zp as i8,
                &mut padded,
            )
            .unwrap();
            let mut out = vec![0i8; out_len];
            fully_connected_dyn(in_len, out_len, &params, &padded, &mut out).unwrap();
            assert_eq!(
                out,
                expected[b * out_len..(b + 1) * out_len],
                "batch {b} of {c:?}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} fully-connected goldens found"
    );
}

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

#[test]
fn conv1d_k3_matches_reference_kernels() {
    let mut rng = Lcg(7);
    let channel_choices = [1usize, 2, 3, 4, 5, 6, 8, 9, 12, 16, 32];
    let mut left_shifts = 0;
    for case in 0..400 {
        let width = rng.range(1, 40) as usize;
        let in_ch = channel_choices[rng.range(0, 10) as usize];
        let out_ch = channel_choices[rng.range(0, 10) as usize];
        let pool = rng.range(0, 1) == 1 && width >= 2;
        let activation = [
            FusedActivation::None,
            FusedActivation::Relu,
            FusedActivation::Relu6,
        ][rng.range(0, 2) as usize];
        let in_zp = rng.range(-128, 127);
        let out_zp = rng.range(-128, 127);
        let in_s = 0.002 + rng.unit() * 0.05;
        // Output scales small enough that some multipliers exceed 1 (left shifts).
        let out_s = if case % 4 == 0 {
            0.00005 + rng.unit() * 0.0002
        } else {
            0.0005 + rng.unit() * 0.2
        };
        let f_s: Vec<f32> = (0..out_ch).map(|_| 0.001 + rng.unit() * 0.02).collect();
        let (mut m, mut sh) = (vec![0; out_ch], vec![0; out_ch]);
        conv_output_multipliers(in_s, &f_s, out_s, &mut m, &mut sh).unwrap();
        left_shifts += usize::from(sh.iter().any(|&v| v > 0));
        let (act_min, act_max) = activation_range_quantized(activation, out_s, out_zp, -128, 127);
        let weights: Vec<i8> = (0..out_ch * 3 * in_ch)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let bias: Vec<i32> = (0..out_ch).map(|_| rng.range(-20_000, 20_000)).collect();
        let input: Vec<i8> = (0..width * in_ch)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();

        // Reference: conv (SAME, pad 1 left) then optional 1×2/2 VALID max pool.
        let q = QuantParams {
            input_offset: -in_zp,
            filter_offset: 0,
            output_offset: out_zp,
            requant: kinglet_micro::Requant::new(&m, &sh),
            act_min,
            act_max,
        };
        let conv = ConvParams {
            pad_left: 1,
            ..ConvParams::unit()
        };
        let mut conv_out = vec![0i8; width * out_ch];
        kinglet_micro::conv2d::conv2d_i8(
            &conv,
            &q,
            TensorRef::new(&input, Shape4::new(1, 1, width, in_ch)),
            TensorRef::new(&weights, Shape4::new(out_ch, 1, 3, in_ch)),
            Some(&bias),
            TensorMut::new(&mut conv_out, Shape4::new(1, 1, width, out_ch)),
        )
        .unwrap();
        let expected = if pool {
            let pooled_w = width / 2;
            let mut pooled = vec![0i8; pooled_w * out_ch];
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
                TensorRef::new(&conv_out, Shape4::new(1, 1, width, out_ch)),
                TensorMut::new(&mut pooled, Shape4::new(1, 1, pooled_w, out_ch)),
            )
            .unwrap();
            pooled
        } else {
            conv_out
        };

        let mut packed = vec![0i16; out_ch * conv1d_k3_row_len(in_ch)];
        pack_weights(&weights, out_ch, 3 * in_ch, &mut packed).unwrap();
        let folded = fold(&bias, &weights, out_ch, in_zp);
        let mut padded = vec![0i16; conv1d_k3_padded_len(width, in_ch)];
        widen_padded(&input, in_ch, in_zp as i8, &mut padded).unwrap();
        let params = Conv1dK3 {
            width,
            weights: &packed,
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
        let mut out = vec![0i8; expected.len()];
        conv1d_k3_dyn(in_ch, out_ch, &params, &padded, &mut out).unwrap();
        assert_eq!(
            out, expected,
            "case {case}: width {width} in {in_ch} out {out_ch} pool {pool} {activation:?} shifts {sh:?}"
        );
    }
    assert!(
        left_shifts >= 10,
        "only {left_shifts} cases exercise left shifts"
    );
}

#[test]
fn kernels_reject_mismatched_buffers() {
    let packed = vec![0i16; 4 * conv1d_k3_row_len(3)];
    let bias = [0i32; 4];
    let (m, s) = ([1 << 30; 4], [-1; 4]);
    let params = Conv1dK3 {
        width: 8,
        weights: &packed,
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
    assert!(conv1d_k3_dyn(3, 4, &params, &padded, &mut out).is_ok());
    assert!(conv1d_k3_dyn(3, 4, &params, &padded[1..], &mut out).is_err());
    assert!(conv1d_k3_dyn(3, 4, &params, &padded, &mut out[1..]).is_err());
    assert!(conv1d_k3_dyn(4, 4, &params, &padded, &mut out).is_err());
}
