//! Producer state rules (Kafka's ProducerAppendInfo) and its snapshots and
//! recovery through `PartitionLog`, on real files.

use std::fs;

use super::producer_state::*;
use super::RECOVERY_POINT_FILE;
use super::*;
use crate::record::build::{build_simple_batch, with_producer};
use crate::record::BatchHeader;

/// A header of `records` records from producer `pid` at `epoch`, `seq`.
fn header(pid: i64, epoch: i16, seq: i32, records: i32, base_offset: i64) -> BatchHeader {
    let batch = build_simple_batch(base_offset, records as usize, 1000);
    BatchHeader::parse(&with_producer(&batch, pid, epoch, seq, false)).unwrap()
}

fn batch(pid: i64, epoch: i16, seq: i32, records: usize) -> bytes::Bytes {
    with_producer(
        &build_simple_batch(0, records, 1000),
        pid,
        epoch,
        seq,
        false,
    )
}

fn states() -> ProducerStates {
    ProducerStates::new(100)
}

#[test]
fn a_retried_batch_is_a_duplicate_with_its_original_offsets() {
    let mut s = states();
    let h = header(7, 0, 0, 3, 10);
    assert_eq!(s.check(&[h]), Ok(Verdict::Append));
    s.apply(&h, None, 5);
    match s.check(&[header(7, 0, 0, 3, 0)]) {
        Ok(Verdict::Duplicate(meta)) => {
            assert_eq!((meta.first_offset, meta.last_offset), (10, 12));
            assert_eq!((meta.first_seq, meta.last_seq), (0, 2));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

#[test]
fn a_gap_in_sequence_is_out_of_order() {
    let mut s = states();
    s.apply(&header(7, 0, 0, 3, 0), None, 5);
    assert_eq!(s.check(&[header(7, 0, 3, 1, 0)]), Ok(Verdict::Append));
    assert!(matches!(
        s.check(&[header(7, 0, 4, 1, 0)]),
        Err(ProducerError::OutOfOrderSequence { expected: 3, .. })
    ));
}

#[test]
fn an_older_epoch_is_refused_and_a_newer_one_starts_at_zero() {
    let mut s = states();
    s.apply(&header(7, 3, 0, 1, 0), None, 5);
    assert!(matches!(
        s.check(&[header(7, 2, 1, 1, 0)]),
        Err(ProducerError::InvalidEpoch { current: 3, .. })
    ));
    assert!(matches!(
        s.check(&[header(7, 4, 1, 1, 0)]),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
    assert_eq!(s.check(&[header(7, 4, 0, 1, 0)]), Ok(Verdict::Append));
    s.apply(&header(7, 4, 0, 1, 1), None, 6);
    let entry = s.get(7).unwrap();
    assert_eq!((entry.epoch, entry.batches.len()), (4, 1));
}

#[test]
fn an_unknown_producer_may_start_anywhere() {
    // KIP-360: the producer's earlier records may have left by retention.
    assert_eq!(
        states().check(&[header(9, 0, 42, 1, 0)]),
        Ok(Verdict::Append)
    );
}

#[test]
fn only_the_last_five_batches_are_deduplicated() {
    let mut s = states();
    for i in 0..6 {
        s.apply(&header(7, 0, i, 1, i64::from(i)), None, 5);
    }
    assert!(matches!(
        s.check(&[header(7, 0, 1, 1, 0)]),
        Ok(Verdict::Duplicate(_))
    ));
    assert!(matches!(
        s.check(&[header(7, 0, 0, 1, 0)]),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn batches_of_one_append_follow_each_other() {
    let s = states();
    let first = header(7, 0, 0, 5, 0);
    assert_eq!(
        s.check(&[first, header(7, 0, 5, 5, 0)]),
        Ok(Verdict::Append)
    );
    assert!(s.check(&[first, header(7, 0, 6, 5, 0)]).is_err());
}

#[test]
fn sequences_wrap_at_i32_max() {
    let mut s = states();
    let near_end = header(7, 0, i32::MAX - 1, 2, 0);
    assert_eq!(last_sequence(&near_end), i32::MAX);
    s.apply(&near_end, None, 5);
    assert_eq!(s.check(&[header(7, 0, 0, 1, 0)]), Ok(Verdict::Append));
}

#[test]
fn clients_cannot_write_control_batches() {
    let s = states();
    let mut control = header(7, 0, 0, 1, 0);
    control.attributes |= crate::record::ATTR_CONTROL;
    assert_eq!(s.check(&[control]), Err(ProducerError::ControlBatch));
    let txn =
        BatchHeader::parse(&with_producer(&build_simple_batch(0, 1, 1), 7, 0, 0, true)).unwrap();
    // Transactional batches follow the idempotent rules (Kafka before
    // KIP-890 does not ask the coordinator).
    assert_eq!(s.check(&[txn]), Ok(Verdict::Append));
    let no_seq = header(7, 0, -1, 1, 0);
    assert!(matches!(
        s.check(&[no_seq]),
        Err(ProducerError::InvalidBatch { .. })
    ));
}

#[test]
fn state_is_bounded_and_expires() {
    let mut s = ProducerStates::new(10);
    for pid in 0..25 {
        s.apply(&header(pid, 0, 0, 1, pid), None, pid);
        assert!(s.len() <= 10);
    }
    // The most recent producer is always kept.
    assert!(s.get(24).is_some());
    assert!(s.get(0).is_none());
    // Producers 21..=24 wrote less than 80 ms before 100.
    let before = s.len();
    let expired = s.expire(100, 80);
    assert_eq!(s.len(), 4);
    assert_eq!(expired, before - 4);
    s.expire(200, 80);
    assert!(s.is_empty());
}

#[test]
fn snapshots_round_trip_and_torn_ones_are_refused() {
    let mut s = states();
    for pid in 0..3 {
        for seq in 0..7 {
            s.apply(&header(pid, 2, seq * 2, 2, i64::from(seq) * 2), None, 50);
        }
    }
    let bytes = s.encode_snapshot(99);
    let (offset, back) = ProducerStates::decode_snapshot(&bytes, 100).unwrap();
    assert_eq!(offset, 99);
    assert_eq!(back.entries(), s.entries());
    for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
        assert!(ProducerStates::decode_snapshot(&bytes[..cut], 100).is_none());
    }
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(ProducerStates::decode_snapshot(&flipped, 100).is_none());
}

fn open_log(dir: &std::path::Path, clean: bool) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), LogConfig::default(), clean).unwrap()
}

#[test]
fn a_clean_restart_keeps_deduplicating_from_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open_log(&dir, true);
    log.append(&batch(7, 0, 0, 3), 1).unwrap();
    log.append(&batch(7, 0, 3, 2), 2).unwrap();
    log.close().unwrap();
    drop(log);
    let mut log = open_log(&dir, true);
    let retry = log.append(&batch(7, 0, 3, 2), 3).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5, "a duplicate appends nothing");
    assert!(log.append(&batch(7, 0, 9, 1), 4).is_err());
}

/// 300-byte segments, for a log that rolls (a snapshot at each roll).
fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    }
}

/// Ten batches of two records from producer 7 (sequences 0 to 19) into
/// a new log of [`small_segments`], which rolls on the way.
fn rolled_by_producer_7(dir: &std::path::Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir.to_path_buf(), small_segments(), true).unwrap();
    for seq in (0..20).step_by(2) {
        log.append(&batch(7, 0, seq, 2), 1).unwrap();
    }
    log
}

#[test]
fn a_crash_rebuilds_state_from_the_roll_snapshot_and_the_log_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = rolled_by_producer_7(&dir);
    log.append(&batch(8, 1, 0, 1), 1).unwrap();
    assert!(log.segment_count() > 2, "the log rolled");
    // No close: the process died with everything in the page cache.
    drop(log);
    let mut log = PartitionLog::open(dir.clone(), small_segments(), false).unwrap();
    let retry = log.append(&batch(7, 0, 18, 2), 2).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 18);
    let retry = log.append(&batch(8, 1, 0, 1), 2).unwrap();
    assert!(retry.duplicate);
    assert_eq!(log.producers().len(), 2);
}

/// A snapshot is written straight under its name (no temporary file):
/// one a crash cut short fails its CRC, and the open reads the older one
/// kept and replays the log from there.
#[test]
fn a_torn_newest_snapshot_leaves_the_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    drop(rolled_by_producer_7(&dir));
    let snapshots = list_snapshots(&dir).unwrap();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    let newest = snapshot_path(&dir, snapshots[1]);
    let whole = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &whole[..whole.len() / 2]).unwrap();
    let mut log = PartitionLog::open(dir, small_segments(), false).unwrap();
    let retry = log.append(&batch(7, 0, 18, 2), 2).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 18);
    assert!(log.append(&batch(7, 0, 21, 1), 2).is_err(), "a gap");
}

#[test]
fn a_snapshot_past_a_truncated_log_end_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open_log(&dir, true);
    log.append(&batch(7, 0, 0, 3), 1).unwrap();
    log.close().unwrap();
    drop(log);
    // A snapshot from a future the log does not have.
    let mut ahead = ProducerStates::new(10);
    ahead.apply(&header(9, 0, 0, 1, 50), None, 1);
    write_snapshot(&dir, &ahead, 51, true).unwrap();
    let log = open_log(&dir, false);
    assert!(log.producers().get(9).is_none());
    assert!(log.producers().get(7).is_some());
    assert_eq!(list_snapshots(&dir).unwrap(), vec![3]);
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> bytes::Bytes {
    with_producer(&build_simple_batch(0, records, 1000), pid, epoch, seq, true)
}

fn marker(pid: i64, epoch: i16, commit: bool) -> bytes::Bytes {
    crate::record::build_marker(
        pid,
        epoch,
        crate::record::Marker {
            commit,
            coordinator_epoch: 0,
        },
        1000,
    )
}

#[test]
fn open_transactions_hold_the_last_stable_offset_until_their_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open_log(&dir, true);
    log.append(&batch(1, 0, 0, 2), 1).unwrap(); // 0-1, not transactional
    log.append(&txn_batch(7, 0, 0, 3), 1).unwrap(); // 2-4, open
    log.append(&batch(1, 0, 2, 1), 1).unwrap(); // 5
    assert_eq!(log.last_stable_offset(), 2);
    let plan = log
        .read_below(0, 1 << 20, true, log.last_stable_offset())
        .unwrap();
    assert_eq!(
        plan.bytes,
        batch(1, 0, 0, 2).len() as u64,
        "only the stable batch"
    );
    assert!(log
        .read_below(2, 1 << 20, true, 2)
        .unwrap()
        .slices
        .is_empty());
    let done = log.append_marker(&marker(7, 0, true), 2).unwrap();
    assert_eq!(done.base_offset, 6);
    assert_eq!(log.last_stable_offset(), 7);
    assert!(log.aborted_transactions(0, 7, 10).is_empty(), "committed");
}

#[test]
fn aborted_transactions_are_indexed_and_survive_restarts_and_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let config = LogConfig {
        segment_bytes: 400,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.clone(), config.clone(), true).unwrap();
    log.append(&txn_batch(7, 0, 0, 2), 1).unwrap(); // 0-1
    log.append(&txn_batch(8, 0, 0, 1), 1).unwrap(); // 2
    log.append_marker(&marker(7, 0, false), 1).unwrap(); // 3: abort 7
    for seq in 0..6 {
        log.append(&batch(1, 0, seq, 1), 1).unwrap(); // rolls past 400 bytes
    }
    log.append_marker(&marker(8, 0, false), 1).unwrap(); // abort 8
    let expected: Vec<(i64, i64, i64)> = vec![(7, 0, 3), (8, 2, 10)];
    let seen = |log: &PartitionLog| -> Vec<(i64, i64, i64)> {
        log.aborted_transactions(0, log.log_end_offset(), 10)
            .iter()
            .map(|t| (t.producer_id, t.first_offset, t.last_offset))
            .collect()
    };
    assert_eq!(seen(&log), expected);
    assert!(log.segment_count() > 1);
    // Only transactions ending at or after the fetch offset are named.
    assert_eq!(log.aborted_transactions(4, 11, 10).len(), 1);
    log.append(&txn_batch(9, 0, 0, 1), 1).unwrap(); // open at 11
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.clone(), config.clone(), true).unwrap();
    assert_eq!(seen(&log), expected);
    assert_eq!(
        log.last_stable_offset(),
        11,
        "the open transaction stays open"
    );
    drop(log);
    // A crash: everything after the last roll snapshot is replayed.
    fs::remove_file(dir.join(RECOVERY_POINT_FILE)).unwrap();
    for offset in list_snapshots(&dir).unwrap() {
        // Keep only the roll snapshots, as after kill -9.
        if offset == 12 {
            fs::remove_file(snapshot_path(&dir, offset)).unwrap();
        }
    }
    let log = PartitionLog::open(dir.clone(), config, false).unwrap();
    assert_eq!(seen(&log), expected);
    assert_eq!(log.last_stable_offset(), 11);
}

#[test]
fn a_marker_of_an_older_epoch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open_log(&tmp.path().join("t-0"), true);
    log.append(&txn_batch(7, 3, 0, 1), 1).unwrap();
    assert!(log.append_marker(&marker(7, 2, true), 1).is_err());
    assert_eq!(log.last_stable_offset(), 0);
    log.append_marker(&marker(7, 4, false), 1).unwrap();
    assert_eq!(log.last_stable_offset(), 2);
}

/// Close writes the producer snapshot only when the file on disk does not
/// already hold those bytes durably: an untouched partition reopened from
/// a clean shutdown keeps its file (same inode); a new producer batch, or
/// an open after a crash, gets a fresh one.
#[test]
fn close_rewrites_the_snapshot_only_when_it_changed_or_is_not_known_durable() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let inode = |offset| fs::metadata(snapshot_path(&dir, offset)).unwrap().ino();
    let mut log = open_log(&dir, true);
    log.append(&batch(7, 0, 0, 3), 1).unwrap();
    log.close().unwrap();
    drop(log);
    let written = inode(3);

    let mut log = open_log(&dir, true);
    log.close().unwrap();
    drop(log);
    assert_eq!(inode(3), written, "an unchanged snapshot is not rewritten");

    let mut log = open_log(&dir, false);
    log.close().unwrap();
    drop(log);
    assert_ne!(inode(3), written, "after a crash the file is not trusted");

    let mut log = open_log(&dir, true);
    log.append(&batch(7, 0, 3, 1), 2).unwrap();
    log.close().unwrap();
    drop(log);
    let log = open_log(&dir, true);
    assert_eq!(log.producers().get(7).map(|p| p.last_seq()), Some(3));
}

/// KIP-890's point: a producer with a transaction open here at its epoch
/// needs no verification; otherwise the point is its last marker's offset,
/// so a marker applied after a verification invalidates it.
#[test]
fn verification_points_move_with_markers_and_open_transactions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open_log(&dir, true);
    let point = |log: &PartitionLog, epoch| log.producers().txn_verification_point(7, epoch);
    assert_eq!(point(&log, 0), Some(-1), "an unknown producer");
    log.append(&txn_batch(7, 0, 0, 2), 1).unwrap(); // 0-1, open
    assert_eq!(point(&log, 0), None);
    assert_eq!(point(&log, 1), Some(-1), "a newer epoch opens its own");
    log.append_marker(&marker(7, 0, false), 0).unwrap(); // 2
    assert_eq!(point(&log, 0), Some(2));
    log.append(&txn_batch(7, 0, 2, 1), 1).unwrap(); // 3, open again
    assert_eq!(point(&log, 0), None);
    log.append_marker(&marker(7, 1, true), 0).unwrap(); // 4
    assert_eq!(point(&log, 1), Some(4));
}
