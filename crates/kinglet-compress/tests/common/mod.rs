//! Readers for the golden bundles written by `scripts/diff_generate.py` and
//! `scripts/diff_ptq_reference.py` (formats documented in those scripts).

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use kinglet_graph::{Graph, Interpreter, Tensor};

/// `name` inside tests/goldens/, or `name` itself when it is an absolute path.
pub fn golden_path(name: &str) -> PathBuf {
    if name.starts_with('/') {
        return PathBuf::from(name);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("goldens")
        .join(name)
}

/// Decompressed bundle bytes.
pub fn read_gz(name: &str) -> Vec<u8> {
    let path = golden_path(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

/// Element type codes of the bundle format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dt {
    F32,
    I8,
    U8,
    I32,
    I16,
}

#[derive(Clone, Debug)]
pub struct Array {
    pub dtype: Dt,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Array {
    pub fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.dtype, Dt::F32);
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

/// Cursor over bundle bytes; every read panics with the offset on truncation (goldens are
/// committed files, so a truncated one is a broken checkout, not user input).
pub struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.pos + n <= self.data.len(),
            "bundle truncated at byte {} (need {n})",
            self.pos
        );
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        s
    }

    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    pub fn u32(&mut self) -> u32 {
        let b = self.take(4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn blob(&mut self) -> &'a [u8] {
        let n = self.u32() as usize;
        self.take(n)
    }

    pub fn string(&mut self) -> String {
        String::from_utf8(self.blob().to_vec()).expect("bundle string is UTF-8")
    }

    pub fn array(&mut self) -> Array {
        let dtype = match self.u8() {
            0 => Dt::F32,
            1 => Dt::I8,
            2 => Dt::U8,
            3 => Dt::I32,
            4 => Dt::I16,
            other => panic!("unknown dtype code {other} at byte {}", self.pos),
        };
        let rank = self.u8() as usize;
        let shape: Vec<usize> = (0..rank).map(|_| self.u32() as usize).collect();
        let size = match dtype {
            Dt::F32 | Dt::I32 => 4,
            Dt::I16 => 2,
            Dt::I8 | Dt::U8 => 1,
        };
        let n: usize = shape.iter().product();
        let bytes = self.take(n * size).to_vec();
        Array {
            dtype,
            shape,
            bytes,
        }
    }

    pub fn arrays(&mut self) -> Vec<Array> {
        let n = self.u8() as usize;
        (0..n).map(|_| self.array()).collect()
    }
}

/// One random-model case: a .tflite model and (inputs, expected outputs) samples.
pub struct DiffCase {
    pub name: String,
    pub info: serde_json::Value,
    pub model: Vec<u8>,
    pub samples: Vec<(Vec<Array>, Vec<Array>)>,
}

pub fn read_diff_bundle(name: &str) -> (serde_json::Value, Vec<DiffCase>) {
    let data = read_gz(name);
    let mut c = Cursor::new(&data);
    assert_eq!(c.take(8), b"KLTDIFF1", "{name}: bad magic");
    let header: serde_json::Value = serde_json::from_slice(c.blob()).expect("header JSON");
    let n = c.u32() as usize;
    let mut cases = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.string();
        let info = serde_json::from_slice(c.blob()).expect("case info JSON");
        let model = c.blob().to_vec();
        let n_samples = c.u8() as usize;
        let samples = (0..n_samples)
            .map(|_| {
                let ins = c.arrays();
                let outs = c.arrays();
                (ins, outs)
            })
            .collect();
        cases.push(DiffCase {
            name,
            info,
            model,
            samples,
        });
    }
    assert_eq!(c.pos, data.len(), "{name}: trailing bytes");
    (header, cases)
}

/// One PTQ reference case: float model, the converter's int8 model, calibration samples.
pub struct PtqCase {
    pub name: String,
    pub info: serde_json::Value,
    pub float_model: Vec<u8>,
    pub converter_model: Vec<u8>,
    pub calibration: Vec<Vec<Array>>,
}

pub fn read_ptq_bundle(name: &str) -> (serde_json::Value, Vec<PtqCase>) {
    let data = read_gz(name);
    let mut c = Cursor::new(&data);
    assert_eq!(c.take(8), b"KLTPTQ01", "{name}: bad magic");
    let header: serde_json::Value = serde_json::from_slice(c.blob()).expect("header JSON");
    let n = c.u32() as usize;
    let mut cases = Vec::with_capacity(n);
    for _ in 0..n {
        let name = c.string();
        let info = serde_json::from_slice(c.blob()).expect("case info JSON");
        let float_model = c.blob().to_vec();
        let converter_model = c.blob().to_vec();
        let n_cal = c.u32() as usize;
        let calibration = (0..n_cal).map(|_| c.arrays()).collect();
        cases.push(PtqCase {
            name,
            info,
            float_model,
            converter_model,
            calibration,
        });
    }
    assert_eq!(c.pos, data.len(), "{name}: trailing bytes");
    (header, cases)
}

/// The PTQ configurations `examples/ptq_export.rs` exports each reference case under:
/// (name, config, every n-th case).
pub fn export_configs() -> Vec<(&'static str, kinglet_compress::PtqConfig, usize)> {
    use kinglet_compress::{Calibration, PtqConfig};
    vec![
        ("minmax", PtqConfig::default(), 1),
        (
            "float_io",
            PtqConfig {
                float_io: true,
                ..PtqConfig::default()
            },
            3,
        ),
        (
            "mse",
            PtqConfig {
                calibration: Calibration::Mse,
                ..PtqConfig::default()
            },
            4,
        ),
        (
            "percentile",
            PtqConfig {
                calibration: Calibration::Percentile(99.9),
                ..PtqConfig::default()
            },
            5,
        ),
        // Sub-byte weights: every weighted layer at 4 bits, or alternating 4 and 8 bits with
        // fully-connected layers at 2 (TFLite's CONV_2D and DEPTHWISE_CONV_2D kernels take
        // INT4 filters but not INT2; FULLY_CONNECTED takes both). `weight_bits` is filled per
        // model by [`sub_byte_bits`].
        ("w4a8", PtqConfig::default(), 1),
        ("mixed", PtqConfig::default(), 2),
    ]
}

/// The weight widths export config `name` gives `float`'s weighted layers (empty: int8).
pub fn sub_byte_bits(name: &str, float: &kinglet_graph::Graph) -> Vec<u32> {
    let layers = kinglet_compress::subbyte::weighted_layers(float);
    match name {
        "w4a8" => vec![4; layers.len()],
        "mixed" => layers
            .iter()
            .enumerate()
            .map(|(i, l)| match (l.kind, i % 2) {
                ("FULLY_CONNECTED", _) => 2,
                (_, 0) => 4,
                _ => 8,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Relative scale tolerance: float32 rounding of calibration ranges computed by two
/// different float runtimes.
pub const SCALE_RTOL: f64 = 1e-5;

pub fn compare_tensor(
    what: &str,
    ours: &Tensor,
    theirs: &Tensor,
    scale_rtol: f64,
    problems: &mut Vec<String>,
) {
    if ours.dtype != theirs.dtype || ours.shape != theirs.shape {
        problems.push(format!(
            "{what}: {} {:?} vs converter {} {:?}",
            ours.dtype, ours.shape, theirs.dtype, theirs.shape
        ));
        return;
    }
    match (&ours.quant, &theirs.quant) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            if a.scale.len() != b.scale.len()
                || a.zero_point != b.zero_point
                || (a.scale.len() > 1 && a.axis != b.axis)
            {
                problems.push(format!(
                    "{what}: zero points {:?} axis {} ({} scales) vs converter {:?} axis {} ({} scales)",
                    a.zero_point,
                    a.axis,
                    a.scale.len(),
                    b.zero_point,
                    b.axis,
                    b.scale.len()
                ));
            }
            for (i, (x, y)) in a.scale.iter().zip(&b.scale).enumerate() {
                let rel = ((f64::from(*x) - f64::from(*y)) / f64::from(*y)).abs();
                if rel > scale_rtol {
                    problems.push(format!(
                        "{what}: scale[{i}] {x:e} vs converter {y:e} (rel {rel:.1e})"
                    ));
                    break;
                }
            }
        }
        (a, b) => problems.push(format!("{what}: quantisation {a:?} vs converter {b:?}")),
    }
    match (&ours.data, &theirs.data) {
        (None, None) => {}
        (Some(a), Some(b)) if a.len() == b.len() => match ours.dtype {
            kinglet_graph::DType::I32 => {
                let (x, y) = (
                    ours.data_i32().unwrap_or_default(),
                    theirs.data_i32().unwrap_or_default(),
                );
                for (i, (p, q)) in x.iter().zip(&y).enumerate() {
                    let tol = (1e-5 * f64::from(*q).abs()).max(1.0);
                    if (f64::from(*p) - f64::from(*q)).abs() > tol {
                        problems.push(format!("{what}: int32 value [{i}] {p} vs converter {q}"));
                        break;
                    }
                }
            }
            _ => {
                let diffs = a.iter().zip(b).filter(|(p, q)| p != q).count();
                if diffs > 0 {
                    problems.push(format!(
                        "{what}: {diffs} of {} constant bytes differ",
                        a.len()
                    ));
                }
            }
        },
        (a, b) => problems.push(format!(
            "{what}: constant data {} vs converter {}",
            a.as_ref()
                .map_or("absent".into(), |d| format!("{} bytes", d.len())),
            b.as_ref()
                .map_or("absent".into(), |d| format!("{} bytes", d.len()))
        )),
    }
}

/// Differences between two quantised graphs with the same op sequence, one line each.
pub fn compare_graphs(ours: &Graph, theirs: &Graph, scale_rtol: f64) -> Vec<String> {
    let mut problems = Vec::new();
    let names = |g: &Graph| g.ops.iter().map(|o| o.kind.name()).collect::<Vec<_>>();
    if names(ours) != names(theirs) {
        problems.push(format!(
            "ops {:?} vs converter {:?}",
            names(ours),
            names(theirs)
        ));
        return problems;
    }
    for (i, (a, b)) in ours.ops.iter().zip(&theirs.ops).enumerate() {
        if a.kind != b.kind {
            problems.push(format!("op {i}: {:?} vs converter {:?}", a.kind, b.kind));
        }
        if a.inputs.len() != b.inputs.len() {
            problems.push(format!(
                "op {i} {}: {} inputs vs converter {}",
                a.kind.name(),
                a.inputs.len(),
                b.inputs.len()
            ));
            continue;
        }
        for (j, (x, y)) in a.inputs.iter().zip(&b.inputs).enumerate() {
            compare_tensor(
                &format!("op {i} {} input {j}", a.kind.name()),
                ours.tensor(*x),
                theirs.tensor(*y),
                scale_rtol,
                &mut problems,
            );
        }
        for (j, (x, y)) in a.outputs.iter().zip(&b.outputs).enumerate() {
            compare_tensor(
                &format!("op {i} {} output {j}", a.kind.name()),
                ours.tensor(*x),
                theirs.tensor(*y),
                scale_rtol,
                &mut problems,
            );
        }
    }
    problems
}

/// Float outputs may differ by summation order: |a − b| ≤ ATOL + RTOL·|b|.
pub const F32_RTOL: f32 = 1e-4;
pub const F32_ATOL: f32 = 1e-5;

pub fn outputs_match(ours: &[u8], expected: &Array) -> Result<(), String> {
    if ours.len() != expected.bytes.len() {
        return Err(format!(
            "{} bytes vs expected {}",
            ours.len(),
            expected.bytes.len()
        ));
    }
    match expected.dtype {
        Dt::F32 => {
            let e = expected.f32s();
            let o: Vec<f32> = ours
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            // NaN never counts as close unless both sides are NaN.
            let close = |a: f32, b: f32| {
                (a - b).abs() <= F32_ATOL + F32_RTOL * b.abs() || (a.is_nan() && b.is_nan())
            };
            let bad: Vec<usize> = (0..e.len()).filter(|&i| !close(o[i], e[i])).collect();
            match bad.first() {
                None => Ok(()),
                Some(&i) => Err(format!(
                    "{} of {} floats differ, first [{i}] {} vs {}",
                    bad.len(),
                    e.len(),
                    o[i],
                    e[i]
                )),
            }
        }
        _ => {
            let bad: Vec<usize> = (0..ours.len())
                .filter(|&i| ours[i] != expected.bytes[i])
                .collect();
            match bad.first() {
                None => Ok(()),
                Some(&i) => Err(format!(
                    "{} of {} values differ, first [{i}] {} vs {}",
                    bad.len(),
                    ours.len(),
                    ours[i] as i8,
                    expected.bytes[i] as i8
                )),
            }
        }
    }
}

/// Runs a .tflite model through kinglet-graph on every sample and compares outputs.
pub fn run_case(model: &[u8], samples: &[(Vec<Array>, Vec<Array>)]) -> Result<(), String> {
    let graph = Graph::from_tflite_bytes(model).map_err(|e| format!("read: {e}"))?;
    let mut interp = Interpreter::new(&graph).map_err(|e| format!("prepare: {e}"))?;
    for (s, (inputs, outputs)) in samples.iter().enumerate() {
        for (i, a) in inputs.iter().enumerate() {
            interp
                .set_input_bytes(i, &a.bytes)
                .map_err(|e| format!("sample {s} input {i}: {e}"))?;
        }
        interp.invoke().map_err(|e| format!("sample {s}: {e}"))?;
        for (i, expected) in outputs.iter().enumerate() {
            let ours = interp
                .output_bytes(i)
                .map_err(|e| format!("sample {s} output {i}: {e}"))?;
            outputs_match(ours, expected).map_err(|e| format!("sample {s} output {i}: {e}"))?;
        }
    }
    Ok(())
}
