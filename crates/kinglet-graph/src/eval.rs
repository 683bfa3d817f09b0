//! Evaluating a graph over prepared windows: which channels of a window feed which graph
//! input (the seed's Big model has three inputs, one per sensor), seed scaling, and a loop
//! that runs the interpreter per window.
//!
//! Windows are `[time, channels]` row-major with UCI-HAR's channel order
//! `body_acc xyz, body_gyro xyz, total_acc xyz` = `s1 xyz, s2 xyz, s3 xyz` ([`SEED_CHANNELS`]).

use crate::error::GraphError;
use crate::graph::{Graph, meta};
use crate::interp::{Element, Interpreter, TfliteKernels};

/// Channel order of a 9-channel UCI-HAR window as kinglet passes it around.
pub const SEED_CHANNELS: [&str; 9] = [
    "body_acc_x",
    "body_acc_y",
    "body_acc_z",
    "body_gyro_x",
    "body_gyro_y",
    "body_gyro_z",
    "total_acc_x",
    "total_acc_y",
    "total_acc_z",
];

/// Sensor groups of the seed: s1 = body_acc, s2 = body_gyro, s3 = total_acc.
fn sensor_channels(name: &str) -> Option<[usize; 3]> {
    match name {
        "s1" | "body_acc" => Some([0, 1, 2]),
        "s2" | "body_gyro" => Some([3, 4, 5]),
        "s3" | "total_acc" => Some([6, 7, 8]),
        _ => None,
    }
}

/// For each graph input, the window channels (indices into [`SEED_CHANNELS`]) it takes, in
/// order along the input's channel axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputLayout {
    pub inputs: Vec<Vec<usize>>,
}

impl InputLayout {
    /// Parses one line per graph input, each a `+`-separated list of sensor groups
    /// (`s1`, `s2`, `s3`), e.g. `s1+s2+s3` for the merged Big or `s1\ns2\ns3` for Big-3IN.
    pub fn parse(lines: &[String]) -> Result<InputLayout, GraphError> {
        let inputs = lines
            .iter()
            .map(|line| {
                line.split('+')
                    .map(|g| {
                        sensor_channels(g.trim()).ok_or_else(|| {
                            GraphError::Invalid(format!("unknown sensor group '{g}' in input layout '{line}' (use s1, s2, s3)"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|groups| groups.concat())
            })
            .collect::<Result<_, _>>()?;
        Ok(InputLayout { inputs })
    }

    /// Layout of a graph: from its `kinglet.input_names` metadata, else from the seed's
    /// file-naming convention (`*_s123_3IN*` → s1 | s2 | s3, `*_s123_1IN*` → s1+s2+s3,
    /// `*_s3*` → s3), else an error asking for metadata. Checked against the input shapes.
    pub fn for_graph(graph: &Graph, model_name: &str) -> Result<InputLayout, GraphError> {
        let lines: Vec<String> = if let Some(l) = graph.metadata_list(meta::INPUT_NAMES) {
            l
        } else if model_name.contains("_s123_3IN") {
            vec!["s1".into(), "s2".into(), "s3".into()]
        } else if model_name.contains("_s123_1IN") {
            vec!["s1+s2+s3".into()]
        } else if model_name.contains("_s3") {
            vec!["s3".into()]
        } else {
            return Err(GraphError::Invalid(format!(
                "model '{model_name}' has no '{}' metadata saying which sensors feed its inputs",
                meta::INPUT_NAMES
            )));
        };
        let layout = InputLayout::parse(&lines)?;
        layout.check(graph)?;
        Ok(layout)
    }

    fn check(&self, graph: &Graph) -> Result<(), GraphError> {
        if self.inputs.len() != graph.inputs.len() {
            return Err(GraphError::Invalid(format!(
                "input layout names {} inputs, the graph has {}",
                self.inputs.len(),
                graph.inputs.len()
            )));
        }
        for (i, (chans, id)) in self.inputs.iter().zip(&graph.inputs).enumerate() {
            let t = graph.tensor(*id);
            if t.shape.last() != Some(&chans.len()) {
                return Err(GraphError::Invalid(format!(
                    "input {i} ('{}') has shape {:?}, the layout gives it {} channels",
                    t.name,
                    t.shape,
                    chans.len()
                )));
            }
        }
        Ok(())
    }

    /// Copies the window's channels into every graph input of `interp`.
    pub fn feed<T: Element>(
        &self,
        interp: &mut Interpreter,
        window: &[T],
        channels: usize,
    ) -> Result<(), GraphError> {
        if channels == 0 || !window.len().is_multiple_of(channels) {
            return Err(GraphError::Runtime(format!(
                "window of {} values is not a whole number of {channels}-channel steps",
                window.len()
            )));
        }
        for (i, picks) in self.inputs.iter().enumerate() {
            if let Some(c) = picks.iter().find(|c| **c >= channels) {
                return Err(GraphError::Runtime(format!(
                    "input {i} needs channel {c}, the window has {channels}"
                )));
            }
            let values: Vec<T> = window
                .chunks_exact(channels)
                .flat_map(|step| picks.iter().map(|c| step[*c]))
                .collect();
            interp.set_input(i, &values)?;
        }
        Ok(())
    }
}

impl InputLayout {
    /// Feeds a real-valued window to any graph: f32 inputs take the values as they are,
    /// int8/uint8 inputs get them quantised with the input tensor's scale and zero point
    /// (`round(x / scale) + zero_point`, half away from zero, saturated, as TFLite's QUANTIZE).
    /// For the seed's uint8 models use [`seed_scale_u8`] and [`InputLayout::feed`] instead.
    pub fn feed_f32(
        &self,
        interp: &mut Interpreter,
        window: &[f32],
        channels: usize,
    ) -> Result<(), GraphError> {
        if channels == 0 || !window.len().is_multiple_of(channels) {
            return Err(GraphError::Runtime(format!(
                "window of {} values is not a whole number of {channels}-channel steps",
                window.len()
            )));
        }
        for (i, picks) in self.inputs.iter().enumerate() {
            if let Some(c) = picks.iter().find(|c| **c >= channels) {
                return Err(GraphError::Runtime(format!(
                    "input {i} needs channel {c}, the window has {channels}"
                )));
            }
            let values: Vec<f32> = window
                .chunks_exact(channels)
                .flat_map(|step| picks.iter().map(|c| step[*c]))
                .collect();
            interp.set_input_real(i, &values)?;
        }
        Ok(())
    }
}

/// Runs `graph` on real-valued windows (see [`InputLayout::feed_f32`]).
pub fn evaluate_f32<'w>(
    graph: &Graph,
    layout: &InputLayout,
    windows: impl IntoIterator<Item = &'w [f32]>,
    channels: usize,
) -> Result<EvalOutputs, GraphError> {
    evaluate_f32_with_kernels(
        graph,
        layout,
        windows,
        channels,
        Interpreter::DEFAULT_KERNELS,
    )
}

/// [`evaluate_f32`] reproducing the given TFLite kernel configuration.
pub fn evaluate_f32_with_kernels<'w>(
    graph: &Graph,
    layout: &InputLayout,
    windows: impl IntoIterator<Item = &'w [f32]>,
    channels: usize,
    kernels: TfliteKernels,
) -> Result<EvalOutputs, GraphError> {
    let mut interp = Interpreter::with_kernels(graph, kernels)?;
    let mut out = EvalOutputs::default();
    for (n, w) in windows.into_iter().enumerate() {
        layout
            .feed_f32(&mut interp, w, channels)
            .map_err(|e| GraphError::Runtime(format!("window {n}: {e}")))?;
        interp
            .invoke()
            .map_err(|e| GraphError::Runtime(format!("window {n}: {e}")))?;
        out.raw.push(interp.output_bytes(0)?.to_vec());
        out.scores.push(interp.output_f32(0)?);
    }
    Ok(out)
}

/// The seed's input scaling: per channel over the whole split, `x01 = (x − min)/(max − min)`,
/// then `trunc(255 · x01)` (numpy's `astype(uint8)`), in f64. `data` is `[windows, time,
/// channels]` row-major. A constant channel maps to 0.
pub fn seed_scale_u8(data: &[f64], channels: usize) -> Vec<u8> {
    let mut lo = vec![f64::INFINITY; channels];
    let mut hi = vec![f64::NEG_INFINITY; channels];
    for step in data.chunks_exact(channels) {
        for (c, v) in step.iter().enumerate() {
            lo[c] = lo[c].min(*v);
            hi[c] = hi[c].max(*v);
        }
    }
    data.chunks_exact(channels)
        .flat_map(|step| {
            step.iter().enumerate().map(|(c, v)| {
                let range = hi[c] - lo[c];
                if range > 0.0 {
                    (255.0 * ((v - lo[c]) / range)) as u8
                } else {
                    0
                }
            })
        })
        .collect()
}

/// Index of the largest value, first one on ties (as numpy's argmax).
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Raw outputs (output 0, in the model's own type, as bytes) and dequantised scores of every
/// window.
#[derive(Clone, Debug, Default)]
pub struct EvalOutputs {
    pub raw: Vec<Vec<u8>>,
    pub scores: Vec<Vec<f32>>,
}

impl EvalOutputs {
    pub fn predictions(&self) -> Vec<usize> {
        self.scores.iter().map(|s| argmax(s)).collect()
    }
}

/// Runs `graph` on every window (each `[time, channels]` values of the input type).
pub fn evaluate<'w, T: Element + 'w>(
    graph: &Graph,
    layout: &InputLayout,
    windows: impl IntoIterator<Item = &'w [T]>,
    channels: usize,
) -> Result<EvalOutputs, GraphError> {
    evaluate_with_kernels(
        graph,
        layout,
        windows,
        channels,
        Interpreter::DEFAULT_KERNELS,
    )
}

/// [`evaluate`] reproducing the given TFLite kernel configuration (e.g.
/// [`TfliteKernels::Default`] for the seed's published accuracies).
pub fn evaluate_with_kernels<'w, T: Element + 'w>(
    graph: &Graph,
    layout: &InputLayout,
    windows: impl IntoIterator<Item = &'w [T]>,
    channels: usize,
    kernels: TfliteKernels,
) -> Result<EvalOutputs, GraphError> {
    let mut interp = Interpreter::with_kernels(graph, kernels)?;
    let mut out = EvalOutputs::default();
    for (n, w) in windows.into_iter().enumerate() {
        layout
            .feed(&mut interp, w, channels)
            .map_err(|e| GraphError::Runtime(format!("window {n}: {e}")))?;
        interp
            .invoke()
            .map_err(|e| GraphError::Runtime(format!("window {n}: {e}")))?;
        out.raw.push(interp.output_bytes(0)?.to_vec());
        out.scores.push(interp.output_f32(0)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_scaling_truncates_like_numpy_astype() {
        // Two channels over three steps; channel 1 is constant.
        let data = [0.0, 5.0, 0.5, 5.0, 1.0, 5.0];
        // 255 * 0.5 = 127.5 → 127 (truncation, not rounding).
        assert_eq!(seed_scale_u8(&data, 2), vec![0, 0, 127, 0, 255, 0]);
    }

    #[test]
    fn layout_parsing_names_unknown_groups() {
        let l = InputLayout::parse(&["s1+s2+s3".into()]).unwrap();
        assert_eq!(l.inputs, vec![(0..9).collect::<Vec<_>>()]);
        let e = InputLayout::parse(&["s4".into()]).unwrap_err();
        assert!(e.to_string().contains("'s4'"));
    }

    #[test]
    fn float_windows_are_quantised_for_int8_inputs() {
        use crate::{DType, OpKind, QuantParams};
        let mut g = Graph::new();
        let x = g.add_input(
            "x",
            &[1, 2, 2],
            DType::I8,
            Some(QuantParams::per_tensor(0.5, 1)),
        );
        let y = g
            .add_op_inferred(
                OpKind::Reshape {
                    new_shape: vec![1, 4],
                },
                &[x],
                "y",
            )
            .unwrap();
        g.tensor_mut(y).quant = Some(QuantParams::per_tensor(0.5, 1));
        g.mark_output(y);
        let layout = InputLayout {
            inputs: vec![vec![1, 0]],
        };
        // Window [time 2, channels 2]; the input takes channel 1 then 0.
        let out = evaluate_f32(&g, &layout, [&[0.25f32, 1.0, -100.0, 0.75][..]], 2).unwrap();
        // round(1.0/0.5)+1 = 3, round(0.25/0.5)+1 = 2 (half away from zero), 0.75 → 3, −100 → −128.
        assert_eq!(out.raw[0], vec![3u8, 2, 3, (-128i8) as u8]);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1, 3, 3, 0]), 1);
    }
}
