//! A partition directory knows the topic id it belongs to.

use std::fs;

use super::*;
use crate::record::build::build_simple_batch;

fn open_owned(dir: &std::path::Path, owner: &str) -> Result<PartitionLog, StorageError> {
    let handles = FileHandles::new(4);
    PartitionLog::open_owned(
        dir.to_path_buf(),
        LogConfig::default(),
        true,
        &handles,
        owner,
    )
}

#[test]
fn a_directory_is_its_first_owners_and_refuses_another() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open_owned(&dir, "a1").unwrap();
    log.append(&build_simple_batch(0, 3, 1000), 1000).unwrap();
    log.close().unwrap();
    drop(log);
    assert!(dir.join("owner-a1").exists());
    assert_eq!(open_owned(&dir, "a1").unwrap().log_end_offset(), 3);
    let before: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    match open_owned(&dir, "b2") {
        Err(StorageError::OtherOwner {
            found, expected, ..
        }) => {
            assert_eq!((found.as_str(), expected.as_str()), ("a1", "b2"));
        }
        other => panic!(
            "another topic's directory opened: {:?}",
            other.map(|l| l.log_end_offset())
        ),
    }
    let after: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "nothing written into it");
}

#[test]
fn an_unmarked_directory_is_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = PartitionLog::open(dir.clone(), LogConfig::default(), true).unwrap();
    log.append(&build_simple_batch(0, 3, 1000), 1000).unwrap();
    log.close().unwrap();
    drop(log);
    assert_eq!(open_owned(&dir, "c3").unwrap().log_end_offset(), 3);
    assert!(dir.join("owner-c3").exists());
}
