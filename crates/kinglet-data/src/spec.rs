//! Data specs (`uci-har:DIR:test`, `hapt:ZIP:train`, …): one string names a dataset and a
//! split everywhere on the command line.

use std::path::PathBuf;

use crate::{DataError, Dataset, hapt, idx, uci_har};

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Official UCI-HAR windows: the folder holding `UCI HAR Dataset/`, or that folder.
    UciHar(PathBuf),
    /// HAPT raw recordings (the published zip or a folder unpacked from it), windowed
    /// the UCI-HAR way.
    Hapt(PathBuf),
    /// MNIST IDX files (optionally `.gz`) in a folder.
    Mnist(PathBuf),
    /// Fashion-MNIST IDX files in a folder.
    FashionMnist(PathBuf),
}

/// Which part of a dataset.
///
/// HAR sources split by subject: `test` = the UCI-HAR test subjects
/// [`TEST_SUBJECTS`](crate::hapt::TEST_SUBJECTS), `val` = the training subjects
/// [`VAL_SUBJECTS`](crate::hapt::VAL_SUBJECTS), `train` = the other training subjects.
/// MNIST-style sources: `test` = the t10k files, `val` = the last 5,000 training images,
/// `train` = the first 55,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// A dataset and split. When the spec names no split it is `test`, the natural choice for
/// evaluation; training code overrides it with [`DataSpec::with_split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSpec {
    pub source: Source,
    pub split: Split,
    /// Whether the split was written in the spec (so callers may pick their own default).
    pub split_given: bool,
}

impl DataSpec {
    /// Parses `KIND:PATH[:SPLIT]`, KIND one of `uci-har`, `hapt`, `mnist`, `fashion-mnist`,
    /// SPLIT one of `train`, `val`, `test`.
    pub fn parse(spec: &str) -> Result<DataSpec, DataError> {
        let bad = |reason: &str| DataError::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (kind, rest) = spec.split_once(':').ok_or_else(|| {
            bad("expected KIND:PATH[:SPLIT], KIND one of uci-har, hapt, mnist, fashion-mnist")
        })?;
        let (path, split, split_given) = match rest.rsplit_once(':') {
            Some((p, "train")) => (p, Split::Train, true),
            Some((p, "val")) => (p, Split::Val, true),
            Some((p, "test")) => (p, Split::Test, true),
            _ => (rest, Split::Test, false),
        };
        if path.is_empty() {
            return Err(bad("empty path"));
        }
        let path = PathBuf::from(path);
        let source = match kind {
            "uci-har" => Source::UciHar(path),
            "hapt" => Source::Hapt(path),
            "mnist" => Source::Mnist(path),
            "fashion-mnist" => Source::FashionMnist(path),
            other => {
                return Err(bad(&format!(
                    "unknown kind `{other}` (uci-har, hapt, mnist, fashion-mnist)"
                )));
            }
        };
        Ok(DataSpec {
            source,
            split,
            split_given,
        })
    }

    /// The same source with another split.
    pub fn with_split(&self, split: Split) -> DataSpec {
        DataSpec {
            source: self.source.clone(),
            split,
            split_given: true,
        }
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, path) = match &self.source {
            Source::UciHar(p) => ("uci-har", p),
            Source::Hapt(p) => ("hapt", p),
            Source::Mnist(p) => ("mnist", p),
            Source::FashionMnist(p) => ("fashion-mnist", p),
        };
        write!(f, "{kind}:{}:{}", path.display(), self.split.name())
    }
}

/// Which HAPT activities become classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activities {
    /// WALKING … LAYING (labels 0–5), as UCI-HAR; transition segments are skipped.
    #[default]
    BasicSix,
    /// The six basic activities and the six postural transitions (labels 0–11).
    AllTwelve,
}

/// Options for [`load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Only used by HAPT; UCI-HAR windows hold the six basic activities only.
    pub activities: Activities,
}

/// Reads the dataset a spec names.
pub fn load(spec: &DataSpec, options: &LoadOptions) -> Result<Dataset, DataError> {
    match &spec.source {
        Source::UciHar(dir) => uci_har::load(dir, spec.split),
        Source::Hapt(path) => hapt::load(path, spec.split, options.activities),
        Source::Mnist(dir) => idx::load(dir, spec.split, idx::Flavour::Mnist),
        Source::FashionMnist(dir) => idx::load(dir, spec.split, idx::Flavour::FashionMnist),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_splits() {
        let s = DataSpec::parse("uci-har:../shared/data/uci-har:test").unwrap();
        assert_eq!(s.source, Source::UciHar("../shared/data/uci-har".into()));
        assert_eq!(s.split, Split::Test);
        let s = DataSpec::parse("hapt:/x/hapt.zip").unwrap();
        assert_eq!((s.split, s.split_given), (Split::Test, false));
        let s = DataSpec::parse("mnist:d:val").unwrap();
        assert_eq!((s.source, s.split), (Source::Mnist("d".into()), Split::Val));
        assert_eq!(
            DataSpec::parse("fashion-mnist:d:train")
                .unwrap()
                .to_string(),
            "fashion-mnist:d:train"
        );
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(DataSpec::parse("uci-har").is_err());
        assert!(DataSpec::parse("uci-har:").is_err());
        assert!(DataSpec::parse("cifar:dir").is_err());
    }
}
