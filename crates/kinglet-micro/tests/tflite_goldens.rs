//! Bit-exact check of every kernel against the TFLite interpreter on single-op models.
//!
//! `fixtures/tflite_goldens.txt` is written by `scripts/gen_micro_goldens.py`: random shapes,
//! strides, paddings, dilations, activations and quantisation parameters; inputs; and the
//! outputs of the interpreter's reference kernels (`expected`, what TFLite Micro mirrors) and
//! of its optimized builtin kernels (`expected_opt`). Kernel parameters are derived here from
//! the raw scales and zero points exactly as a caller of this crate would, so the derivation
//! helpers are under test too.

use std::collections::BTreeMap;

use kinglet_micro::add::{AddParams, QuantScale, add_f32, add_i8, add_u8};
use kinglet_micro::average_pool2d::{average_pool2d_f32, average_pool2d_i8, average_pool2d_u8};
use kinglet_micro::concatenation::{ConcatInput, ConcatInputQuant, concatenation_requant};
use kinglet_micro::conv2d::{ActivationF32, conv2d_f32, conv2d_i8, conv2d_u8};
use kinglet_micro::depthwise_conv2d::{
    DepthwiseParams, depthwise_conv2d_f32, depthwise_conv2d_i8, depthwise_conv2d_u8,
};
use kinglet_micro::dequantize::{dequantize_i8, dequantize_u8};
use kinglet_micro::fully_connected::{
    FcShape, fully_connected_f32, fully_connected_i8, fully_connected_u8,
};
use kinglet_micro::max_pool2d::{max_pool2d_f32, max_pool2d_i8, max_pool2d_u8};
use kinglet_micro::mean::{
    MeanQuant, MeanVariant, mean_hw_f32, mean_hw_i8, mean_hw_u8, mean_hw_with,
};
use kinglet_micro::pad::pad;
use kinglet_micro::quant::{
    activation_range_quantized, conv_output_multipliers, fc_reference_scales,
    legacy_output_multiplier, xnnpack_scales,
};
use kinglet_micro::quantize::{
    QuantizeRounding, RequantizeParams, XnnpackRequantize, quantize_f32_to_i8, quantize_f32_to_u8,
    quantize_f32_with, requantize, requantize_multiplier, requantize_xnnpack,
};
use kinglet_micro::softmax::{SoftmaxLut, SoftmaxQuant, softmax_f32, softmax_i8, softmax_u8};
use kinglet_micro::{
    ConvParams, FusedActivation, PaddingKind, PoolParams, QuantParams, Requant, Shape4, TensorMut,
    TensorRef, axis_geometry,
};

type Case = BTreeMap<String, Vec<String>>;

fn load() -> Vec<(String, Case)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tflite_goldens.txt"
    );
    let text = std::fs::read_to_string(path).expect("golden file is committed");
    let mut cases = Vec::new();
    let mut cur: Option<(String, Case)> = None;
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let key = parts.next().unwrap_or_default().to_string();
        let vals: Vec<String> = parts.map(str::to_string).collect();
        match key.as_str() {
            "case" => cur = Some((vals[0].clone(), Case::new())),
            "end" => {
                let (name, mut case) = cur.take().expect("end without case");
                // "=" stands for "same as the reference output".
                for key in ["expected_opt", "expected_default"] {
                    if case.get(key).is_some_and(|v| v.len() == 1 && v[0] == "=") {
                        let reference = case["expected"].clone();
                        case.insert(key.to_string(), reference);
                    }
                }
                cases.push((name, case));
            }
            _ => {
                cur.as_mut()
                    .expect("field outside case")
                    .1
                    .insert(key, vals);
            }
        }
    }
    cases
}

fn ints(c: &Case, k: &str) -> Vec<i64> {
    c.get(k)
        .unwrap_or_else(|| panic!("missing {k}"))
        .iter()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{k}: bad int {v}")))
        .collect()
}
fn int(c: &Case, k: &str) -> i32 {
    ints(c, k)[0] as i32
}
fn us(c: &Case, k: &str) -> Vec<usize> {
    ints(c, k).into_iter().map(|v| v as usize).collect()
}
fn f32s(c: &Case, k: &str) -> Vec<f32> {
    c[k].iter().map(|v| v.parse().unwrap()).collect()
}
fn f32_(c: &Case, k: &str) -> f32 {
    f32s(c, k)[0]
}
fn s(c: &Case, k: &str) -> String {
    c[k][0].clone()
}
fn shape(c: &Case, k: &str) -> Shape4 {
    let d = us(c, k);
    Shape4::new(d[0], d[1], d[2], d[3])
}
fn i8s(c: &Case, k: &str) -> Vec<i8> {
    ints(c, k).into_iter().map(|v| v as i8).collect()
}
fn u8s(c: &Case, k: &str) -> Vec<u8> {
    ints(c, k).into_iter().map(|v| v as u8).collect()
}
fn act(c: &Case) -> FusedActivation {
    match s(c, "act").as_str() {
        "none" => FusedActivation::None,
        "relu" => FusedActivation::Relu,
        "relu6" => FusedActivation::Relu6,
        "relu_n1_to_1" => FusedActivation::ReluN1To1,
        other => panic!("unknown activation {other}"),
    }
}
fn padding(c: &Case) -> PaddingKind {
    if s(c, "padding") == "same" {
        PaddingKind::Same
    } else {
        PaddingKind::Valid
    }
}

/// Result of running one case: our output as i64 (or f32 bits) to compare with both goldens.
/// Which TFLite configuration a run imitates (they differ only in requantisation).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `BUILTIN_REF`.
    Reference,
    /// `BUILTIN_WITHOUT_DEFAULT_DELEGATES`.
    Optimized,
    /// `AUTO` (XNNPACK delegate).
    Default,
}

fn run_case(c: &Case, mode: Mode) -> Vec<i64> {
    let dtype = s(c, "dtype");
    let is_i8 = dtype == "i8";
    let (qmin, qmax) = if is_i8 { (-128, 127) } else { (0, 255) };
    match s(c, "op").as_str() {
        op @ ("conv2d" | "depthwise_conv2d") => {
            let (ins, fs, os) = (
                shape(c, "in_shape"),
                shape(c, "filter_shape"),
                shape(c, "out_shape"),
            );
            let st = us(c, "stride");
            let di = us(c, "dilation");
            let gh = axis_geometry(padding(c), ins.h, fs.h, st[0], di[0]).unwrap();
            let gw = axis_geometry(padding(c), ins.w, fs.w, st[1], di[1]).unwrap();
            assert_eq!((gh.out, gw.out), (os.h, os.w));
            let p = ConvParams {
                stride_h: st[0],
                stride_w: st[1],
                dilation_h: di[0],
                dilation_w: di[1],
                pad_top: gh.pad_before,
                pad_left: gw.pad_before,
            };
            let (in_s, out_s) = (f32_(c, "in_scale"), f32_(c, "out_scale"));
            let f_scales = f32s(c, "filter_scale");
            let oc = os.c;
            let (mut m, mut sh) = (vec![0; oc], vec![0; oc]);
            if is_i8 {
                conv_output_multipliers(in_s, &f_scales, out_s, &mut m, &mut sh).unwrap();
            } else {
                let (mm, ss) = legacy_output_multiplier(in_s, f_scales[0], out_s).unwrap();
                m = vec![mm];
                sh = vec![ss];
            }
            let mut xs = vec![0f32; f_scales.len()];
            xnnpack_scales(in_s, &f_scales, out_s, &mut xs).unwrap();
            let requant = match mode {
                Mode::Default => Requant::float32(&xs),
                _ => Requant::new(&m, &sh),
            };
            let out_zp = int(c, "out_zp");
            let (amin, amax) = activation_range_quantized(act(c), out_s, out_zp, qmin, qmax);
            let q = QuantParams {
                input_offset: -int(c, "in_zp"),
                filter_offset: -int(c, "filter_zp"),
                output_offset: out_zp,
                requant,
                act_min: amin,
                act_max: amax,
            };
            let bias: Vec<i32> = ints(c, "bias").into_iter().map(|v| v as i32).collect();
            let n_out = os.checked_len().unwrap();
            let dm = us(c, "depth_multiplier")[0];
            let dp = DepthwiseParams {
                conv: p,
                depth_multiplier: dm,
            };
            if is_i8 {
                let (x, f) = (i8s(c, "input"), i8s(c, "filter"));
                let mut y = vec![0i8; n_out];
                let (xi, fi, yo) = (
                    TensorRef::new(&x, ins),
                    TensorRef::new(&f, fs),
                    TensorMut::new(&mut y, os),
                );
                if op == "conv2d" {
                    conv2d_i8(&p, &q, xi, fi, Some(&bias), yo).unwrap();
                } else {
                    depthwise_conv2d_i8(&dp, &q, xi, fi, Some(&bias), yo).unwrap();
                }
                y.into_iter().map(i64::from).collect()
            } else {
                let (x, f) = (u8s(c, "input"), u8s(c, "filter"));
                let mut y = vec![0u8; n_out];
                let (xi, fi, yo) = (
                    TensorRef::new(&x, ins),
                    TensorRef::new(&f, fs),
                    TensorMut::new(&mut y, os),
                );
                if op == "conv2d" {
                    conv2d_u8(&p, &q, xi, fi, Some(&bias), yo).unwrap();
                } else {
                    depthwise_conv2d_u8(&dp, &q, xi, fi, Some(&bias), yo).unwrap();
                }
                y.into_iter().map(i64::from).collect()
            }
        }
        "fully_connected" => {
            let d = us(c, "fc_shape");
            let fc = FcShape {
                batches: d[0],
                in_features: d[1],
                out_features: d[2],
            };
            let (in_s, out_s) = (f32_(c, "in_scale"), f32_(c, "out_scale"));
            let f_scales = f32s(c, "filter_scale");
            let (m, sh) = if f_scales.len() > 1 {
                let (mut m, mut sh) = (vec![0; fc.out_features], vec![0; fc.out_features]);
                conv_output_multipliers(in_s, &f_scales, out_s, &mut m, &mut sh).unwrap();
                (m, sh)
            } else {
                let (mm, ss) = legacy_output_multiplier(in_s, f_scales[0], out_s).unwrap();
                (vec![mm], vec![ss])
            };
            let mut scales = vec![0f64; f_scales.len()];
            fc_reference_scales(in_s, &f_scales, out_s, &mut scales).unwrap();
            let mut xs = vec![0f32; f_scales.len()];
            xnnpack_scales(in_s, &f_scales, out_s, &mut xs).unwrap();
            let requant = match mode {
                Mode::Reference => Requant::double(&scales),
                Mode::Optimized => Requant::new(&m, &sh),
                Mode::Default => Requant::float32(&xs),
            };
            let out_zp = int(c, "out_zp");
            let (amin, amax) = activation_range_quantized(act(c), out_s, out_zp, qmin, qmax);
            let q = QuantParams {
                input_offset: -int(c, "in_zp"),
                filter_offset: -int(c, "filter_zp"),
                output_offset: out_zp,
                requant,
                act_min: amin,
                act_max: amax,
            };
            let bias: Vec<i32> = ints(c, "bias").into_iter().map(|v| v as i32).collect();
            if is_i8 {
                let mut y = vec![0i8; d[0] * d[2]];
                fully_connected_i8(
                    fc,
                    &q,
                    &i8s(c, "input"),
                    &i8s(c, "filter"),
                    Some(&bias),
                    &mut y,
                )
                .unwrap();
                y.into_iter().map(i64::from).collect()
            } else {
                let mut y = vec![0u8; d[0] * d[2]];
                fully_connected_u8(
                    fc,
                    &q,
                    &u8s(c, "input"),
                    &u8s(c, "filter"),
                    Some(&bias),
                    &mut y,
                )
                .unwrap();
                y.into_iter().map(i64::from).collect()
            }
        }
        op @ ("max_pool2d" | "average_pool2d") => {
            let (ins, os) = (shape(c, "in_shape"), shape(c, "out_shape"));
            let f = us(c, "filter");
            let st = us(c, "stride");
            let gh = axis_geometry(padding(c), ins.h, f[0], st[0], 1).unwrap();
            let gw = axis_geometry(padding(c), ins.w, f[1], st[1], 1).unwrap();
            assert_eq!((gh.out, gw.out), (os.h, os.w));
            let p = PoolParams {
                filter_h: f[0],
                filter_w: f[1],
                stride_h: st[0],
                stride_w: st[1],
                pad_top: gh.pad_before,
                pad_left: gw.pad_before,
            };
            let (amin, amax) = activation_range_quantized(
                act(c),
                f32_(c, "in_scale"),
                int(c, "in_zp"),
                qmin,
                qmax,
            );
            let n = os.checked_len().unwrap();
            if is_i8 {
                let x = i8s(c, "input");
                let mut y = vec![0i8; n];
                let (xi, yo) = (TensorRef::new(&x, ins), TensorMut::new(&mut y, os));
                if op == "max_pool2d" {
                    max_pool2d_i8(&p, amin, amax, xi, yo).unwrap();
                } else {
                    average_pool2d_i8(&p, amin, amax, xi, yo).unwrap();
                }
                y.into_iter().map(i64::from).collect()
            } else {
                let x = u8s(c, "input");
                let mut y = vec![0u8; n];
                let (xi, yo) = (TensorRef::new(&x, ins), TensorMut::new(&mut y, os));
                if op == "max_pool2d" {
                    max_pool2d_u8(&p, amin, amax, xi, yo).unwrap();
                } else {
                    average_pool2d_u8(&p, amin, amax, xi, yo).unwrap();
                }
                y.into_iter().map(i64::from).collect()
            }
        }
        "mean" => {
            let ins = shape(c, "in_shape");
            let q = MeanQuant {
                input_scale: f32_(c, "in_scale"),
                input_zero_point: int(c, "in_zp"),
                output_scale: f32_(c, "out_scale"),
                output_zero_point: int(c, "out_zp"),
            };
            let n = ins.n * ins.c;
            let variant = match mode {
                Mode::Default => MeanVariant::Xnnpack,
                _ => MeanVariant::Reference,
            };
            if is_i8 {
                let x = i8s(c, "input");
                let mut y = vec![0i8; n];
                if mode == Mode::Default {
                    mean_hw_with(variant, &q, TensorRef::new(&x, ins), &mut y).unwrap();
                } else {
                    mean_hw_i8(&q, TensorRef::new(&x, ins), &mut y).unwrap();
                }
                y.into_iter().map(i64::from).collect()
            } else {
                let x = u8s(c, "input");
                let mut y = vec![0u8; n];
                if mode == Mode::Default {
                    mean_hw_with(variant, &q, TensorRef::new(&x, ins), &mut y).unwrap();
                } else {
                    mean_hw_u8(&q, TensorRef::new(&x, ins), &mut y).unwrap();
                }
                y.into_iter().map(i64::from).collect()
            }
        }
        "concatenation" => {
            let base = us(c, "base_shape");
            let axis = us(c, "axis")[0];
            let lens = us(c, "axis_lens");
            let scales = f32s(c, "in_scale");
            let zps = ints(c, "in_zp");
            let outer: usize = base[..axis].iter().product();
            let inner: usize = base[axis + 1..].iter().product();
            let total: usize = lens.iter().sum::<usize>() * inner * outer;
            let (out_s, out_zp) = (f32_(c, "out_scale"), int(c, "out_zp"));
            macro_rules! go {
                ($t:ty, $vals:expr) => {{
                    let all: Vec<$t> = $vals;
                    let mut parts = Vec::new();
                    let mut at = 0;
                    for (i, &l) in lens.iter().enumerate() {
                        let n = outer * l * inner;
                        parts.push(ConcatInputQuant {
                            input: ConcatInput {
                                data: &all[at..at + n],
                                row_len: l * inner,
                            },
                            scale: scales[i],
                            zero_point: zps[i] as i32,
                        });
                        at += n;
                    }
                    let mut y = vec![<$t>::default(); total];
                    concatenation_requant(outer, &parts, out_s, out_zp, &mut y).unwrap();
                    y.into_iter().map(i64::from).collect()
                }};
            }
            if is_i8 {
                go!(i8, i8s(c, "input"))
            } else {
                go!(u8, u8s(c, "input"))
            }
        }
        "add" => {
            let (s1, s2, so) = (
                shape(c, "shape1"),
                shape(c, "shape2"),
                shape(c, "out_shape"),
            );
            let sc = f32s(c, "in_scale");
            let zp = ints(c, "in_zp");
            let (out_s, out_zp) = (f32_(c, "out_scale"), int(c, "out_zp"));
            let (amin, amax) = activation_range_quantized(act(c), out_s, out_zp, qmin, qmax);
            let p = AddParams::new(
                QuantScale {
                    scale: sc[0],
                    zero_point: zp[0] as i32,
                },
                QuantScale {
                    scale: sc[1],
                    zero_point: zp[1] as i32,
                },
                QuantScale {
                    scale: out_s,
                    zero_point: out_zp,
                },
                amin,
                amax,
            )
            .unwrap();
            let n1 = s1.checked_len().unwrap();
            let n = so.checked_len().unwrap();
            if is_i8 {
                let x = i8s(c, "input");
                let mut y = vec![0i8; n];
                add_i8(
                    &p,
                    TensorRef::new(&x[..n1], s1),
                    TensorRef::new(&x[n1..], s2),
                    TensorMut::new(&mut y, so),
                )
                .unwrap();
                y.into_iter().map(i64::from).collect()
            } else {
                let x = u8s(c, "input");
                let mut y = vec![0u8; n];
                add_u8(
                    &p,
                    TensorRef::new(&x[..n1], s1),
                    TensorRef::new(&x[n1..], s2),
                    TensorMut::new(&mut y, so),
                )
                .unwrap();
                y.into_iter().map(i64::from).collect()
            }
        }
        "pad" => {
            let (ins, os) = (shape(c, "in_shape"), shape(c, "out_shape"));
            let p = us(c, "pads");
            let before = [p[0], p[2], p[4], p[6]];
            let after = [p[1], p[3], p[5], p[7]];
            let zp = int(c, "in_zp");
            let n = os.checked_len().unwrap();
            if is_i8 {
                let x = i8s(c, "input");
                let mut y = vec![0i8; n];
                pad(
                    TensorRef::new(&x, ins),
                    before,
                    after,
                    zp as i8,
                    TensorMut::new(&mut y, os),
                )
                .unwrap();
                y.into_iter().map(i64::from).collect()
            } else {
                let x = u8s(c, "input");
                let mut y = vec![0u8; n];
                pad(
                    TensorRef::new(&x, ins),
                    before,
                    after,
                    zp as u8,
                    TensorMut::new(&mut y, os),
                )
                .unwrap();
                y.into_iter().map(i64::from).collect()
            }
        }
        "softmax" => {
            let depth = us(c, "depth")[0];
            let lut = SoftmaxLut::with_exp(f32_(c, "in_scale"), f32_(c, "beta"), f32::exp);
            let q = SoftmaxQuant {
                output_scale: f32_(c, "out_scale"),
                output_zero_point: int(c, "out_zp"),
            };
            if is_i8 {
                let x = i8s(c, "input");
                let mut y = vec![0i8; x.len()];
                softmax_i8(&lut, &q, &x, &mut y, depth).unwrap();
                y.into_iter().map(i64::from).collect()
            } else {
                let x = u8s(c, "input");
                let mut y = vec![0u8; x.len()];
                softmax_u8(&lut, &q, &x, &mut y, depth).unwrap();
                y.into_iter().map(i64::from).collect()
            }
        }
        "quantize" => {
            let out_dtype = s(c, "out_dtype");
            let (out_s, out_zp) = (f32_(c, "out_scale"), int(c, "out_zp"));
            if dtype == "f32" {
                let x = f32s(c, "input");
                let rounding = match mode {
                    Mode::Reference => QuantizeRounding::DivideTiesAway,
                    _ => QuantizeRounding::ReciprocalTiesEven,
                };
                if out_dtype == "i8" {
                    let mut y = vec![0i8; x.len()];
                    if mode == Mode::Reference {
                        quantize_f32_to_i8(&x, out_s, out_zp, &mut y).unwrap();
                    } else {
                        quantize_f32_with(rounding, &x, out_s, out_zp, &mut y).unwrap();
                    }
                    y.into_iter().map(i64::from).collect()
                } else {
                    let mut y = vec![0u8; x.len()];
                    if mode == Mode::Reference {
                        quantize_f32_to_u8(&x, out_s, out_zp, &mut y).unwrap();
                    } else {
                        quantize_f32_with(rounding, &x, out_s, out_zp, &mut y).unwrap();
                    }
                    y.into_iter().map(i64::from).collect()
                }
            } else {
                let (m, sh) = requantize_multiplier(f32_(c, "in_scale"), out_s).unwrap();
                let p = RequantizeParams {
                    input_zero_point: int(c, "in_zp"),
                    output_zero_point: out_zp,
                    multiplier: m,
                    shift: sh,
                };
                match (dtype.as_str(), out_dtype.as_str()) {
                    ("i8", "u8") => {
                        let x = i8s(c, "input");
                        let mut y = vec![0u8; x.len()];
                        requantize(&p, &x, &mut y).unwrap();
                        y.into_iter().map(i64::from).collect()
                    }
                    ("u8", "i8") => {
                        let x = u8s(c, "input");
                        let mut y = vec![0i8; x.len()];
                        requantize(&p, &x, &mut y).unwrap();
                        y.into_iter().map(i64::from).collect()
                    }
                    _ => {
                        let x = i8s(c, "input");
                        let mut y = vec![0i8; x.len()];
                        if mode == Mode::Default {
                            // XNNPACK converts int8→int8 itself (Q8 multiplier).
                            let xp = XnnpackRequantize::new(
                                f32_(c, "in_scale"),
                                int(c, "in_zp"),
                                out_s,
                                out_zp,
                            )
                            .unwrap();
                            requantize_xnnpack(&xp, &x, &mut y).unwrap();
                        } else {
                            requantize(&p, &x, &mut y).unwrap();
                        }
                        y.into_iter().map(i64::from).collect()
                    }
                }
            }
        }
        "dequantize" => {
            let (sc, zp) = (f32_(c, "in_scale"), int(c, "in_zp"));
            let mut y;
            if is_i8 {
                let x = i8s(c, "input");
                y = vec![0f32; x.len()];
                dequantize_i8(&x, sc, zp, &mut y).unwrap();
            } else {
                let x = u8s(c, "input");
                y = vec![0f32; x.len()];
                dequantize_u8(&x, sc, zp, &mut y).unwrap();
            }
            y.into_iter().map(|v| v.to_bits() as i64).collect()
        }
        other => panic!("unknown op {other}"),
    }
}

/// Runs a float32 case (conv, depthwise, fully connected, pools, mean, softmax, add).
fn run_float_case(c: &Case) -> Vec<f32> {
    let act_f = || ActivationF32::from_fused(act(c));
    let x = f32s(c, "input");
    match s(c, "op").as_str() {
        op @ ("conv2d" | "depthwise_conv2d") => {
            let (ins, fs, os) = (
                shape(c, "in_shape"),
                shape(c, "filter_shape"),
                shape(c, "out_shape"),
            );
            let st = us(c, "stride");
            let di = us(c, "dilation");
            let gh = axis_geometry(padding(c), ins.h, fs.h, st[0], di[0]).unwrap();
            let gw = axis_geometry(padding(c), ins.w, fs.w, st[1], di[1]).unwrap();
            let p = ConvParams {
                stride_h: st[0],
                stride_w: st[1],
                dilation_h: di[0],
                dilation_w: di[1],
                pad_top: gh.pad_before,
                pad_left: gw.pad_before,
            };
            let (f, b) = (f32s(c, "filter_f32"), f32s(c, "bias_f32"));
            let mut y = vec![0f32; os.checked_len().unwrap()];
            let (xi, fi, yo) = (
                TensorRef::new(&x[..], ins),
                TensorRef::new(&f[..], fs),
                TensorMut::new(&mut y, os),
            );
            if op == "conv2d" {
                conv2d_f32(&p, act_f(), xi, fi, Some(&b), yo).unwrap();
            } else {
                let dp = DepthwiseParams {
                    conv: p,
                    depth_multiplier: us(c, "depth_multiplier")[0],
                };
                depthwise_conv2d_f32(&dp, act_f(), xi, fi, Some(&b), yo).unwrap();
            }
            y
        }
        "fully_connected" => {
            let d = us(c, "fc_shape");
            let fc = FcShape {
                batches: d[0],
                in_features: d[1],
                out_features: d[2],
            };
            let mut y = vec![0f32; d[0] * d[2]];
            fully_connected_f32(
                fc,
                act_f(),
                &x,
                &f32s(c, "filter_f32"),
                Some(&f32s(c, "bias_f32")),
                &mut y,
            )
            .unwrap();
            y
        }
        op @ ("max_pool2d" | "average_pool2d") => {
            let (ins, os) = (shape(c, "in_shape"), shape(c, "out_shape"));
            let f = us(c, "filter");
            let st = us(c, "stride");
            let gh = axis_geometry(padding(c), ins.h, f[0], st[0], 1).unwrap();
            let gw = axis_geometry(padding(c), ins.w, f[1], st[1], 1).unwrap();
            let p = PoolParams {
                filter_h: f[0],
                filter_w: f[1],
                stride_h: st[0],
                stride_w: st[1],
                pad_top: gh.pad_before,
                pad_left: gw.pad_before,
            };
            let mut y = vec![0f32; os.checked_len().unwrap()];
            let (xi, yo) = (TensorRef::new(&x[..], ins), TensorMut::new(&mut y, os));
            if op == "max_pool2d" {
                max_pool2d_f32(&p, act_f(), xi, yo).unwrap();
            } else {
                average_pool2d_f32(&p, act_f(), xi, yo).unwrap();
            }
            y
        }
        "mean" => {
            let ins = shape(c, "in_shape");
            let mut y = vec![0f32; ins.n * ins.c];
            mean_hw_f32(TensorRef::new(&x[..], ins), &mut y).unwrap();
            y
        }
        "softmax" => {
            let mut y = vec![0f32; x.len()];
            softmax_f32(f32_(c, "beta"), &x, &mut y, us(c, "depth")[0]).unwrap();
            y
        }
        "add" => {
            let (s1, s2, so) = (
                shape(c, "shape1"),
                shape(c, "shape2"),
                shape(c, "out_shape"),
            );
            let n1 = s1.checked_len().unwrap();
            let mut y = vec![0f32; so.checked_len().unwrap()];
            add_f32(
                act_f(),
                TensorRef::new(&x[..n1], s1),
                TensorRef::new(&x[n1..], s2),
                TensorMut::new(&mut y, so),
            )
            .unwrap();
            y
        }
        other => panic!("no float runner for {other}"),
    }
}

fn is_float_case(c: &Case) -> bool {
    s(c, "dtype") == "f32" && s(c, "op") != "quantize"
}

fn expected(c: &Case, key: &str) -> Vec<i64> {
    if s(c, "op") == "dequantize" {
        f32s(c, key)
            .into_iter()
            .map(|v| v.to_bits() as i64)
            .collect()
    } else {
        ints(c, key)
    }
}

/// Ops whose TFLite optimized kernels this crate does not imitate (they differ from the
/// reference kernels): dequantize (different float rounding), uint8→int8 requantise (a
/// lower-precision path) and 4D keep-dims mean.
fn optimized_variant_supported(c: &Case) -> bool {
    let op = s(c, "op");
    let src = s(c, "dtype");
    !(op == "dequantize"
        || (op == "quantize" && src == "u8" && s(c, "out_dtype") == "i8")
        || (op == "mean" && s(c, "keep_dims") == "1"))
}

/// Ops whose XNNPACK (default interpreter) results this crate does not imitate: mean and
/// Ops whose XNNPACK (default interpreter) results this crate does not imitate: uint8→int8
/// requantise (XNNPACK leaves it to the optimized builtin kernel, see above).
fn default_variant_supported(c: &Case) -> bool {
    let op = s(c, "op");
    !(op == "quantize" && s(c, "dtype") == "u8" && s(c, "out_dtype") == "i8")
}

#[test]
fn kernels_match_tflite_kernels() {
    let cases = load();
    assert!(
        cases.len() >= 700,
        "golden file holds {} cases",
        cases.len()
    );
    // op -> [cases, = reference, optimized checked, = optimized, default checked, = default]
    let mut per_op: BTreeMap<String, [usize; 6]> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, c) in &cases {
        let key = name
            .rsplit_once('_')
            .map_or(name.as_str(), |(k, _)| k)
            .to_string();
        let e = per_op.entry(key).or_default();
        e[0] += 1;
        if is_float_case(c) {
            // Float kernels may sum in a different order than TFLite: compare with a
            // tolerance scaled by the magnitude of the values.
            let got = run_float_case(c);
            let close = |key: &str| {
                let want = f32s(c, key);
                want.len() == got.len()
                    && got
                        .iter()
                        .zip(&want)
                        .all(|(g, w)| (g - w).abs() <= 1e-5 * (1.0 + w.abs()))
            };
            if close("expected") {
                e[1] += 1;
            } else {
                failures.push(format!("{name} (reference, float)"));
            }
            e[2] += 1;
            e[4] += 1;
            e[3] += usize::from(close("expected_opt"));
            e[5] += usize::from(close("expected_default"));
            if !close("expected_opt") || !close("expected_default") {
                failures.push(format!("{name} (optimized/default, float)"));
            }
            continue;
        }
        if run_case(c, Mode::Reference) == expected(c, "expected") {
            e[1] += 1;
        } else {
            failures.push(format!("{name} (reference)"));
        }
        if optimized_variant_supported(c) {
            e[2] += 1;
            if run_case(c, Mode::Optimized) == expected(c, "expected_opt") {
                e[3] += 1;
            } else {
                failures.push(format!("{name} (optimized)"));
            }
        }
        if default_variant_supported(c) {
            e[4] += 1;
            let want = expected(c, "expected_default");
            // XNNPACK declines some uint8 depthwise convs (then the builtin kernels run).
            let declined = s(c, "op") == "depthwise_conv2d"
                && s(c, "dtype") == "u8"
                && run_case(c, Mode::Optimized) == want;
            if declined || run_case(c, Mode::Default) == want {
                e[5] += 1;
            } else {
                failures.push(format!("{name} (default/XNNPACK)"));
            }
        }
    }
    for (k, e) in &per_op {
        eprintln!(
            "{k:22} cases {:3}  = reference {:3}  = optimized {:3}/{:3}  = default {:3}/{:3}",
            e[0], e[1], e[3], e[2], e[5], e[4]
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches: {failures:?}",
        failures.len()
    );
}
