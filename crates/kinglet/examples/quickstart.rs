//! kinglet as a library, end to end: train a small network on UCI-HAR windows, score it,
//! quantise it to int8, compile it for the Cortex-M4 and measure it in QEMU.
//! `cargo run --release -p kinglet --example quickstart [UCI-HAR folder]` (default: the
//! committed test fixture; QEMU and the Arm targets come from `scripts/setup.sh`).
use kinglet::compile::firmware::{Lang, compile, default_work_dir, profile};
use kinglet::compile::qemu::FirmwareKernels;
use kinglet::{compress, data, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../kinglet-data/tests/fixtures/uci-har"
        )
        .into()
    });
    let spec = data::DataSpec::parse(&format!("uci-har:{folder}:train"))?;
    let (train_set, test_set) = (
        data::load(&spec, &Default::default())?,
        data::load(&spec.with_split(data::Split::Test), &Default::default())?,
    );
    let arch = train::Architecture::preset("kinglet-lite").ok_or("no preset kinglet-lite")?;
    let options = train::TrainOptions {
        seed: 1,
        epochs: Some(3),
        ..Default::default()
    };
    let model = train::train(&arch, &train_set, None, &options, &mut train::Silent)?.model;
    let scores = train::evaluate(&model, &test_set)?;
    let (samples, _) = train::graph_inputs(&model, &train_set)?;
    let int8 = compress::quantize_int8(&train::lower(&model)?, &samples, &Default::default())?;
    let compiled = compile(&int8.graph, "quickstart")?;
    let input = kinglet::compile::testinput::lcg_input(compiled.dsp.input_len);
    let measured = profile(
        &int8.graph,
        "quickstart",
        &input,
        FirmwareKernels::Dsp,
        Lang::Rust,
        &default_work_dir(),
    )?;
    println!(
        "float accuracy {:.3} on {} windows; int8 on the Cortex-M4: {} instructions, {} B flash, outputs {:?} (host {:?})",
        scores.accuracy(),
        test_set.len(),
        measured.instructions,
        measured.flash_bytes,
        measured.outputs,
        measured.host_outputs
    );
    if measured.outputs != measured.host_outputs {
        return Err("the device's outputs differ from the host interpreter's".into());
    }
    Ok(())
}
