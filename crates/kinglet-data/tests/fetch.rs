//! `kinglet data fetch` logic on local archives: the real download (file://), checksum and
//! atomic unpack code, without network.

use std::io::Write;
use std::path::{Path, PathBuf};

use kinglet_data::fetch::{Archive, Fetched, fetch, sha256_file};
use kinglet_data::{DataError, DataSpec, LoadOptions, load};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `sha256sum tests/fixtures/hapt.zip`; regenerate when the fixture is rebuilt.
const HAPT_FIXTURE_SHA256: &str =
    "a7e241c42bc7b59ac1ffd4bc849e47e4b3d8d9281a9b8d5fdf8900be9e81ee9a";

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kinglet-"))
        .collect()
}

#[test]
fn hapt_archive_is_verified_and_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let from = fixture("hapt.zip");
    let got = fetch(
        Archive::Hapt,
        dir.path(),
        from.to_str(),
        Some(HAPT_FIXTURE_SHA256),
    )
    .unwrap();
    let target = dir.path().join("hapt");
    assert_eq!(got, Fetched::Unpacked(target.clone()));
    assert!(target.join("RawData/labels.txt").is_file());
    assert!(leftovers(dir.path()).is_empty());
    let spec = DataSpec::parse(&format!("hapt:{}:val", target.display())).unwrap();
    assert!(!load(&spec, &LoadOptions::default()).unwrap().is_empty());
    // Fetching again leaves the unpacked data alone.
    assert_eq!(
        fetch(Archive::Hapt, dir.path(), from.to_str(), Some("00")).unwrap(),
        Fetched::AlreadyPresent(target)
    );
}

#[test]
fn checksum_mismatch_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", fixture("hapt.zip").display());
    // No expected checksum given: the pinned one of the official archive applies and fails.
    let err = fetch(Archive::Hapt, dir.path(), Some(&url), None).unwrap_err();
    match &err {
        DataError::ChecksumMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, Archive::Hapt.sha256());
            assert_eq!(actual, HAPT_FIXTURE_SHA256);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("checksum mismatch"));
    assert!(!dir.path().join("hapt").exists());
    assert!(leftovers(dir.path()).is_empty());
}

/// The published UCI-HAR zip holds a second zip, `UCI HAR Dataset.zip`; build one like it
/// from the fixture folder.
fn nested_uci_zip(path: &Path) {
    let root = fixture("uci-har");
    let mut inner = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    let mut stack = vec![root.join("UCI HAR Dataset")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                inner.start_file(name, options).unwrap();
                inner.write_all(&std::fs::read(&p).unwrap()).unwrap();
            }
        }
    }
    let inner_bytes = inner.finish().unwrap().into_inner();
    let mut outer = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    outer.start_file("UCI HAR Dataset.zip", options).unwrap();
    outer.write_all(&inner_bytes).unwrap();
    outer.finish().unwrap();
}

#[test]
fn uci_har_nested_archive_unpacks_to_a_loadable_folder() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("uci.zip");
    nested_uci_zip(&archive);
    let sha = sha256_file(&archive).unwrap();
    let dest = work.path().join("data");
    let got = fetch(Archive::UciHar, &dest, archive.to_str(), Some(&sha)).unwrap();
    assert_eq!(got, Fetched::Unpacked(dest.join("UCI HAR Dataset")));
    let spec = DataSpec::parse(&format!("uci-har:{}:test", dest.display())).unwrap();
    assert_eq!(load(&spec, &LoadOptions::default()).unwrap().len(), 300);
    assert!(leftovers(&dest).is_empty());
}

#[test]
fn archive_without_the_expected_layout_is_rejected_atomically() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("bad.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    z.start_file("README.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(b"nothing here").unwrap();
    z.finish().unwrap();
    let sha = sha256_file(&archive).unwrap();
    let dest = work.path().join("data");
    let err = fetch(Archive::Hapt, &dest, archive.to_str(), Some(&sha)).unwrap_err();
    assert!(matches!(err, DataError::MissingFile { .. }), "{err}");
    assert!(!dest.join("hapt").exists());
    assert!(leftovers(&dest).is_empty());
}

/// The real download from the UCI repository (about 60 MB). Not run in CI:
/// `cargo test --release -p kinglet-data --test fetch -- --ignored`.
#[test]
#[ignore = "downloads from the network"]
fn official_uci_har_download_verifies_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let got = fetch(Archive::UciHar, dir.path(), None, None).unwrap();
    assert_eq!(got, Fetched::Unpacked(dir.path().join("UCI HAR Dataset")));
    let spec = DataSpec::parse(&format!("uci-har:{}:test", dir.path().display())).unwrap();
    assert_eq!(load(&spec, &LoadOptions::default()).unwrap().len(), 2947);
}
