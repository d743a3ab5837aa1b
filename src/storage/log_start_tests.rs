//! A log start moved past a segment's base (DeleteRecords, a follower
//! taking its leader's), on real files.

use std::fs;
use std::path::Path;

use super::tests::{batches_in, file_names};
use super::*;
use crate::record::build::build_simple_batch;

fn batch_len() -> u64 {
    build_simple_batch(0, 3, 0).len() as u64
}

/// Segments of two batches of 3 records each.
fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        segment_bytes: batch_len() * 2,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> PartitionLog {
    PartitionLog::open_in(dir.to_path_buf(), config, clean, &FileHandles::new(1)).unwrap()
}

/// `n` batches of 3 records, the i-th stamped 1000 + 10 i, all below the
/// high watermark.
fn filled(dir: &Path, n: usize) -> PartitionLog {
    let mut log = open(dir, config(), true);
    for i in 0..n {
        let ts = 1000 + 10 * i as i64;
        log.append(&build_simple_batch(0, 3, ts), ts).unwrap();
    }
    let end = log.log_end_offset();
    log.set_high_watermark(end);
    log
}

/// Moves the start and unlinks what went, as the shard does; how many
/// segments went.
fn advance(log: &mut PartitionLog, offset: i64) -> usize {
    let Some(moved) = log.advance_log_start(offset).unwrap() else {
        return 0;
    };
    moved.sync.run().unwrap();
    let n = moved.deleted.len();
    for segment in moved.deleted {
        segment.remove().unwrap();
    }
    n
}

fn log_files(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect()
}

fn out_of_range(log: &PartitionLog, offset: i64) -> bool {
    matches!(
        log.read(offset, u32::MAX, false),
        Err(StorageError::OffsetOutOfRange { .. })
    )
}

#[test]
fn the_start_moves_within_a_segment_and_segments_wholly_below_it_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    // Segments at 0 (offsets 0-5), 6 (6-11) and 12 (12-14).
    let mut log = filled(&dir, 5);
    assert_eq!(log_files(&dir).len(), 3);

    assert_eq!(
        advance(&mut log, 4),
        0,
        "offsets 4 and 5 are still in the first"
    );
    assert_eq!(log.log_start_offset(), 4);
    assert!(out_of_range(&log, 3));
    // The batch that holds the start is served whole, as Kafka serves it.
    let from_start = batches_in(&log.read(4, u32::MAX, false).unwrap());
    assert_eq!(from_start.first(), Some(&(3, 5)));
    assert_eq!(fs::read_to_string(dir.join(LOG_START_FILE)).unwrap(), "4");

    assert_eq!(advance(&mut log, 7), 1);
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(log_files(&dir).len(), 2, "the first segment's file is gone");
    assert_eq!(advance(&mut log, 5), 0, "a lower offset changes nothing");
    assert_eq!(log.log_start_offset(), 7);
    // Timestamps below the start find the first record at or past it.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((7, 1020)));

    for clean in [true, false] {
        drop(log);
        log = open(&dir, config(), clean);
        assert_eq!(log.log_start_offset(), 7, "clean {clean}");
        assert!(out_of_range(&log, 6));
        assert_eq!(log.log_end_offset(), 15);
    }

    // Up to the log end: the active segment stays, holding nothing readable.
    log.set_high_watermark(15);
    assert_eq!(advance(&mut log, 15), 1);
    assert_eq!(log.log_start_offset(), 15);
    assert!(out_of_range(&log, 14));
    assert!(log.read(15, u32::MAX, false).unwrap().slices.is_empty());
    drop(log);
    let log = open(&dir, config(), true);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (15, 15));
}

#[test]
fn segments_a_crash_left_below_the_stored_start_go_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    drop(filled(&dir, 5));
    // The file was written and the process died before the segments went.
    fs::write(dir.join(LOG_START_FILE), "13").unwrap();
    let log = open(&dir, config(), false);
    assert_eq!(log.log_start_offset(), 13);
    assert_eq!(log_files(&dir), [format!("{:020}.log", 12)]);
    assert!(out_of_range(&log, 12));
}

#[test]
fn retention_keeps_a_start_past_the_first_base() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = filled(&dir, 5);
    advance(&mut log, 2);
    assert!(log.apply_retention(i64::MAX).unwrap().is_empty());
    assert_eq!(log.log_start_offset(), 2, "retention deleted nothing");
    log.set_config(LogConfig {
        retention_bytes: (batch_len() * 3) as i64,
        ..config()
    });
    let deleted = log.apply_retention(i64::MAX).unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(log.log_start_offset(), 6, "past the file's start now");
    drop((log, deleted));
    assert_eq!(open(&dir, config(), true).log_start_offset(), 6);
}

#[test]
fn a_follower_cut_below_its_start_takes_the_start_down_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = filled(&dir, 5);
    advance(&mut log, 4);
    // The batch of offsets 3-5 reaches 5: the cut takes it whole.
    log.truncate_to(5).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
    drop(log);
    let mut log = open(&dir, config(), true);
    assert_eq!(log.log_start_offset(), 3, "the file came down too");
    log.truncate_fully_and_start_at(100).unwrap();
    assert!(!dir.join(LOG_START_FILE).exists());
    drop(log);
    assert_eq!(open(&dir, config(), true).log_start_offset(), 100);
}

#[test]
fn a_transaction_open_below_the_start_holds_nothing_back_below_it() {
    use crate::record::build::with_producer;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, config(), true);
    let open_txn = with_producer(&build_simple_batch(0, 3, 1000), 7, 0, 0, true);
    log.append(&open_txn, 1000).unwrap(); // 0-2, never ended
    for i in 1..4 {
        log.append(&build_simple_batch(0, 3, 1000), 1000 + i)
            .unwrap();
    }
    log.set_high_watermark(12);
    assert_eq!(log.last_stable_offset(), 0);
    advance(&mut log, 7);
    assert_eq!(log.last_stable_offset(), 7, "at least the log start");
}
