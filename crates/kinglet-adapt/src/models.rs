//! Models run by kinglet-graph's host interpreter, as [`WindowClassifier`]s over a stream of
//! HAR windows. A graph's inputs take channels of the window as its `kinglet.input_names`
//! metadata (or the seed's file names) say; uint8 inputs get the seed's min-max scaling, f32
//! inputs the (optionally normalised) float window, int8 inputs the float window quantised
//! with the input's own scale and zero point.

use std::rc::Rc;

use kinglet_data::Dataset;
use kinglet_graph::eval::InputLayout;
use kinglet_graph::{DType, Graph, Interpreter, TfliteKernels};

use kinglet_adapt_core::Signature;

use crate::classifier::{DistanceTable, l1_distances};
use crate::strategy::SIGNATURE_SCALE_G;
use crate::{AdaptError, OutputKind, WindowClassifier};

/// Channels of the seed's total_acc sensor (s3) in a UCI-HAR window.
pub const S3_CHANNELS: [usize; 3] = [6, 7, 8];

/// Where a window's 3-axis accelerometer (gravity included) is, and the factor that turns its
/// unit into g: the signature check reads it as an 8-bit ±2 g sensor would deliver it, whatever
/// the dataset's layout and unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccelChannels {
    pub index: [usize; 3],
    pub to_g: f32,
}

/// Standard gravity, m/s² per g.
const STANDARD_GRAVITY: f32 = 9.806_65;

impl AccelChannels {
    /// UCI-HAR's layout: total_acc (in g) at channels 6–8.
    pub const UCI_HAR: AccelChannels = AccelChannels {
        index: S3_CHANNELS,
        to_g: 1.0,
    };

    /// By channel name: `total_acc_{x,y,z}` in g (UCI-HAR, HAPT) or `acc_{x,y,z}` in m/s²
    /// (WISDM).
    pub fn find(names: &[String]) -> Option<AccelChannels> {
        let find = |prefix: &str| -> Option<[usize; 3]> {
            let at = |axis: &str| names.iter().position(|n| *n == format!("{prefix}{axis}"));
            Some([at("x")?, at("y")?, at("z")?])
        };
        if let Some(index) = find("total_acc_") {
            return Some(AccelChannels { index, to_g: 1.0 });
        }
        find("acc_").map(|index| AccelChannels {
            index,
            to_g: 1.0 / STANDARD_GRAVITY,
        })
    }

    /// For windows known only by their channel count: UCI-HAR's layout when it fits.
    pub fn by_count(channels: usize) -> Option<AccelChannels> {
        (channels > S3_CHANNELS[2]).then_some(Self::UCI_HAR)
    }
}

/// Channel names for windows known only by their count: UCI-HAR's nine when they fit (the
/// seed's int8 windows), else `channel0`, `channel1`, ….
pub fn default_channel_names(channels: usize) -> Vec<String> {
    if channels == kinglet_graph::eval::SEED_CHANNELS.len() {
        kinglet_graph::eval::SEED_CHANNELS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        (0..channels).map(|c| format!("channel{c}")).collect()
    }
}

/// Which window channels feed each graph input. A kinglet model names its inputs' channels
/// in its normalisation metadata, so it runs on any dataset whose windows have those
/// channels, in any order; the seed's models (no metadata) follow UCI-HAR's channel order by
/// their file names ([`InputLayout::for_graph`]).
pub fn input_layout(
    graph: &Graph,
    name: &str,
    channel_names: &[String],
) -> Result<InputLayout, AdaptError> {
    let err = |m: String| AdaptError::Invalid(format!("model `{name}`: {m}"));
    let described: Option<Vec<Vec<String>>> = graph
        .metadata
        .get(kinglet_graph::meta::NORMALISATION)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|v| {
            v.get("inputs")?
                .as_array()?
                .iter()
                .map(|input| serde_json::from_value(input.get("channels")?.clone()).ok())
                .collect()
        });
    let Some(inputs) = described else {
        // The seed's conventions index UCI-HAR's channel order; find those channels by name.
        let seed = InputLayout::for_graph(graph, name).map_err(|e| err(e.to_string()))?;
        let by_name = |i: usize| -> Result<usize, AdaptError> {
            let wanted = kinglet_graph::eval::SEED_CHANNELS[i];
            channel_names
                .iter()
                .position(|n| n == wanted)
                .ok_or_else(|| {
                    err(format!(
                        "reads channel `{wanted}`, the windows have {}",
                        channel_names.join(", ")
                    ))
                })
        };
        let inputs = seed
            .inputs
            .iter()
            .map(|picks| picks.iter().map(|&i| by_name(i)).collect())
            .collect::<Result<_, _>>()?;
        return Ok(InputLayout { inputs });
    };
    if inputs.len() != graph.inputs.len() {
        return Err(err(format!(
            "its metadata describes {} inputs, the graph has {}",
            inputs.len(),
            graph.inputs.len()
        )));
    }
    let mut layout = Vec::with_capacity(inputs.len());
    for (channels, &id) in inputs.iter().zip(&graph.inputs) {
        let picks = channels
            .iter()
            .map(|c| {
                channel_names.iter().position(|n| n == c).ok_or_else(|| {
                    err(format!(
                        "reads channel `{c}`, the windows have {}",
                        channel_names.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let shape = &graph.tensor(id).shape;
        if shape.last() != Some(&picks.len()) {
            return Err(err(format!(
                "an input of shape {shape:?} is described with {} channels",
                picks.len()
            )));
        }
        layout.push(picks);
    }
    Ok(InputLayout { inputs: layout })
}

/// The windows of a stream in two forms: float values and the seed's uint8 scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowData {
    pub n: usize,
    pub time: usize,
    pub channels: usize,
    /// What each channel is (`total_acc_x`, `acc_x`, …): models find their inputs by name.
    pub channel_names: Vec<String>,
    /// The accelerometer the signature check reads, if the windows have one.
    pub accel: Option<AccelChannels>,
    pub values: Vec<f32>,
    /// Per channel over the whole stream, `trunc(255 · (x − min)/(max − min))`.
    pub seed_u8: Vec<u8>,
}

impl WindowData {
    /// From a `[time, channels]` dataset (e.g. UCI-HAR windows).
    pub fn from_dataset(data: &Dataset) -> Result<Self, AdaptError> {
        let [time, channels] = data.sample_shape[..] else {
            return Err(AdaptError::Invalid(format!(
                "expected [time, channels] windows, got shape {:?}",
                data.sample_shape
            )));
        };
        if let Some(i) = data.data.iter().position(|v| !v.is_finite()) {
            let per = time * channels;
            return Err(AdaptError::Invalid(format!(
                "window {}, step {}, channel {} is {}",
                i / per,
                (i % per) / channels,
                i % channels,
                data.data[i]
            )));
        }
        Ok(Self {
            n: data.len(),
            time,
            channels,
            channel_names: data.channel_names.clone(),
            accel: AccelChannels::find(&data.channel_names),
            values: data.data.clone(),
            seed_u8: kinglet_data::seed_uint8_scaling(data),
        })
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let per = self.time * self.channels;
        i * per..(i + 1) * per
    }

    pub fn window(&self, i: usize) -> &[f32] {
        &self.values[self.range(i)]
    }

    pub fn window_u8(&self, i: usize) -> &[u8] {
        &self.seed_u8[self.range(i)]
    }

    /// The seed-scaled values of `channels` of window `i`, time-major.
    pub fn pick_u8(&self, i: usize, channels: &[usize]) -> Vec<u8> {
        self.window_u8(i)
            .chunks_exact(self.channels)
            .flat_map(|step| channels.iter().map(|&c| step[c]))
            .collect()
    }

    /// 1BDD's distances: L1 between consecutive seed-scaled total_acc windows.
    pub fn s3_distances(&self) -> Result<DistanceTable, AdaptError> {
        if self.channels <= S3_CHANNELS[2] {
            return Err(AdaptError::Invalid(format!(
                "1BDD needs total_acc (channels 6–8); the windows have {} channels",
                self.channels
            )));
        }
        let windows: Vec<Vec<u8>> = (0..self.n).map(|i| self.pick_u8(i, &S3_CHANNELS)).collect();
        Ok(l1_distances(&windows))
    }
}

/// The signature strategy's distances for `stride`-channel int8 windows (time-major): each
/// window's [`Signature`] distance to the window before it (window 0 gets 0).
pub fn signature_distances(windows: &[&[i8]], stride: usize) -> DistanceTable {
    signature_distances_of(windows, stride, S3_CHANNELS[0])
}

fn signature_distances_of(windows: &[&[i8]], stride: usize, first_axis: usize) -> DistanceTable {
    let signatures: Vec<Signature> = windows
        .iter()
        .map(|w| Signature::of(w, stride, first_axis))
        .collect();
    let out = (0..signatures.len())
        .map(|i| {
            i.checked_sub(1)
                .map_or(0, |j| signatures[j].distance(&signatures[i]))
        })
        .collect();
    DistanceTable(out)
}

impl WindowData {
    /// The accelerometer (in g) quantised to int8 at [`SIGNATURE_SCALE_G`] per step, as an
    /// 8-bit ±2 g accelerometer would deliver it: `[n, time, 3]`. Empty without one.
    pub fn signature_bytes(&self) -> Vec<i8> {
        let Some(accel) = self.accel else {
            return Vec::new();
        };
        self.values
            .chunks_exact(self.channels)
            .flat_map(|step| accel.index.map(|c| step[c] * accel.to_g))
            .map(|v| (v / SIGNATURE_SCALE_G).round().clamp(-128.0, 127.0) as i8)
            .collect()
    }

    /// The signature strategy's distances over [`signature_bytes`](Self::signature_bytes).
    pub fn signature_distances(&self) -> Result<DistanceTable, AdaptError> {
        if self.accel.is_none() {
            return Err(AdaptError::Invalid(
                "the signature strategy needs a 3-axis accelerometer with gravity (channels total_acc_x/y/z in g, or acc_x/y/z in m/s²)".into(),
            ));
        }
        let bytes = self.signature_bytes();
        let windows: Vec<&[i8]> = bytes.chunks_exact(self.time * 3).collect();
        Ok(signature_distances_of(&windows, 3, 0))
    }
}

/// How every int8 model input is fed from a float value: `round(v / scale) + zero_point`,
/// clamped. The firmware cascade performs these same f32 operations on the device.
pub fn quantise_i8(v: f32, scale: f32, zero_point: i32) -> i8 {
    ((v / scale).round() as i32 + zero_point).clamp(-128, 127) as i8
}

/// Per-channel `(x − mean) / std` applied to float windows before an f32 or int8 graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalise {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalise {
    /// One mean and one non-zero std for each of the windows' `channels`.
    pub fn check(&self, channels: usize) -> Result<(), String> {
        if self.mean.len() != channels || self.std.len() != channels || self.std.contains(&0.0) {
            return Err(format!(
                "normalisation needs {channels} channels with non-zero std"
            ));
        }
        Ok(())
    }
}

/// How a graph's input is filled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Feed {
    SeedU8,
    F32,
    I8 { scale: f32, zero_point: i32 },
}

/// A `.tflite` (or lowered) graph scoring one window at a time.
pub struct GraphClassifier {
    name: String,
    interp: Interpreter,
    layout: InputLayout,
    feeds: Vec<Feed>,
    normalise: Option<Normalise>,
    windows: Rc<WindowData>,
    kind: OutputKind,
}

fn graph_err(model: &str, window: usize, e: impl std::fmt::Display) -> AdaptError {
    AdaptError::Model {
        model: model.to_string(),
        window,
        message: e.to_string(),
    }
}

/// Logits unless the op producing output 0 is a softmax.
pub fn output_kind(graph: &Graph) -> OutputKind {
    let out = graph.outputs.first();
    let producer = graph.ops.iter().find(|op| op.outputs.first() == out);
    match producer {
        Some(op) if op.kind.name() == "SOFTMAX" => OutputKind::Probabilities,
        _ => OutputKind::Logits,
    }
}

impl GraphClassifier {
    /// Runs the model with the given TFLite kernel configuration (its rounding) instead of
    /// the interpreter's default; see [`TfliteKernels`].
    pub fn with_kernels(mut self, kernels: TfliteKernels) -> Result<Self, AdaptError> {
        self.interp = Interpreter::with_kernels(self.interp.graph(), kernels)
            .map_err(|e| graph_err(&self.name, 0, e))?;
        Ok(self)
    }

    /// `name` is used for messages and, without metadata, to find the input layout from the
    /// seed's naming (`*_s123_3IN*`, `*_s123_1IN*`, `*_s3*`).
    pub fn new(
        name: &str,
        graph: &Graph,
        windows: Rc<WindowData>,
        normalise: Option<Normalise>,
    ) -> Result<Self, AdaptError> {
        let err = |e: &dyn std::fmt::Display| AdaptError::Invalid(format!("model `{name}`: {e}"));
        let layout = input_layout(graph, name, &windows.channel_names)?;
        let mut feeds = Vec::new();
        for (i, id) in graph.inputs.iter().enumerate() {
            let t = graph.tensor(*id);
            feeds.push(match t.dtype {
                DType::U8 => Feed::SeedU8,
                DType::F32 => Feed::F32,
                DType::I8 => match &t.quant {
                    Some(q) if q.is_per_tensor() => Feed::I8 {
                        scale: q.scale[0],
                        zero_point: q.zero_point[0],
                    },
                    _ => {
                        return Err(err(&format!(
                            "int8 input {i} has no per-tensor quantisation"
                        )));
                    }
                },
                other => {
                    return Err(err(&format!(
                        "input {i} has type {other}, which kinglet cannot feed"
                    )));
                }
            });
        }
        if let Some(n) = &normalise {
            n.check(windows.channels).map_err(|e| err(&e))?;
        }
        let interp = Interpreter::new(graph).map_err(|e| err(&e))?;
        Ok(Self {
            name: name.to_string(),
            interp,
            layout,
            feeds,
            normalise,
            windows,
            kind: output_kind(graph),
        })
    }

    fn float_value(&self, window: &[f32], step: usize, c: usize) -> f32 {
        let v = window[step * self.windows.channels + c];
        match &self.normalise {
            Some(n) => (v - n.mean[c]) / n.std[c],
            None => v,
        }
    }
}

impl WindowClassifier for GraphClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&mut self, window: usize) -> Result<Vec<f32>, AdaptError> {
        if window >= self.windows.n {
            return Err(graph_err(
                &self.name,
                window,
                format!("the stream has {} windows", self.windows.n),
            ));
        }
        let floats = self.windows.window(window);
        for (i, picks) in self.layout.inputs.clone().iter().enumerate() {
            let result = match self.feeds[i] {
                Feed::SeedU8 => self
                    .interp
                    .set_input(i, &self.windows.pick_u8(window, picks)),
                Feed::F32 => {
                    let v: Vec<f32> = (0..self.windows.time)
                        .flat_map(|t| picks.iter().map(move |&c| (t, c)))
                        .map(|(t, c)| self.float_value(floats, t, c))
                        .collect();
                    self.interp.set_input(i, &v)
                }
                Feed::I8 { scale, zero_point } => {
                    let v: Vec<i8> = (0..self.windows.time)
                        .flat_map(|t| picks.iter().map(move |&c| (t, c)))
                        .map(|(t, c)| {
                            quantise_i8(self.float_value(floats, t, c), scale, zero_point)
                        })
                        .collect();
                    self.interp.set_input(i, &v)
                }
            };
            result.map_err(|e| graph_err(&self.name, window, e))?;
        }
        self.interp
            .invoke()
            .map_err(|e| graph_err(&self.name, window, e))?;
        self.interp
            .output_f32(0)
            .map_err(|e| graph_err(&self.name, window, e))
    }

    fn output_kind(&self) -> OutputKind {
        self.kind
    }
}

/// The seed's Dual model: one uint8 input `[1, 384, 2]`, channel 0 = the previous seed-scaled
/// total_acc window flattened time-major, channel 1 = the current one (window 0 pairs with
/// itself; the controller never asks for it there).
pub struct DualClassifier {
    name: String,
    interp: Interpreter,
    windows: Rc<WindowData>,
    kind: OutputKind,
    feed: DualFeed,
}

/// The two Dual layouts kinglet reads.
#[derive(Debug, Clone, PartialEq)]
enum DualFeed {
    /// The seed's: uint8 min-max scaled total_acc, `[1, 384, 2]` with time-major x, y, z
    /// samples and (previous, current) pairs.
    SeedU8,
    /// kinglet's (`--arch dual`): `[1, 384, 2]` int8 or f32, the three normalised axes laid end
    /// to end (x[0..128], y…, z…) and (previous, current) as the two channels.
    AxisMajor {
        quant: Option<(f32, i32)>,
        normalise: Option<Normalise>,
    },
}

/// A kinglet-trained Dual model's input, int8 `[1, 384, 2]` axis-major: `(previous, current)`
/// pairs of normalised total_acc values, quantised as `GraphClassifier` quantises (for the
/// firmware cascade's host side and the simulator alike).
fn dual_value(
    windows: &WindowData,
    normalise: Option<&Normalise>,
    window: usize,
    axis: usize,
    t: usize,
) -> f32 {
    let c = S3_CHANNELS[axis];
    let v = windows.window(window)[t * windows.channels + c];
    match normalise {
        Some(n) => (v - n.mean[c]) / n.std[c],
        None => v,
    }
}

impl DualClassifier {
    /// Runs the model with the given TFLite kernel configuration; see [`TfliteKernels`].
    pub fn with_kernels(mut self, kernels: TfliteKernels) -> Result<Self, AdaptError> {
        self.interp = Interpreter::with_kernels(self.interp.graph(), kernels)
            .map_err(|e| graph_err(&self.name, 0, e))?;
        Ok(self)
    }

    /// A uint8 input is the seed's layout; int8 and f32 inputs are kinglet's, normalised with
    /// `normalise` (the model's training normalisation, in the windows' channel order).
    pub fn new(
        name: &str,
        graph: &Graph,
        windows: Rc<WindowData>,
        normalise: Option<Normalise>,
    ) -> Result<Self, AdaptError> {
        let err = |m: String| AdaptError::Invalid(format!("model `{name}`: {m}"));
        let [input] = graph.inputs[..] else {
            return Err(err(format!(
                "a Dual model has one input, this one has {}",
                graph.inputs.len()
            )));
        };
        let t = graph.tensor(input);
        let expected = windows.time * S3_CHANNELS.len() * 2;
        if t.elements() != expected || t.shape.last() != Some(&2) {
            return Err(err(format!(
                "expected a [1, {}, 2] input, got {:?}",
                expected / 2,
                t.shape
            )));
        }
        if windows.channels <= S3_CHANNELS[2] {
            return Err(err(format!(
                "a Dual model reads total_acc (channels 6–8); the windows have {}",
                windows.channels
            )));
        }
        if let Some(n) = &normalise {
            n.check(windows.channels).map_err(err)?;
        }
        let feed = match (t.dtype, &t.quant) {
            (DType::U8, _) => DualFeed::SeedU8,
            (DType::I8, Some(q)) if q.is_per_tensor() => DualFeed::AxisMajor {
                quant: Some((q.scale[0], q.zero_point[0])),
                normalise,
            },
            (DType::F32, _) => DualFeed::AxisMajor {
                quant: None,
                normalise,
            },
            (dtype, _) => {
                return Err(err(format!(
                    "a Dual input must be uint8 (the seed's), per-tensor int8 or f32, not {dtype}"
                )));
            }
        };
        let interp = Interpreter::new(graph).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            name: name.to_string(),
            interp,
            windows,
            kind: output_kind(graph),
            feed,
        })
    }
}

impl WindowClassifier for DualClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&mut self, window: usize) -> Result<Vec<f32>, AdaptError> {
        if window >= self.windows.n {
            return Err(graph_err(
                &self.name,
                window,
                format!("the stream has {} windows", self.windows.n),
            ));
        }
        let previous = window.saturating_sub(1);
        let result = match &self.feed {
            DualFeed::SeedU8 => {
                let current = self.windows.pick_u8(window, &S3_CHANNELS);
                let before = self.windows.pick_u8(previous, &S3_CHANNELS);
                let pairs: Vec<u8> = before
                    .iter()
                    .zip(&current)
                    .flat_map(|(&p, &c)| [p, c])
                    .collect();
                self.interp.set_input(0, &pairs)
            }
            DualFeed::AxisMajor { quant, normalise } => {
                let time = self.windows.time;
                let values: Vec<f32> = (0..3)
                    .flat_map(|axis| (0..time).map(move |t| (axis, t)))
                    .flat_map(|(axis, t)| {
                        [previous, window]
                            .map(|w| dual_value(&self.windows, normalise.as_ref(), w, axis, t))
                    })
                    .collect();
                match quant {
                    Some((scale, zero_point)) => {
                        let q: Vec<i8> = values
                            .iter()
                            .map(|&v| quantise_i8(v, *scale, *zero_point))
                            .collect();
                        self.interp.set_input(0, &q)
                    }
                    None => self.interp.set_input(0, &values),
                }
            }
        };
        result.map_err(|e| graph_err(&self.name, window, e))?;
        self.interp
            .invoke()
            .map_err(|e| graph_err(&self.name, window, e))?;
        self.interp
            .output_f32(0)
            .map_err(|e| graph_err(&self.name, window, e))
    }

    fn output_kind(&self) -> OutputKind {
        self.kind
    }
}

/// Reads a `.tflite` file into a graph, naming the file in errors.
pub fn load_tflite(path: &std::path::Path) -> Result<Graph, AdaptError> {
    let bytes = std::fs::read(path).map_err(|e| AdaptError::io(path, e))?;
    Graph::from_tflite_bytes(&bytes).map_err(|e| AdaptError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accelerometer_is_found_by_name_and_unit() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let uci = kinglet_data::uci_har::HAR_CHANNELS
            .map(String::from)
            .to_vec();
        assert_eq!(AccelChannels::find(&uci), Some(AccelChannels::UCI_HAR));
        let wisdm = names(&["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]);
        let a = AccelChannels::find(&wisdm).unwrap();
        assert_eq!(a.index, [0, 1, 2]);
        assert!((a.to_g * 9.806_65 - 1.0).abs() < 1e-6);
        assert_eq!(AccelChannels::find(&names(&["gyro_x", "acc_x"])), None);
        // 1 g along z in m/s² reads as 64 steps of 1/64 g, as UCI-HAR's 1.0 g does.
        let data = WindowData {
            n: 1,
            time: 1,
            channels: 6,
            channel_names: wisdm.clone(),
            accel: Some(a),
            values: vec![0.0, 0.0, 9.806_65, 0.0, 0.0, 0.0],
            seed_u8: vec![0; 6],
        };
        assert_eq!(data.signature_bytes(), vec![0, 0, 64]);
        let none = WindowData {
            accel: None,
            ..data
        };
        assert!(none.signature_distances().is_err());
    }
}
