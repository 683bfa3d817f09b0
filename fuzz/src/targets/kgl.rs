//! `.kgl` bytes → `TrainedModel::from_bytes` → lowering to a graph → validation.
//!
//! A mutated file almost never keeps its SHA-256 trailer right, so each input is also
//! tried with the trailer recomputed: that is what lets the fuzzer reach the header and
//! payload checks behind the checksum.

use kinglet_train::TrainedModel;
use sha2::{Digest, Sha256};

pub fn run(data: &[u8]) {
    model(data);
    if let Some(body_len) = data.len().checked_sub(32) {
        let body = &data[..body_len];
        let mut fixed = body.to_vec();
        fixed.extend_from_slice(&Sha256::digest(body));
        if fixed != data {
            model(&fixed);
        }
    }
}

fn model(bytes: &[u8]) {
    let Ok(model) = TrainedModel::from_bytes(bytes) else {
        return;
    };
    let _ = model.parameter_count();
    let _ = model.input_groups();
    if let Ok(graph) = kinglet_train::lower(&model) {
        let _ = graph.validate();
    }
}
