//! Search spaces: a TOML file lists, for every decision the search may take, the values it
//! may choose from; a candidate is one choice per decision (its *genome*, a vector of indices),
//! and turns into an ordinary [`Architecture`] — the same description `kinglet train --arch`
//! reads — so any result can be retrained, quantised and deployed with the existing commands.
//!
//! Why a genome of indices rather than architectures directly: NSGA-II's crossover and
//! mutation then work on plain integer vectors, whatever the decision means, and the study
//! database stores a candidate as a short list of numbers.
//!
//! The architecture format has no dilation or stride; downsampling is the max-pool after each
//! block (`pool`), so the space offers pool sizes instead.

use std::collections::BTreeSet;
use std::path::Path;

use kinglet_train::Architecture;
use kinglet_train::arch::{Block, Branch, Head, Padding, Schedule, Task};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{SearchError, line_column};

/// Weight precisions a candidate may be quantised to (activations are int8 in all of them).
/// `mixed` lets every block and the head choose their own weight width from
/// `[blocks] weight_bits` (and `[head] weight_bits`).
pub const PRECISIONS: [&str; 4] = ["int8", "w4a8", "w2a8", "mixed"];

/// Weight widths a block or the head may choose under `precision = ["mixed"]`: what `kinglet
/// quantize --scheme mixed --bits` accepts.
pub const WEIGHT_BITS: [u32; 3] = [8, 4, 2];

/// One set of input branches: which sensor channels the network reads, grouped how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputChoice {
    pub name: String,
    #[serde(rename = "branch")]
    pub branches: Vec<Branch>,
}

/// Choices for every block (each block chooses independently).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocksFile {
    count: Spanned<Vec<usize>>,
    filters: Spanned<Vec<usize>>,
    kernel: Spanned<Vec<usize>>,
    pool: Spanned<Vec<usize>>,
    #[serde(default = "default_false")]
    separable: Spanned<Vec<bool>>,
    #[serde(default = "default_false")]
    batch_norm: Spanned<Vec<bool>>,
    #[serde(default = "default_same")]
    padding: Spanned<Vec<Padding>>,
    /// Weight widths each block chooses from under `precision = ["mixed"]`.
    weight_bits: Option<Spanned<Vec<u32>>>,
}

fn default_false() -> Spanned<Vec<bool>> {
    Spanned::new(0..0, vec![false])
}
fn default_same() -> Spanned<Vec<Padding>> {
    Spanned::new(0..0, vec![Padding::Same])
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadFile {
    #[serde(default = "default_gap")]
    global_average_pool: Spanned<Vec<bool>>,
    #[serde(default = "default_hidden")]
    hidden: Spanned<Vec<Vec<usize>>>,
    /// Weight widths the head's dense layers choose from (default: the blocks' list).
    weight_bits: Option<Spanned<Vec<u32>>>,
}

fn default_gap() -> Spanned<Vec<bool>> {
    Spanned::new(0..0, vec![true])
}
fn default_hidden() -> Spanned<Vec<Vec<usize>>> {
    Spanned::new(0..0, vec![Vec::new()])
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceFile {
    name: Spanned<String>,
    #[serde(default = "default_window")]
    window: Spanned<usize>,
    #[serde(default = "default_precision")]
    precision: Spanned<Vec<String>>,
    #[serde(default = "default_task")]
    task: Task,
    inputs: Spanned<Vec<Spanned<InputChoice>>>,
    blocks: BlocksFile,
    head: Option<HeadFile>,
    training: Spanned<Schedule>,
}

fn default_window() -> Spanned<usize> {
    Spanned::new(0..0, 128)
}
fn default_precision() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["int8".into()])
}
fn default_task() -> Task {
    Task::Activity
}

/// A parsed, checked search space.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    /// Prefix of every candidate's architecture name.
    pub name: String,
    pub window: usize,
    pub task: Task,
    pub inputs: Vec<InputChoice>,
    pub block_counts: Vec<usize>,
    pub filters: Vec<usize>,
    pub kernels: Vec<usize>,
    pub pools: Vec<usize>,
    pub separable: Vec<bool>,
    pub batch_norm: Vec<bool>,
    pub padding: Vec<Padding>,
    pub global_average_pool: Vec<bool>,
    pub hidden: Vec<Vec<usize>>,
    pub precision: Vec<String>,
    /// Weight widths each block chooses from when `precision` offers `mixed` (else empty).
    pub block_weight_bits: Vec<u32>,
    /// Weight widths the head (hidden and output dense layers) chooses from under `mixed`.
    pub head_weight_bits: Vec<u32>,
    /// The full training schedule; the search trains for fewer epochs on its lower rungs.
    pub training: Schedule,
}

/// Genes before the per-block ones: inputs, block count, head pooling, hidden layers, precision.
const GLOBAL_GENES: usize = 5;
/// Genes of each block slot: filters, kernel, pool, separable, batch norm, padding.
const BLOCK_GENES: usize = 6;

// A space offering `mixed` appends one weight-width gene per block slot and one for the head
// after the block slots: spaces without it keep the genome layout (and so the stored genomes
// of existing studies) they always had.

/// A candidate: one index into each choice list of the space. Slots past the chosen block
/// count are carried along (crossover may bring them back) but do not affect the network.
pub type Genome = Vec<usize>;

/// What a candidate is, besides its architecture: the weight precision it is quantised to.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub genome: Genome,
    pub architecture: Architecture,
    /// `int8`, `w4a8`, `w2a8`, or `mixed:B,B,…` — one weight width per weighted layer of the
    /// lowered graph in op order, the list `kinglet quantize --scheme mixed --bits` takes.
    pub precision: String,
}

/// The weight widths of a `mixed:B,B,…` precision (None for the uniform ones).
pub fn mixed_bits(precision: &str) -> Option<Result<Vec<u32>, String>> {
    let list = precision.strip_prefix("mixed:")?;
    Some(
        list.split(',')
            .map(|b| match b.trim().parse::<u32>() {
                Ok(v) if WEIGHT_BITS.contains(&v) => Ok(v),
                _ => Err(format!("precision `{precision}`: `{b}` is not 8, 4 or 2")),
            })
            .collect(),
    )
}

/// One weight width per weighted layer of `arch` as `kinglet_train::lower` emits them (op
/// order): for each branch, each block's depthwise convolution (separable blocks) and its
/// convolution take the block's width; then the hidden and output dense layers the head's.
/// Why from the architecture: the candidate's name and its reproduce command must name the
/// widths before anything is trained; the evaluator checks the count against the graph.
pub fn layer_bits(arch: &Architecture, block_bits: &[u32], head_bits: u32) -> Vec<u32> {
    let mut bits = Vec::new();
    for _ in &arch.branches {
        for (block, &b) in arch.blocks.iter().zip(block_bits) {
            let layers = if block.separable { 2 } else { 1 };
            bits.extend(std::iter::repeat_n(b, layers));
        }
    }
    bits.extend(std::iter::repeat_n(head_bits, arch.head.hidden.len() + 1));
    bits
}

/// An error at a byte span of the file `origin` holding `text`, as `file:line:column`.
fn error_at<'a>(
    text: &'a str,
    origin: &'a str,
) -> impl Fn(std::ops::Range<usize>, String) -> SearchError + 'a {
    move |span, message| {
        let (line, column) = line_column(text, span.start);
        SearchError::Space {
            path: origin.to_string(),
            line,
            column,
            message,
        }
    }
}

impl SearchSpace {
    /// Reads and checks a space file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<SearchSpace, SearchError> {
        let text = std::fs::read_to_string(path).map_err(|e| SearchError::io(path, e))?;
        SearchSpace::parse(&text, &path.display().to_string())
    }

    /// [`SearchSpace::schedule_from`] a file.
    pub fn load_schedule(path: &Path) -> Result<Schedule, SearchError> {
        let text = std::fs::read_to_string(path).map_err(|e| SearchError::io(path, e))?;
        SearchSpace::schedule_from(&text, &path.display().to_string())
    }

    /// The `[training]` table of a space or architecture file: the schedule a front is
    /// refitted on (`search --refit-schedule`), e.g. the full recipe of a space whose search
    /// ran on a shortened one. `origin` names the file in errors.
    pub fn schedule_from(text: &str, origin: &str) -> Result<Schedule, SearchError> {
        #[derive(Deserialize)]
        struct WithTraining {
            training: Option<Spanned<toml::Value>>,
        }
        let at = error_at(text, origin);
        let file: WithTraining = toml::from_str(text)
            .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim().to_string()))?;
        let table = file
            .training
            .ok_or_else(|| at(0..0, "no [training] table".to_string()))?;
        let span = table.span();
        let schedule: Schedule = table
            .into_inner()
            .try_into()
            .map_err(|e: toml::de::Error| {
                at(span.clone(), format!("[training]: {}", e.message().trim()))
            })?;
        if schedule.epochs == 0 {
            return Err(at(span, "[training]: epochs must be positive".to_string()));
        }
        Ok(schedule)
    }

    /// Parses a space; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<SearchSpace, SearchError> {
        let at = error_at(text, origin);
        let file: SpaceFile = toml::from_str(text)
            .map_err(|e| at(e.span().unwrap_or(0..0), e.message().trim().to_string()))?;
        fn non_empty<T>(
            list: &Spanned<Vec<T>>,
            key: &str,
            at: &dyn Fn(std::ops::Range<usize>, String) -> SearchError,
        ) -> Result<(), SearchError> {
            if list.get_ref().is_empty() {
                return Err(at(
                    list.span(),
                    format!("{key}: the list of choices is empty"),
                ));
            }
            Ok(())
        }
        fn positive(
            list: &Spanned<Vec<usize>>,
            key: &str,
            at: &dyn Fn(std::ops::Range<usize>, String) -> SearchError,
        ) -> Result<(), SearchError> {
            non_empty(list, key, at)?;
            if list.get_ref().contains(&0) {
                return Err(at(
                    list.span(),
                    format!("{key}: every choice must be positive"),
                ));
            }
            Ok(())
        }
        let b = &file.blocks;
        positive(&b.count, "blocks.count", &at)?;
        positive(&b.filters, "blocks.filters", &at)?;
        positive(&b.kernel, "blocks.kernel", &at)?;
        positive(&b.pool, "blocks.pool", &at)?;
        non_empty(&b.separable, "blocks.separable", &at)?;
        non_empty(&b.batch_norm, "blocks.batch_norm", &at)?;
        non_empty(&b.padding, "blocks.padding", &at)?;
        let head = file.head.clone().unwrap_or(HeadFile {
            global_average_pool: default_gap(),
            hidden: default_hidden(),
            weight_bits: None,
        });
        non_empty(&head.global_average_pool, "head.global_average_pool", &at)?;
        non_empty(&head.hidden, "head.hidden", &at)?;
        if head.hidden.get_ref().iter().flatten().any(|&h| h == 0) {
            return Err(at(
                head.hidden.span(),
                "head.hidden: hidden layer widths must be positive".into(),
            ));
        }
        non_empty(&file.precision, "precision", &at)?;
        for p in file.precision.get_ref() {
            if !PRECISIONS.contains(&p.as_str()) {
                return Err(at(
                    file.precision.span(),
                    format!(
                        "precision: unknown `{p}` (expected {})",
                        PRECISIONS.join(", ")
                    ),
                ));
            }
        }
        let mixed = file.precision.get_ref().iter().any(|p| p == "mixed");
        let bits_list = |list: &Option<Spanned<Vec<u32>>>,
                         key: &str|
         -> Result<Vec<u32>, SearchError> {
            let Some(list) = list else {
                return Ok(Vec::new());
            };
            if !mixed {
                return Err(at(
                    list.span(),
                    format!(
                        "{key}: per-block weight widths need `precision = [\"mixed\"]` (or a list offering \"mixed\")"
                    ),
                ));
            }
            non_empty(list, key, &at)?;
            if let Some(b) = list.get_ref().iter().find(|b| !WEIGHT_BITS.contains(b)) {
                return Err(at(
                    list.span(),
                    format!("{key}: {b} bits (weights take 8, 4 or 2)"),
                ));
            }
            Ok(list.get_ref().clone())
        };
        let block_weight_bits = bits_list(&b.weight_bits, "blocks.weight_bits")?;
        let mut head_weight_bits = bits_list(&head.weight_bits, "head.weight_bits")?;
        if mixed && block_weight_bits.is_empty() {
            return Err(at(
                file.precision.span(),
                "precision `mixed`: list the widths each block may choose, e.g. `[blocks] weight_bits = [8, 4, 2]`".into(),
            ));
        }
        if head_weight_bits.is_empty() {
            head_weight_bits = block_weight_bits.clone();
        }
        non_empty(&file.inputs, "inputs", &at)?;
        let mut names = BTreeSet::new();
        for input in file.inputs.get_ref() {
            let i = input.get_ref();
            if i.branches.is_empty() || i.branches.iter().any(|b| b.channels.is_empty()) {
                return Err(at(
                    input.span(),
                    format!(
                        "inputs `{}`: every input choice needs branches with channels",
                        i.name
                    ),
                ));
            }
            if !names.insert(i.name.clone()) {
                return Err(at(input.span(), format!("inputs `{}` twice", i.name)));
            }
        }
        if *file.window.get_ref() == 0 {
            return Err(at(file.window.span(), "window must be positive".into()));
        }
        if matches!(file.task, Task::Image { .. } | Task::Change) {
            return Err(at(
                file.name.span(),
                "task: the search covers 1D window classifiers (activity, one-vs-rest)".into(),
            ));
        }
        let space = SearchSpace {
            name: file.name.get_ref().clone(),
            window: *file.window.get_ref(),
            task: file.task.clone(),
            inputs: file
                .inputs
                .get_ref()
                .iter()
                .map(|i| i.get_ref().clone())
                .collect(),
            block_counts: b.count.get_ref().clone(),
            filters: b.filters.get_ref().clone(),
            kernels: b.kernel.get_ref().clone(),
            pools: b.pool.get_ref().clone(),
            separable: b.separable.get_ref().clone(),
            batch_norm: b.batch_norm.get_ref().clone(),
            padding: b.padding.get_ref().clone(),
            global_average_pool: head.global_average_pool.get_ref().clone(),
            hidden: head.hidden.get_ref().clone(),
            precision: file.precision.get_ref().clone(),
            block_weight_bits,
            head_weight_bits,
            training: file.training.get_ref().clone(),
        };
        // The smallest network of the space must be buildable, else no candidate is.
        let smallest = space.smallest();
        smallest.validate().map_err(|e| {
            at(
                b.pool.span(),
                format!("no candidate of this space is a valid network (the smallest: {e})"),
            )
        })?;
        Ok(space)
    }

    fn max_blocks(&self) -> usize {
        self.block_counts.iter().copied().max().unwrap_or(0)
    }

    /// Number of choices of every gene, in genome order.
    pub fn gene_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![
            self.inputs.len(),
            self.block_counts.len(),
            self.global_average_pool.len(),
            self.hidden.len(),
            self.precision.len(),
        ];
        for _ in 0..self.max_blocks() {
            sizes.extend([
                self.filters.len(),
                self.kernels.len(),
                self.pools.len(),
                self.separable.len(),
                self.batch_norm.len(),
                self.padding.len(),
            ]);
        }
        if !self.block_weight_bits.is_empty() {
            sizes.extend(std::iter::repeat_n(
                self.block_weight_bits.len(),
                self.max_blocks(),
            ));
            sizes.push(self.head_weight_bits.len());
        }
        sizes
    }

    /// Number of distinct genomes (saturating): how large the space is.
    pub fn size(&self) -> u128 {
        self.gene_sizes()
            .iter()
            .fold(1u128, |acc, &n| acc.saturating_mul(n as u128))
    }

    /// The candidate a genome describes, or why it is not a valid network.
    pub fn candidate(&self, genome: &[usize]) -> Result<Candidate, String> {
        let sizes = self.gene_sizes();
        if genome.len() != sizes.len() {
            return Err(format!(
                "genome has {} genes, the space {}",
                genome.len(),
                sizes.len()
            ));
        }
        if let Some(i) = (0..sizes.len()).find(|&i| genome[i] >= sizes[i]) {
            return Err(format!("gene {i} is {} of {} choices", genome[i], sizes[i]));
        }
        let count = self.block_counts[genome[1]];
        let blocks = (0..count)
            .map(|slot| {
                let g = &genome[GLOBAL_GENES + slot * BLOCK_GENES..];
                Block {
                    filters: self.filters[g[0]],
                    kernel: self.kernels[g[1]],
                    pool: self.pools[g[2]],
                    separable: self.separable[g[3]],
                    batch_norm: self.batch_norm[g[4]],
                    padding: self.padding[g[5]],
                }
            })
            .collect();
        let mut architecture = Architecture {
            name: String::new(),
            task: self.task.clone(),
            window: self.window,
            branches: self.inputs[genome[0]].branches.clone(),
            blocks,
            head: Head {
                global_average_pool: self.global_average_pool[genome[2]],
                hidden: self.hidden[genome[3]].clone(),
            },
            training: self.training.clone(),
            widths: Vec::new(),
            width_norm: Default::default(),
        };
        architecture.validate()?;
        let mut precision = self.precision[genome[4]].clone();
        if precision == "mixed" {
            let bits_at = GLOBAL_GENES + self.max_blocks() * BLOCK_GENES;
            let block_bits: Vec<u32> = genome[bits_at..bits_at + count]
                .iter()
                .map(|&g| self.block_weight_bits[g])
                .collect();
            let head_bits = self.head_weight_bits[genome[bits_at + self.max_blocks()]];
            let bits = layer_bits(&architecture, &block_bits, head_bits);
            precision = format!(
                "mixed:{}",
                bits.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        architecture.name = format!(
            "{}-{:016x}",
            self.name,
            fnv1a(format!("{}\n{precision}", architecture.to_toml()).as_bytes())
        );
        Ok(Candidate {
            genome: genome.to_vec(),
            architecture,
            precision,
        })
    }

    /// The network with the fewest weights the space allows: fewest blocks, narrowest and
    /// shortest kernels, the strongest pooling, global pooling and no hidden layer where
    /// offered, the input choice with the fewest channels. Its weight count is a lower bound
    /// for every candidate, which lets a search refuse a weight or flash limit nothing meets
    /// before training anything.
    pub fn smallest(&self) -> Architecture {
        // (Weight widths do not change the parameter count; `min_weight_bits` bounds them.)
        let min = |v: &[usize]| v.iter().copied().min().unwrap_or(1);
        let max = |v: &[usize]| v.iter().copied().max().unwrap_or(1);
        let input = self
            .inputs
            .iter()
            .min_by_key(|i| i.branches.iter().map(|b| b.channels.len()).sum::<usize>())
            .cloned()
            .map(|i| i.branches)
            .unwrap_or_default();
        let blocks = (0..min(&self.block_counts))
            .map(|_| Block {
                filters: min(&self.filters),
                kernel: min(&self.kernels),
                pool: max(&self.pools),
                separable: self.separable.contains(&true),
                batch_norm: !self.batch_norm.contains(&false),
                padding: if self.padding.contains(&Padding::Valid) {
                    Padding::Valid
                } else {
                    Padding::Same
                },
            })
            .collect();
        Architecture {
            name: format!("{}-smallest", self.name),
            task: self.task.clone(),
            window: self.window,
            branches: input,
            blocks,
            head: Head {
                global_average_pool: self.global_average_pool.contains(&true),
                hidden: self
                    .hidden
                    .iter()
                    .min_by_key(|h| h.iter().sum::<usize>())
                    .cloned()
                    .unwrap_or_default(),
            },
            training: self.training.clone(),
            widths: Vec::new(),
            width_norm: Default::default(),
        }
    }

    /// A lower bound on the parameters of every candidate for `classes` classes. Whether a
    /// separable block has fewer weights than a plain one depends on its input width, so each
    /// block takes whichever offered form is smaller (the blocks' inputs are fixed by the
    /// narrowest filters, so the choices are independent and the greedy choice is exact).
    pub fn min_parameters(&self, classes: usize) -> usize {
        let mut arch = self.smallest();
        for i in 0..arch.blocks.len() {
            let mut best = (usize::MAX, false);
            for &separable in &self.separable {
                arch.blocks[i].separable = separable;
                best = best.min((arch.parameter_count(classes), separable));
            }
            arch.blocks[i].separable = best.1;
        }
        arch.parameter_count(classes)
    }

    /// The narrowest weight width any candidate's layers may take (a bound on weight bytes).
    pub fn min_weight_bits(&self) -> u32 {
        self.precision
            .iter()
            .flat_map(|p| match p.as_str() {
                "w4a8" => vec![4],
                "w2a8" => vec![2],
                "mixed" => self
                    .block_weight_bits
                    .iter()
                    .chain(&self.head_weight_bits)
                    .copied()
                    .collect(),
                _ => vec![8],
            })
            .min()
            .unwrap_or(8)
    }

    /// A lower bound on the multiply-accumulates of every candidate: the smallest network with
    /// each block in whichever offered form (plain or separable) needs fewer.
    pub fn min_macs(&self, classes: usize) -> usize {
        let mut arch = self.smallest();
        for i in 0..arch.blocks.len() {
            let mut best = (usize::MAX, false);
            for &separable in &self.separable {
                arch.blocks[i].separable = separable;
                best = best.min((macs(&arch, classes), separable));
            }
            arch.blocks[i].separable = best.1;
        }
        macs(&arch, classes)
    }
}

/// Multiply-accumulates of one inference of `arch` for `classes` classes: convolutions
/// (depthwise and pointwise for separable blocks) and dense layers.
pub fn macs(arch: &Architecture, classes: usize) -> usize {
    let mut total = 0;
    for b in 0..arch.branches.len() {
        let mut len = arch.branch_length();
        let mut cin = arch.branch_channels(b);
        for block in &arch.blocks {
            if block.padding == Padding::Valid {
                len = len + 1 - block.kernel.min(len);
            }
            total += if block.separable {
                len * cin * block.kernel + len * cin * block.filters
            } else {
                len * cin * block.kernel * block.filters
            };
            len /= block.pool;
            cin = block.filters;
        }
    }
    let mut width = arch.merged_features();
    for &h in &arch.head.hidden {
        total += width * h;
        width = h;
    }
    total + width * arch.outputs(classes)
}

/// 64-bit FNV-1a: a stable short name for a candidate (the same in every process and build).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAR: &str = include_str!("../../../spaces/har.toml");

    #[test]
    fn a_refit_schedule_is_the_files_training_table() {
        let full = SearchSpace::schedule_from(HAR, "har.toml").unwrap();
        assert_eq!((full.epochs, full.average_last), (40, 15));
        let quick = include_str!("../../../spaces/har-quick.toml");
        assert_eq!(SearchSpace::schedule_from(quick, "q").unwrap().epochs, 20);
        let arch = include_str!("../../../archs/kinglet-lite.toml");
        assert_eq!(SearchSpace::schedule_from(arch, "a").unwrap().epochs, 40);
        let none = SearchSpace::schedule_from("name = \"x\"\n", "n.toml").unwrap_err();
        assert!(none.to_string().contains("no [training]"), "{none}");
        let zero =
            SearchSpace::schedule_from("[training]\nlearning_rate = 0.1\nepochs = 0\n", "z.toml")
                .unwrap_err();
        assert!(zero.to_string().starts_with("z.toml:1"), "{zero}");
    }

    #[test]
    fn the_default_har_space_parses_and_every_genome_is_a_training_architecture() {
        let space = SearchSpace::parse(HAR, "spaces/har.toml").unwrap();
        assert!(space.size() > 1_000_000, "{}", space.size());
        let sizes = space.gene_sizes();
        // Walk a deterministic set of genomes; each valid one must round-trip through the
        // architecture file format that `kinglet train --arch` reads.
        let mut valid = 0;
        for k in 0..200usize {
            let genome: Vec<usize> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (k * 7 + i * 3 + k / 5) % n)
                .collect();
            if let Ok(c) = space.candidate(&genome) {
                valid += 1;
                let back = Architecture::from_toml(&c.architecture.to_toml(), "candidate").unwrap();
                assert_eq!(back, c.architecture);
                assert!(c.architecture.name.starts_with("har-"));
            }
        }
        assert!(valid > 100, "{valid}");
    }

    #[test]
    fn a_genome_decides_every_field() {
        let space = SearchSpace::parse(HAR, "har.toml").unwrap();
        let mut genome = vec![0; space.gene_sizes().len()];
        genome[1] = space.block_counts.len() - 1;
        let c = space.candidate(&genome).unwrap();
        assert_eq!(c.architecture.blocks.len(), space.max_blocks());
        assert_eq!(c.architecture.blocks[0].filters, space.filters[0]);
        genome[GLOBAL_GENES] = 1;
        let d = space.candidate(&genome).unwrap();
        assert_eq!(d.architecture.blocks[0].filters, space.filters[1]);
        assert_ne!(c.architecture.name, d.architecture.name);
        // Genes of unused block slots do not change the network or its name.
        genome[1] = 0;
        let used = space.block_counts[0];
        let e = space.candidate(&genome).unwrap();
        genome[GLOBAL_GENES + used * BLOCK_GENES] = 1;
        let f = space.candidate(&genome).unwrap();
        assert_eq!(e.architecture, f.architecture);
    }

    #[test]
    fn out_of_range_genes_are_refused() {
        let space = SearchSpace::parse(HAR, "har.toml").unwrap();
        let mut genome = vec![0; space.gene_sizes().len()];
        genome[0] = 99;
        assert!(space.candidate(&genome).unwrap_err().contains("gene 0"));
        assert!(space.candidate(&[0]).unwrap_err().contains("genes"));
    }

    fn error_of(text: &str) -> String {
        SearchSpace::parse(text, "bad.toml")
            .unwrap_err()
            .to_string()
    }

    const MINIMAL: &str = r#"name = "t"
window = 128
[[inputs]]
name = "acc"
[[inputs.branch]]
name = "total_acc"
channels = ["total_acc_x", "total_acc_y", "total_acc_z"]
[blocks]
count = [1, 2]
filters = [4, 8]
kernel = [3]
pool = [2]
[training]
learning_rate = 0.005
epochs = 4
"#;

    #[test]
    fn malformed_spaces_name_file_line_and_column() {
        assert!(SearchSpace::parse(MINIMAL, "ok.toml").is_ok());
        let syntax = MINIMAL.replace("kernel = [3]", "kernel = [3");
        // The parser notices the missing bracket where the next key starts.
        let e = error_of(&syntax);
        assert!(
            e.starts_with("bad.toml:12:1: ") && e.contains("expected"),
            "{e}"
        );
        let empty = MINIMAL.replace("filters = [4, 8]", "filters = []");
        assert_eq!(
            error_of(&empty),
            "bad.toml:10:11: blocks.filters: the list of choices is empty"
        );
        let zero = MINIMAL.replace("kernel = [3]", "kernel = [3, 0]");
        assert!(
            error_of(&zero).starts_with("bad.toml:11:10: blocks.kernel"),
            "{}",
            error_of(&zero)
        );
        let unknown = MINIMAL.replace("pool = [2]", "pool = [2]\nstride = [1]");
        let e = error_of(&unknown);
        assert!(e.starts_with("bad.toml:13:") && e.contains("stride"), "{e}");
        let wrong_type = MINIMAL.replace("count = [1, 2]", "count = [\"one\"]");
        assert!(
            error_of(&wrong_type).starts_with("bad.toml:9:"),
            "{}",
            error_of(&wrong_type)
        );
        let precision = format!("precision = [\"int3\"]\n{MINIMAL}");
        let e = error_of(&precision);
        assert!(e.starts_with("bad.toml:1:13:") && e.contains("int3"), "{e}");
        // Pooling by 256 leaves nothing of a 128-sample window in any candidate.
        let pool = MINIMAL.replace("pool = [2]", "pool = [256]");
        let e = error_of(&pool);
        assert!(
            e.starts_with("bad.toml:12:8:") && e.contains("no candidate"),
            "{e}"
        );
    }

    /// MINIMAL offering per-block widths: blocks choose 8, 4 or 2 bits, the head 8 or 4.
    fn mixed_space() -> SearchSpace {
        let text = format!(
            "precision = [\"mixed\"]\n{}",
            MINIMAL
                .replace(
                    "pool = [2]",
                    "pool = [2]\nseparable = [false, true]\nweight_bits = [8, 4, 2]"
                )
                .replace("[training]", "[head]\nweight_bits = [8, 4]\n[training]")
        );
        SearchSpace::parse(&text, "mixed.toml").unwrap()
    }

    #[test]
    fn a_space_without_weight_bits_keeps_its_genome_layout_and_names() {
        let space = SearchSpace::parse(MINIMAL, "ok.toml").unwrap();
        // Five global genes and six per block slot, as before per-block widths existed: the
        // genomes stored in existing studies still decode to the same networks.
        assert_eq!(space.gene_sizes().len(), GLOBAL_GENES + 2 * BLOCK_GENES);
        let c = space.candidate(&vec![0; space.gene_sizes().len()]).unwrap();
        assert_eq!(c.precision, "int8");
        // The name hashes the network and `int8`, exactly as before.
        assert_eq!(c.architecture.name, "t-a5b8e0879ecc2d0e");
    }

    #[test]
    fn mixed_widths_are_genes_of_each_block_and_the_head() {
        let space = mixed_space();
        let sizes = space.gene_sizes();
        // Two block slots of widths (3 choices each) and the head's (2), after the blocks.
        assert_eq!(sizes.len(), GLOBAL_GENES + 2 * BLOCK_GENES + 3);
        assert_eq!(&sizes[sizes.len() - 3..], &[3, 3, 2]);
        let bits_at = GLOBAL_GENES + 2 * BLOCK_GENES;
        let mut genome = vec![0; sizes.len()];
        genome[1] = 1; // two blocks
        genome[GLOBAL_GENES + 3] = 1; // the first block separable: depthwise + pointwise
        genome[bits_at + 1] = 1; // the second block 4-bit
        genome[bits_at + 2] = 1; // the head 4-bit
        let c = space.candidate(&genome).unwrap();
        assert_eq!(c.precision, "mixed:8,8,4,4");
        assert_eq!(mixed_bits(&c.precision).unwrap().unwrap(), vec![8, 8, 4, 4]);
        // Another width is another candidate (name), an unused slot's width is not.
        let mut other = genome.clone();
        other[bits_at] = 2;
        let d = space.candidate(&other).unwrap();
        assert_eq!(d.precision, "mixed:2,2,4,4");
        assert_ne!(c.architecture.name, d.architecture.name);
        genome[1] = 0;
        let e = space.candidate(&genome).unwrap();
        assert_eq!(e.precision, "mixed:8,8,4");
        genome[bits_at + 1] = 2;
        assert_eq!(
            space.candidate(&genome).unwrap(),
            Candidate {
                genome: genome.clone(),
                ..e
            }
        );
        assert_eq!(space.min_weight_bits(), 2);
    }

    #[test]
    fn mixed_widths_are_sampled_mutated_and_crossed_over() {
        use crate::nsga2;
        use rand::SeedableRng;
        let space = mixed_space();
        let sizes = space.gene_sizes();
        let bits_at = GLOBAL_GENES + 2 * BLOCK_GENES;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Sampling reaches every width of each block slot and of the head.
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let g = nsga2::random_genome(&mut rng, &sizes);
            let c = space.candidate(&g).unwrap();
            let bits = mixed_bits(&c.precision).unwrap().unwrap();
            assert_eq!(bits[0], space.block_weight_bits[g[bits_at]]);
            assert_eq!(
                *bits.last().unwrap(),
                space.head_weight_bits[g[bits_at + 2]]
            );
            seen.insert((0, bits[0]));
            seen.insert((1, *bits.last().unwrap()));
        }
        assert_eq!(seen.len(), 3 + 2, "{seen:?}");
        // Mutation redraws a width gene among its other choices.
        let mut g = vec![0; sizes.len()];
        nsga2::mutate(&mut rng, &mut g, &sizes, 1.0);
        assert!(
            g[bits_at] != 0 && g[bits_at + 1] != 0 && g[bits_at + 2] == 1,
            "{g:?}"
        );
        assert_ne!(
            space.candidate(&g).unwrap().precision,
            space.candidate(&vec![0; sizes.len()]).unwrap().precision
        );
        // Crossover takes each block's width from one parent: an 8-bit and a 2-bit parent
        // give children whose blocks mix 8 and 2 bits, never 4.
        let mut eight = vec![0; sizes.len()];
        eight[1] = 1;
        let mut two = eight.clone();
        two[bits_at] = 2;
        two[bits_at + 1] = 2;
        two[bits_at + 2] = 1;
        let mut mixes = BTreeSet::new();
        for _ in 0..64 {
            let child = nsga2::crossover(&mut rng, &eight, &two);
            let bits = mixed_bits(&space.candidate(&child).unwrap().precision)
                .unwrap()
                .unwrap();
            assert!(bits[..2].iter().all(|b| [8, 2].contains(b)), "{bits:?}");
            mixes.insert(bits[..2].to_vec());
        }
        assert_eq!(mixes.len(), 4, "{mixes:?}");
    }

    #[test]
    fn per_block_widths_are_checked() {
        let no_mixed = MINIMAL.replace("pool = [2]", "pool = [2]\nweight_bits = [8, 4]");
        let e = error_of(&no_mixed);
        assert!(
            e.starts_with("bad.toml:13:15:") && e.contains("mixed"),
            "{e}"
        );
        let no_list = format!("precision = [\"mixed\"]\n{MINIMAL}");
        let e = error_of(&no_list);
        assert!(
            e.starts_with("bad.toml:1:13:") && e.contains("weight_bits"),
            "{e}"
        );
        let three = format!(
            "precision = [\"int8\", \"mixed\"]\n{}",
            MINIMAL.replace("pool = [2]", "pool = [2]\nweight_bits = [8, 3]")
        );
        let e = error_of(&three);
        assert!(
            e.starts_with("bad.toml:14:15:") && e.contains("3 bits"),
            "{e}"
        );
        assert_eq!(
            mixed_bits("mixed:8,5").unwrap().unwrap_err(),
            "precision `mixed:8,5`: `5` is not 8, 4 or 2"
        );
        assert!(mixed_bits("w4a8").is_none());
    }

    #[test]
    fn the_smallest_candidate_bounds_every_candidate_from_below() {
        let space = SearchSpace::parse(HAR, "har.toml").unwrap();
        let bound = space.min_parameters(6);
        let sizes = space.gene_sizes();
        for k in 0..300usize {
            let genome: Vec<usize> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (k * 13 + i * 5 + k * k / 7) % n)
                .collect();
            if let Ok(c) = space.candidate(&genome) {
                assert!(c.architecture.parameter_count(6) >= bound);
                assert!(macs(&c.architecture, 6) >= space.min_macs(6));
            }
        }
    }
}
