//! `.tflite` bytes that the reader accepts → kinglet-compile (both kernel sets, Rust and
//! C emission, in memory): a model must compile or be refused with an error.

use kinglet_graph::Graph;

pub fn run(data: &[u8]) {
    let Ok(graph) = Graph::from_tflite_bytes(data) else {
        return;
    };
    if graph.validate().is_err() || graph.total_macs() > 50_000_000 {
        return;
    }
    let Ok(compiled) = kinglet_compile::firmware::compile(&graph, "fuzz") else {
        return;
    };
    if kinglet_compile::emit_c::supports(&compiled.dsp).is_ok() {
        let _ = kinglet_compile::emit_c::emit_c(&compiled.dsp, "fuzz");
    }
}
