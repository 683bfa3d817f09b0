//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;

use kinglet_data::spec::{DataSpec, LoadOptions, load};
use kinglet_data::{Dataset, Split};

/// A split of the committed MNIST fixture (96 training and 40 test images).
pub fn mnist_fixture(split: Split) -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-tiny");
    let spec = DataSpec::parse(&format!("mnist:{}", dir.display()))
        .unwrap()
        .with_split(split);
    load(&spec, &LoadOptions::default()).unwrap()
}
