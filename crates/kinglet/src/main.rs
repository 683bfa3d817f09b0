//! `kinglet`: from sensor recordings to microcontroller firmware.

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "kinglet",
    version,
    about = "Train, compress, compile and run tiny adaptive sensor networks on microcontrollers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Each subcommand's arguments and code live in `cmd/<name>.rs`.
    /// Train a network (preset or TOML architecture) and write a .kgl model.
    Train(cmd::train::TrainArgs),
    /// Score a model on a dataset split: accuracy, macro-F1, per-class scores, confusion.
    Eval(cmd::eval::EvalArgs),
    /// Show a model's ops, shapes, quantisation, MACs, weight bytes and peak arena.
    Inspect(cmd::inspect::InspectArgs),
    /// Write a model as .tflite (re-export a .tflite, or lower and export a trained .kgl).
    Export(cmd::export::ExportArgs),
    /// Run a big-little strategy over a window stream: accuracy, invocations, energy per board.
    Cascade(Box<cmd::cascade::CascadeArgs>),
    /// Write an HTML page with SVG plots and a Markdown summary from `cascade --save` records.
    Report(cmd::report::ReportArgs),
    /// Datasets: fetch official archives, show counts, compare rebuilt with official windows.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Compile a model into allocation-free firmware source (`--lang rust` or `c`).
    Compile(cmd::compile::CompileArgs),
    /// Run a compiled model on an emulated Cortex-M4F: exact instructions, flash, RAM, outputs.
    Profile(cmd::profile::ProfileArgs),
    /// Post-training quantisation of a float model: int8 (calibrated on dataset windows),
    /// dynamic range (int8 weights, float activations) or float16 weights.
    Quantize(cmd::quantize::QuantizeArgs),
    /// The whole flow on a data folder: windows, training, evaluation, int8, firmware profile,
    /// calibrated cascade, report. Each step is printed as the command that reproduces it.
    Pipeline(cmd::pipeline::PipelineArgs),
    /// Compression steps alone and in sequence (`--pipeline int8,qat+dynamic,…`) on a trained
    /// model: size, accuracy, host time and Cortex-M4 instructions of every variant, and a plot.
    Optimize(cmd::optimize::OptimizeArgs),
    /// Magnitude pruning while fine-tuning a trained model: unstructured (kernels to a
    /// sparsity, exact zeros) and/or structured (`--structured`: fewer filters, smaller graph).
    Prune(cmd::prune::PruneArgs),
    /// Convert a trained model's convolutions to depthwise-separable ones (rank-1 initialised
    /// from the trained kernels) and fine-tune.
    Separable(cmd::separable::SeparableArgs),
    /// Every operating mode of a nested-width network (`train --widths`): fixed widths and
    /// adaptive width chains, accuracy against measured Cortex-M4 instructions, Pareto front.
    Modes(cmd::modes::ModesArgs),
    /// Architecture search: NSGA-II with successive halving over a space file; every trial
    /// trained, quantised and profiled in QEMU; studies in SQLite or shared over PostgreSQL.
    Search(Box<cmd::search::SearchArgs>),
    // SUBCOMMANDS (keep this marker: helpers add variants above it)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Output piped into `head` and closed early: not a failure of the command.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => cmd::train::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Cascade(args) => cmd::cascade::run(*args),
        Command::Report(args) => cmd::report::run(args),
        Command::Data(command) => cmd::data::run(command),
        Command::Compile(args) => cmd::compile::run(args),
        Command::Profile(args) => cmd::profile::run(args),
        Command::Quantize(args) => cmd::quantize::run(args),
        Command::Pipeline(args) => cmd::pipeline::run(args),
        Command::Optimize(args) => cmd::optimize::run(args),
        Command::Prune(args) => cmd::prune::run(args),
        Command::Separable(args) => cmd::separable::run(args),
        Command::Modes(args) => cmd::modes::run(args),
        Command::Search(args) => cmd::search::run(*args),
        // DISPATCH (keep this marker: helpers add arms above it)
    }
}
