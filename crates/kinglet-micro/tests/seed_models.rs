//! Replays the published seed models operator by operator with this crate's kernels and
//! compares the final outputs with the TFLite interpreter in its three configurations.
//!
//! `fixtures/seed_models.txt` (from `scripts/gen_micro_model_goldens.py`) flattens each
//! `.tflite` into tensors, constant data and operators, with the README's fixed LCG input.
//! The executor below is deliberately minimal (a map of tensors, no planning); the real one
//! lives in kinglet-graph. What this test pins down is that the kernels plus the documented
//! parameter derivations reproduce whole networks bit for bit, e.g. `-44 70` for
//! `S0_s3_int8` and `-38 -22 -32 -7 -20 -22` for `B_s123_1IN_int8`.

use std::collections::BTreeMap;

use kinglet_micro::concatenation::{ConcatInput, ConcatInputQuant, concatenation_requant};
use kinglet_micro::conv2d::{conv2d_i8, conv2d_u8};
use kinglet_micro::fully_connected::{FcShape, fully_connected_i8, fully_connected_u8};
use kinglet_micro::max_pool2d::{max_pool2d_i8, max_pool2d_u8};
use kinglet_micro::quant::{
    activation_range_quantized, conv_output_multipliers, fc_reference_scales,
    legacy_output_multiplier, xnnpack_scales,
};
use kinglet_micro::{
    ConvParams, FusedActivation, PaddingKind, PoolParams, QuantParams, Requant, Shape4, TensorMut,
    TensorRef, axis_geometry,
};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Reference,
    Optimized,
    Default,
}

#[derive(Clone, Debug)]
enum Data {
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    None,
}

#[derive(Clone, Debug)]
struct Tensor {
    dtype: String,
    shape: Vec<usize>,
    scales: Vec<f32>,
    zps: Vec<i32>,
    data: Data,
}

impl Tensor {
    fn shape4(&self) -> Shape4 {
        let mut d = [1usize; 4];
        let n = self.shape.len().min(4);
        d[4 - n..].copy_from_slice(&self.shape[self.shape.len() - n..]);
        Shape4::from_dims(d)
    }
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
    fn i8(&self) -> &[i8] {
        match &self.data {
            Data::I8(v) => v,
            other => panic!("expected i8 data, got {other:?}"),
        }
    }
    fn u8(&self) -> &[u8] {
        match &self.data {
            Data::U8(v) => v,
            other => panic!("expected u8 data, got {other:?}"),
        }
    }
    fn i32(&self) -> &[i32] {
        match &self.data {
            Data::I32(v) => v,
            other => panic!("expected i32 data, got {other:?}"),
        }
    }
}

struct Op {
    name: String,
    inputs: Vec<i64>,
    outputs: Vec<usize>,
    opts: BTreeMap<String, String>,
}

struct Model {
    name: String,
    tensors: BTreeMap<usize, Tensor>,
    ops: Vec<Op>,
    inputs: Vec<(usize, Vec<i64>)>,
    outputs: Vec<usize>,
    expected: BTreeMap<String, Vec<i64>>,
}

fn parse_list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    if s == "-" {
        return Vec::new();
    }
    s.split(',')
        .map(|v| v.parse().ok().expect("number in list"))
        .collect()
}

fn load() -> Vec<Model> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed_models.txt"
    );
    let text = std::fs::read_to_string(path).expect("fixture is committed");
    let mut models = Vec::new();
    let mut cur: Option<Model> = None;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut it = line.split(' ');
        let kind = it.next().unwrap_or_default();
        let rest: Vec<&str> = it.collect();
        if kind == "model" {
            cur = Some(Model {
                name: rest[0].to_string(),
                tensors: BTreeMap::new(),
                ops: Vec::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                expected: BTreeMap::new(),
            });
            continue;
        }
        if kind == "end" {
            models.push(cur.take().expect("end without model"));
            continue;
        }
        let m = cur.as_mut().expect("line outside a model");
        match kind {
            "tensor" => {
                let idx: usize = rest[0].parse().unwrap();
                m.tensors.insert(
                    idx,
                    Tensor {
                        dtype: rest[1].to_string(),
                        shape: parse_list(rest[2]),
                        scales: parse_list(rest[3]),
                        zps: parse_list(rest[4]),
                        data: Data::None,
                    },
                );
            }
            "data" => {
                let idx: usize = rest[0].parse().unwrap();
                let t = m.tensors.get_mut(&idx).unwrap();
                let vals = rest[1..].iter().map(|v| v.parse::<i64>().unwrap());
                t.data = match t.dtype.as_str() {
                    "i8" => Data::I8(vals.map(|v| v as i8).collect()),
                    "u8" => Data::U8(vals.map(|v| v as u8).collect()),
                    "i32" => Data::I32(vals.map(|v| v as i32).collect()),
                    other => panic!("constant of type {other}"),
                };
            }
            "op" => {
                let mut op = Op {
                    name: rest[0].to_string(),
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    opts: BTreeMap::new(),
                };
                for kv in &rest[1..] {
                    let (k, v) = kv.split_once('=').unwrap();
                    match k {
                        "in" => op.inputs = parse_list(v),
                        "out" => op.outputs = parse_list(v),
                        _ => {
                            op.opts.insert(k.to_string(), v.to_string());
                        }
                    }
                }
                m.ops.push(op);
            }
            "graph_inputs" => {}
            "graph_outputs" => m.outputs = rest.iter().map(|v| v.parse().unwrap()).collect(),
            "input" => m.inputs.push((
                rest[0].parse().unwrap(),
                rest[1..].iter().map(|v| v.parse().unwrap()).collect(),
            )),
            k if k.starts_with("expected_") => {
                let vals: Vec<i64> = rest[1..].iter().map(|v| v.parse().unwrap()).collect();
                m.expected.entry(k.to_string()).or_default().extend(vals);
            }
            other => panic!("unknown line kind {other}"),
        }
    }
    models
}

fn act(op: &Op) -> FusedActivation {
    match op.opts.get("act").map(String::as_str) {
        None | Some("none") => FusedActivation::None,
        Some("relu") => FusedActivation::Relu,
        Some("relu6") => FusedActivation::Relu6,
        Some("relu_n1_to_1") => FusedActivation::ReluN1To1,
        Some(other) => panic!("activation {other}"),
    }
}

fn opt(op: &Op, k: &str) -> usize {
    op.opts[k].parse().unwrap()
}

fn padding(op: &Op) -> PaddingKind {
    if op.opts["padding"] == "same" {
        PaddingKind::Same
    } else {
        PaddingKind::Valid
    }
}

fn run(model: &Model, mode: Mode) -> Vec<i64> {
    let mut t = model.tensors.clone();
    for (idx, vals) in &model.inputs {
        let tensor = t.get_mut(idx).unwrap();
        tensor.data = match tensor.dtype.as_str() {
            "i8" => Data::I8(vals.iter().map(|&v| v as i8).collect()),
            "u8" => Data::U8(vals.iter().map(|&v| v as u8).collect()),
            other => panic!("input type {other}"),
        };
    }
    for op in &model.ops {
        let out_idx = op.outputs[0];
        let out = t[&out_idx].clone();
        let input = t[&(op.inputs[0] as usize)].clone();
        let is_i8 = out.dtype == "i8";
        let (qmin, qmax) = if is_i8 { (-128, 127) } else { (0, 255) };
        let out_zp = out.zps.first().copied().unwrap_or(0);
        let out_s = out.scales.first().copied().unwrap_or(1.0);
        let data = match op.name.as_str() {
            "RESHAPE" => input.data.clone(),
            "CONV_2D" => {
                let filter = &t[&(op.inputs[1] as usize)];
                let bias = t[&(op.inputs[2] as usize)].i32().to_vec();
                let (is, fs, os) = (input.shape4(), filter.shape4(), out.shape4());
                let (sh, sw) = (opt(op, "stride_h"), opt(op, "stride_w"));
                let (dh, dw) = (opt(op, "dilation_h"), opt(op, "dilation_w"));
                let gh = axis_geometry(padding(op), is.h, fs.h, sh, dh).unwrap();
                let gw = axis_geometry(padding(op), is.w, fs.w, sw, dw).unwrap();
                assert_eq!(
                    (gh.out, gw.out),
                    (os.h, os.w),
                    "{} conv geometry",
                    model.name
                );
                let p = ConvParams {
                    stride_h: sh,
                    stride_w: sw,
                    dilation_h: dh,
                    dilation_w: dw,
                    pad_top: gh.pad_before,
                    pad_left: gw.pad_before,
                };
                let in_s = input.scales[0];
                let (mut m, mut s) = (vec![0; os.c], vec![0; os.c]);
                if is_i8 {
                    conv_output_multipliers(in_s, &filter.scales, out_s, &mut m, &mut s).unwrap();
                } else {
                    let (mm, ss) = legacy_output_multiplier(in_s, filter.scales[0], out_s).unwrap();
                    m = vec![mm];
                    s = vec![ss];
                }
                let mut xs = vec![0f32; filter.scales.len()];
                xnnpack_scales(in_s, &filter.scales, out_s, &mut xs).unwrap();
                let requant = if mode == Mode::Default {
                    Requant::float32(&xs)
                } else {
                    Requant::new(&m, &s)
                };
                let (act_min, act_max) =
                    activation_range_quantized(act(op), out_s, out_zp, qmin, qmax);
                let q = QuantParams {
                    input_offset: -input.zps[0],
                    filter_offset: -filter.zps[0],
                    output_offset: out_zp,
                    requant,
                    act_min,
                    act_max,
                };
                if is_i8 {
                    let mut y = vec![0i8; os.checked_len().unwrap()];
                    conv2d_i8(
                        &p,
                        &q,
                        TensorRef::new(input.i8(), is),
                        TensorRef::new(filter.i8(), fs),
                        Some(&bias),
                        TensorMut::new(&mut y, os),
                    )
                    .unwrap();
                    Data::I8(y)
                } else {
                    let mut y = vec![0u8; os.checked_len().unwrap()];
                    conv2d_u8(
                        &p,
                        &q,
                        TensorRef::new(input.u8(), is),
                        TensorRef::new(filter.u8(), fs),
                        Some(&bias),
                        TensorMut::new(&mut y, os),
                    )
                    .unwrap();
                    Data::U8(y)
                }
            }
            "MAX_POOL_2D" => {
                let (is, os) = (input.shape4(), out.shape4());
                let (fh, fw) = (opt(op, "filter_h"), opt(op, "filter_w"));
                let (sh, sw) = (opt(op, "stride_h"), opt(op, "stride_w"));
                let gh = axis_geometry(padding(op), is.h, fh, sh, 1).unwrap();
                let gw = axis_geometry(padding(op), is.w, fw, sw, 1).unwrap();
                let p = PoolParams {
                    filter_h: fh,
                    filter_w: fw,
                    stride_h: sh,
                    stride_w: sw,
                    pad_top: gh.pad_before,
                    pad_left: gw.pad_before,
                };
                let (lo, hi) = activation_range_quantized(act(op), out_s, out_zp, qmin, qmax);
                if is_i8 {
                    let mut y = vec![0i8; os.checked_len().unwrap()];
                    max_pool2d_i8(
                        &p,
                        lo,
                        hi,
                        TensorRef::new(input.i8(), is),
                        TensorMut::new(&mut y, os),
                    )
                    .unwrap();
                    Data::I8(y)
                } else {
                    let mut y = vec![0u8; os.checked_len().unwrap()];
                    max_pool2d_u8(
                        &p,
                        lo,
                        hi,
                        TensorRef::new(input.u8(), is),
                        TensorMut::new(&mut y, os),
                    )
                    .unwrap();
                    Data::U8(y)
                }
            }
            "FULLY_CONNECTED" => {
                let w = &t[&(op.inputs[1] as usize)];
                let bias = t[&(op.inputs[2] as usize)].i32().to_vec();
                let (out_f, in_f) = (w.shape[0], w.shape[1]);
                let shape = FcShape {
                    batches: input.len() / in_f,
                    in_features: in_f,
                    out_features: out_f,
                };
                let in_s = input.scales[0];
                let (m, s) = if w.scales.len() > 1 {
                    let (mut m, mut s) = (vec![0; out_f], vec![0; out_f]);
                    conv_output_multipliers(in_s, &w.scales, out_s, &mut m, &mut s).unwrap();
                    (m, s)
                } else {
                    let (mm, ss) = legacy_output_multiplier(in_s, w.scales[0], out_s).unwrap();
                    (vec![mm], vec![ss])
                };
                let mut ds = vec![0f64; w.scales.len()];
                fc_reference_scales(in_s, &w.scales, out_s, &mut ds).unwrap();
                let mut xs = vec![0f32; w.scales.len()];
                xnnpack_scales(in_s, &w.scales, out_s, &mut xs).unwrap();
                let requant = match mode {
                    Mode::Reference => Requant::double(&ds),
                    Mode::Optimized => Requant::new(&m, &s),
                    Mode::Default => Requant::float32(&xs),
                };
                let (act_min, act_max) =
                    activation_range_quantized(act(op), out_s, out_zp, qmin, qmax);
                let q = QuantParams {
                    input_offset: -input.zps[0],
                    filter_offset: -w.zps[0],
                    output_offset: out_zp,
                    requant,
                    act_min,
                    act_max,
                };
                if is_i8 {
                    let mut y = vec![0i8; out.len()];
                    fully_connected_i8(shape, &q, input.i8(), w.i8(), Some(&bias), &mut y).unwrap();
                    Data::I8(y)
                } else {
                    let mut y = vec![0u8; out.len()];
                    fully_connected_u8(shape, &q, input.u8(), w.u8(), Some(&bias), &mut y).unwrap();
                    Data::U8(y)
                }
            }
            "CONCATENATION" => {
                let rank = out.shape.len() as i64;
                let axis = op.opts["axis"].parse::<i64>().unwrap();
                let axis = if axis < 0 { axis + rank } else { axis } as usize;
                let outer: usize = out.shape[..axis].iter().product();
                let parts: Vec<Tensor> = op
                    .inputs
                    .iter()
                    .map(|&i| t[&(i as usize)].clone())
                    .collect();
                assert!(!is_i8, "int8 concat not in the seed models");
                let inputs: Vec<ConcatInputQuant<'_, u8>> = parts
                    .iter()
                    .map(|p| ConcatInputQuant {
                        input: ConcatInput {
                            data: p.u8(),
                            row_len: p.shape[axis..].iter().product(),
                        },
                        scale: p.scales[0],
                        zero_point: p.zps[0],
                    })
                    .collect();
                let mut y = vec![0u8; out.len()];
                concatenation_requant(outer, &inputs, out_s, out_zp, &mut y).unwrap();
                Data::U8(y)
            }
            other => panic!(
                "{}: op {other} not handled by this test executor",
                model.name
            ),
        };
        t.get_mut(&out_idx).unwrap().data = data;
    }
    model
        .outputs
        .iter()
        .flat_map(|i| match &t[i].data {
            Data::I8(v) => v.iter().map(|&x| x as i64).collect::<Vec<_>>(),
            Data::U8(v) => v.iter().map(|&x| x as i64).collect(),
            other => panic!("output {other:?}"),
        })
        .collect()
}

#[test]
fn seed_models_match_the_interpreter() {
    let models = load();
    assert_eq!(models.len(), 5);
    let mut failures = Vec::new();
    for m in &models {
        for (mode, key) in [
            (Mode::Reference, "expected_ref"),
            (Mode::Optimized, "expected_opt"),
            (Mode::Default, "expected_default"),
        ] {
            let got = run(m, mode);
            eprintln!(
                "{:18} {mode:?}: {got:?} (interpreter {:?})",
                m.name, m.expected[key]
            );
            if got != m.expected[key] {
                failures.push(format!("{} {mode:?}", m.name));
            }
        }
    }
    // The README's published outputs, independent of the fixture's expected lines.
    let by_name = |n: &str| models.iter().find(|m| m.name == n).unwrap();
    assert_eq!(run(by_name("S0_s3_int8"), Mode::Reference), [-44, 70]);
    assert_eq!(
        run(by_name("B_s123_1IN_int8"), Mode::Reference),
        [-38, -22, -32, -7, -20, -22]
    );
    assert!(failures.is_empty(), "mismatches: {failures:?}");
}
