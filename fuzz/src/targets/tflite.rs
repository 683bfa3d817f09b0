//! `.tflite` bytes → reader → shape validation → arena planner → host interpreter.
//! Every stage may refuse the model with an error; none may panic.

use kinglet_graph::{ArenaPlan, Graph, Interpreter};

/// Largest arena the interpreter is asked to allocate: a valid model may legitimately
/// plan gigabytes, which would only measure the allocator, not the reader.
const MAX_ARENA: usize = 64 << 20;

pub fn run(data: &[u8]) {
    let Ok(graph) = Graph::from_tflite_bytes(data) else {
        return;
    };
    let _ = graph.total_macs();
    let _ = graph.weight_bytes();
    if graph.validate().is_err() {
        return;
    }
    let Ok(plan) = ArenaPlan::new(&graph) else {
        return;
    };
    if plan.arena_bytes() > MAX_ARENA || graph.total_macs() > 50_000_000 {
        return;
    }
    let Ok(mut interp) = Interpreter::new(&graph) else {
        return;
    };
    // Inputs stay as the arena holds them (zeros): the point is the control flow, not
    // the values.
    if interp.invoke().is_ok() {
        for i in 0..graph.outputs.len() {
            let _ = interp.output_bytes(i);
            let _ = interp.output_f32(i);
        }
    }
}
