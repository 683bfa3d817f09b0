//! The `.kgl` model file and the training checkpoint, both in one container format
//! (documented in docs/model-format.md):
//!
//! ```text
//! magic  "KINGLET\0"              8 bytes
//! kind   u32 LE                   1 = model, 2 = checkpoint
//! version u32 LE                  1
//! header length u64 LE, then the header: UTF-8 JSON
//! payload length u64 LE, then the payload: raw bytes the header points into
//! SHA-256 of every byte before it  32 bytes
//! ```
//!
//! Tensors are little-endian f32, row-major, at byte offsets given in the header. Files are
//! written to a temporary file in the same directory and renamed into place, so a killed run
//! leaves either the old file or the new one, never half of one.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::arch::Architecture;
use crate::inputs::ChannelNormalisation;
use crate::network::NamedTensor;

const MAGIC: &[u8; 8] = b"KINGLET\0";
const VERSION: u32 = 1;

/// What a container holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model = 1,
    Checkpoint = 2,
}

/// Where a tensor sits in the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<usize>,
    /// Byte offset into the payload.
    pub offset: usize,
}

/// One input of the network as firmware and evaluators must feed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputGroup {
    pub name: String,
    /// Dataset channels, in order.
    pub channels: Vec<String>,
    /// `[time, channels]`, channels last (the TFLite input layout).
    pub shape: Vec<usize>,
}

/// How the weights were obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    pub seed: u64,
    pub data: String,
    pub epochs_trained: usize,
    /// 1-based epoch whose weights were kept.
    pub best_epoch: usize,
    /// Validation accuracy of the kept epoch, when a validation split was given.
    pub validation_accuracy: Option<f64>,
}

/// A trained network with everything needed to run it on raw windows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    pub architecture: Architecture,
    /// Names of the outputs.
    pub class_names: Vec<String>,
    /// Class names of the dataset it was trained on (one-vs-rest and change tasks map them).
    pub dataset_classes: Vec<String>,
    pub normalisation: ChannelNormalisation,
    pub tensors: Vec<NamedTensor>,
    pub provenance: Provenance,
}

#[derive(Serialize, Deserialize)]
struct ModelHeader {
    format: String,
    architecture: Architecture,
    class_names: Vec<String>,
    dataset_classes: Vec<String>,
    inputs: Vec<InputGroup>,
    normalisation: ChannelNormalisation,
    tensors: Vec<TensorEntry>,
    provenance: Provenance,
}

impl TrainedModel {
    /// The inputs in the order the network takes them.
    pub fn input_groups(&self) -> Vec<InputGroup> {
        let arch = &self.architecture;
        arch.branches
            .iter()
            .enumerate()
            .map(|(i, b)| InputGroup {
                name: b.name.clone(),
                channels: b.channels.clone(),
                shape: match arch.task {
                    crate::arch::Task::Image { height, width } => {
                        vec![height, width, arch.branch_channels(i)]
                    }
                    _ => vec![arch.branch_length(), arch.branch_channels(i)],
                },
            })
            .collect()
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.architecture
            .parameter_count(self.dataset_classes.len())
    }

    /// Tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Writes the model atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let (entries, payload) = pack_tensors(&self.tensors);
        let header = ModelHeader {
            format: "kinglet-model".into(),
            architecture: self.architecture.clone(),
            class_names: self.class_names.clone(),
            dataset_classes: self.dataset_classes.clone(),
            inputs: self.input_groups(),
            normalisation: self.normalisation.clone(),
            tensors: entries,
            provenance: self.provenance.clone(),
        };
        let json = serde_json::to_vec_pretty(&header).map_err(|e| Error::Model(e.to_string()))?;
        write_container(path, Kind::Model, &json, &payload)
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<TrainedModel, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(&bytes, path)
    }

    /// [`TrainedModel::load`] on a file's contents already in memory (a download, an
    /// upload, a fuzzer's input); errors name the file `<memory>`.
    pub fn from_bytes(bytes: &[u8]) -> Result<TrainedModel, Error> {
        Self::parse(bytes, Path::new("<memory>"))
    }

    /// `path` only names the source in errors.
    fn parse(bytes: &[u8], path: &Path) -> Result<TrainedModel, Error> {
        let (json, payload) = parse_container(bytes, path, Kind::Model)?;
        let header: ModelHeader = serde_json::from_slice(&json).map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!("header: {e}"),
        })?;
        let bad = |reason: String| Error::ModelFile {
            path: path.to_path_buf(),
            reason,
        };
        header
            .architecture
            .validate()
            .map_err(|e| bad(format!("architecture: {e}")))?;
        let tensors = unpack_tensors(&header.tensors, &payload).map_err(bad)?;
        let model = TrainedModel {
            architecture: header.architecture,
            class_names: header.class_names,
            dataset_classes: header.dataset_classes,
            normalisation: header.normalisation,
            tensors,
            provenance: header.provenance,
        };
        if model.class_names.len() != model.architecture.outputs(model.dataset_classes.len()) {
            return Err(bad(
                "class_names does not match the number of outputs".into()
            ));
        }
        let n = &model.normalisation;
        if n.mean.len() != n.channels.len() || n.std.len() != n.channels.len() {
            return Err(bad(
                "normalisation: mean/std length differs from channels".into()
            ));
        }
        Ok(model)
    }
}

/// Lays tensors end to end as little-endian f32.
pub(crate) fn pack_tensors(tensors: &[NamedTensor]) -> (Vec<TensorEntry>, Vec<u8>) {
    let mut payload = Vec::new();
    let mut entries = Vec::new();
    for t in tensors {
        entries.push(TensorEntry {
            name: t.name.clone(),
            shape: t.shape.clone(),
            offset: payload.len(),
        });
        for v in &t.values {
            payload.extend_from_slice(&v.to_le_bytes());
        }
    }
    (entries, payload)
}

pub(crate) fn unpack_tensors(
    entries: &[TensorEntry],
    payload: &[u8],
) -> Result<Vec<NamedTensor>, String> {
    entries
        .iter()
        .map(|e| {
            let n: usize = e.shape.iter().product();
            let end = n.checked_mul(4).and_then(|b| b.checked_add(e.offset));
            let bytes = end
                .and_then(|end| payload.get(e.offset..end))
                .ok_or_else(|| format!("tensor `{}` lies outside the payload", e.name))?;
            let values = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok(NamedTensor {
                name: e.name.clone(),
                shape: e.shape.clone(),
                values,
            })
        })
        .collect()
}

/// What a model file holds, told by its first bytes (a `.kgl`'s magic, a `.tflite`'s `TFL3`
/// flatbuffer identifier), so that a model works whatever the file is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Kgl,
    Tflite,
}

impl ModelKind {
    /// Reads the first 8 bytes of `path`; a file too short or of neither kind is an error
    /// naming it.
    pub fn of(path: &Path) -> Result<ModelKind, Error> {
        use std::io::Read;
        let io = |e: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut head = Vec::with_capacity(8);
        std::fs::File::open(path)
            .map_err(io)?
            .take(8)
            .read_to_end(&mut head)
            .map_err(io)?;
        ModelKind::from_head(&head).ok_or_else(|| Error::ModelFile {
            path: path.to_path_buf(),
            reason: "neither a kinglet model (.kgl) nor a TFLite flatbuffer (.tflite): unknown model type".into(),
        })
    }

    /// The kind the first bytes of a file announce.
    pub fn from_head(head: &[u8]) -> Option<ModelKind> {
        if head.starts_with(MAGIC) {
            Some(ModelKind::Kgl)
        } else if head.get(4..8) == Some(b"TFL3") {
            Some(ModelKind::Tflite)
        } else {
            None
        }
    }
}

/// Writes `path` atomically: temporary file in the same directory, fsync, rename. The file
/// gets the permissions of any newly created file (0666 less the umask), not the 0600 of a
/// private temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    kinglet_graph::files::write_atomic(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_container(
    path: &Path,
    kind: Kind,
    header: &[u8],
    payload: &[u8],
) -> Result<(), Error> {
    let mut bytes = Vec::with_capacity(header.len() + payload.len() + 64);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(kind as u32).to_le_bytes());
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    write_atomic(path, &bytes)
}

pub(crate) fn read_container(path: &Path, kind: Kind) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_container(&bytes, path, kind)
}

/// [`read_container`] on bytes in memory; `path` only names the source in errors.
pub(crate) fn parse_container(
    bytes: &[u8],
    path: &Path,
    kind: Kind,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let bad = |reason: String| Error::ModelFile {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(bad("not a kinglet file (bad magic)".into()));
    }
    if bytes.len() < 8 + 4 + 4 + 8 + 8 + 32 {
        return Err(bad(format!("truncated: {} bytes", bytes.len())));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    let u32_at = |o: usize| u32::from_le_bytes([body[o], body[o + 1], body[o + 2], body[o + 3]]);
    let found_kind = u32_at(8);
    let version = u32_at(12);
    if version != VERSION {
        return Err(bad(format!(
            "format version {version}, this kinglet reads {VERSION}"
        )));
    }
    if found_kind != kind as u32 {
        let name = |k: u32| match k {
            1 => "a model",
            2 => "a checkpoint",
            _ => "an unknown kind of file",
        };
        return Err(bad(format!(
            "is {}, expected {}",
            name(found_kind),
            name(kind as u32)
        )));
    }
    let read_len = |o: usize| -> Option<usize> {
        let b: [u8; 8] = body.get(o..o + 8)?.try_into().ok()?;
        usize::try_from(u64::from_le_bytes(b)).ok()
    };
    let header_len = read_len(16).ok_or_else(|| bad("truncated header length".into()))?;
    let header_end = 24usize
        .checked_add(header_len)
        .filter(|&e| e.checked_add(8).is_some_and(|end| end <= body.len()));
    let header_end = header_end.ok_or_else(|| {
        bad(format!(
            "truncated: header of {header_len} bytes does not fit"
        ))
    })?;
    let payload_len = read_len(header_end).ok_or_else(|| bad("truncated payload length".into()))?;
    let payload_start = header_end + 8;
    if payload_start.checked_add(payload_len) != Some(body.len()) {
        return Err(bad(format!(
            "truncated or padded: payload of {payload_len} bytes, {} present",
            body.len() - payload_start
        )));
    }
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad("checksum mismatch: the file is corrupt".into()));
    }
    Ok((
        body[24..header_end].to_vec(),
        body[payload_start..].to_vec(),
    ))
}

/// A model of `arch` holding `tensors`, with classes `c0`, `c1`, … and identity
/// normalisation: what the unit tests of model transformations start from.
#[cfg(test)]
pub(crate) fn test_model(
    arch: Architecture,
    classes: usize,
    tensors: Vec<NamedTensor>,
) -> TrainedModel {
    let names: Vec<String> = (0..classes).map(|i| format!("c{i}")).collect();
    let channels: Vec<String> = arch
        .branches
        .iter()
        .flat_map(|b| b.channels.clone())
        .collect();
    TrainedModel {
        class_names: crate::inputs::output_class_names(&arch, &names).unwrap(),
        normalisation: ChannelNormalisation::identity(&channels),
        architecture: arch,
        dataset_classes: names,
        tensors,
        provenance: Provenance::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_kind_comes_from_the_first_bytes() {
        assert_eq!(ModelKind::from_head(b"KINGLET\0"), Some(ModelKind::Kgl));
        assert_eq!(
            ModelKind::from_head(b"\x1c\0\0\0TFL3"),
            Some(ModelKind::Tflite)
        );
        assert_eq!(ModelKind::from_head(b"\x1c\0\0\0TFL"), None);
        assert_eq!(ModelKind::from_head(b""), None);
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("m.kgl");
        std::fs::write(&short, b"KING").unwrap();
        let err = ModelKind::of(&short).unwrap_err().to_string();
        assert!(
            err.contains("m.kgl") && err.contains("unknown model type"),
            "{err}"
        );
    }

    fn sample() -> TrainedModel {
        let arch = Architecture::preset("little2").unwrap();
        let device = burn::tensor::Device::flex();
        let net = crate::network::Network::init(&arch, 6, 3, &device).unwrap();
        let classes: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
        TrainedModel {
            class_names: crate::inputs::output_class_names(&arch, &classes).unwrap(),
            normalisation: ChannelNormalisation::identity(&[
                "total_acc_x".into(),
                "total_acc_y".into(),
                "total_acc_z".into(),
            ]),
            architecture: arch,
            dataset_classes: classes,
            tensors: net.named_tensors(),
            provenance: Provenance {
                seed: 3,
                ..Default::default()
            },
        }
    }

    #[test]
    fn model_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.kgl");
        let m = sample();
        m.save(&path).unwrap();
        assert_eq!(TrainedModel::load(&path).unwrap(), m);
        assert_eq!(m.parameter_count(), 184);
    }

    #[test]
    fn corrupt_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.kgl");
        sample().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"hello".to_vec(), "bad magic"),
            (good[..good.len() / 2].to_vec(), "truncated"),
            (
                {
                    let mut b = good.clone();
                    let i = b.len() - 40;
                    b[i] ^= 1;
                    b
                },
                "checksum",
            ),
            (
                {
                    let mut b = good.clone();
                    b[8] = 2;
                    b
                },
                "checkpoint",
            ),
        ];
        for (bytes, expected) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let err = TrainedModel::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected) && err.contains("m.kgl"), "{err}");
        }
        let err = TrainedModel::load(&dir.path().join("absent.kgl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.kgl"), "{err}");
    }
}
