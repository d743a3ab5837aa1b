//! Leader epochs, replicated appends, truncation and the high watermark
//! through `PartitionLog`, on real files.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

use super::*;
use crate::record::build::{build_simple_batch, with_producer};
use crate::record::{build_marker, validate_batches, BatchHeader, Marker};

const NOW: i64 = 5_000;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        segment_bytes,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, segment_bytes: u64, clean: bool) -> PartitionLog {
    // One open file: truncation reopens what it cuts.
    let handles = FileHandles::new(1);
    PartitionLog::open_in(dir.to_path_buf(), config(segment_bytes), clean, &handles).unwrap()
}

fn batch_len() -> u64 {
    build_simple_batch(0, 3, 0).len() as u64
}

/// Every byte the log holds from `offset` on, as a fetch would send it.
fn read_all(log: &PartitionLog, offset: i64) -> Bytes {
    let plan = log.read(offset, u32::MAX, false).unwrap();
    let mut out = Vec::new();
    for slice in &plan.slices {
        let mut buf = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut buf, slice.position).unwrap();
        out.extend_from_slice(&buf);
    }
    Bytes::from(out)
}

fn headers(bytes: &Bytes) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let header = BatchHeader::parse(&bytes[pos..]).unwrap();
        pos += header.total_len();
        out.push(header);
    }
    out
}

fn offsets(log: &PartitionLog) -> Vec<(i64, i64)> {
    headers(&read_all(log, log.log_start_offset()))
        .iter()
        .map(|h| (h.base_offset, h.last_offset()))
        .collect()
}

fn epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// Appends `n` batches of 3 records.
fn fill(log: &mut PartitionLog, n: usize) {
    for _ in 0..n {
        log.append(&build_simple_batch(0, 3, 1000), NOW).unwrap();
    }
}

fn txn_batch(pid: i64, seq: i32) -> Bytes {
    with_producer(&build_simple_batch(0, 2, 1000), pid, 0, seq, true)
}

fn abort_marker(pid: i64) -> Bytes {
    let marker = Marker {
        commit: false,
        coordinator_epoch: 3,
    };
    build_marker(pid, 0, marker, 1000)
}

#[test]
fn a_leader_stamps_its_epoch_and_the_crc_still_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, 1 << 20, true);
    fill(&mut log, 1);
    // A single-node broker keeps the client's bytes (-1 from the builder).
    let mut client_epoch = build_simple_batch(0, 1, 1000).to_vec();
    client_epoch[12..16].copy_from_slice(&7i32.to_be_bytes());
    log.append(&Bytes::from(client_epoch), NOW).unwrap();
    assert_eq!(log.leader_epoch_for_append(), None);
    assert_eq!(log.latest_epoch(), None);
    assert!(!dir.join(LEADER_EPOCH_CHECKPOINT_FILE).exists());

    log.become_leader(4).unwrap();
    assert_eq!(log.leader_epoch_for_append(), Some(4));
    fill(&mut log, 1);
    log.append(&txn_batch(9, 0), NOW).unwrap();
    log.append_marker(&abort_marker(9), NOW).unwrap();
    assert_eq!(epochs(&log), vec![(4, 4)]);
    assert_eq!(log.end_offset_for_epoch(4), (4, log.log_end_offset()));
    let stored = read_all(&log, 0);
    validate_batches(&stored, u32::MAX).expect("CRCs hold after stamping");
    let stamped: Vec<i32> = headers(&stored)
        .iter()
        .map(|h| h.partition_leader_epoch)
        .collect();
    assert_eq!(stamped, vec![-1, 7, 4, 4, 4]);

    log.become_follower();
    assert_eq!(log.leader_epoch_for_append(), None);
    fill(&mut log, 1);
    let last = *headers(&read_all(&log, 0)).last().unwrap();
    assert_eq!(last.partition_leader_epoch, -1, "unstamped again");
    assert_eq!(
        fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap(),
        "0\n1\n4 4\n"
    );
}

/// A leader log with two epochs, a transaction aborted and an idempotent
/// producer; small segments so it spans several.
fn leader_log(dir: &Path) -> PartitionLog {
    let mut leader = open(dir, batch_len() * 3, true);
    leader.become_leader(1).unwrap();
    fill(&mut leader, 2);
    leader.append(&txn_batch(9, 0), NOW).unwrap();
    let producer = with_producer(&build_simple_batch(0, 2, 1000), 5, 0, 0, false);
    leader.append(&producer, NOW).unwrap();
    leader.append_marker(&abort_marker(9), NOW).unwrap();
    leader.become_leader(3).unwrap();
    fill(&mut leader, 3);
    leader.append(&txn_batch(9, 2), NOW).unwrap(); // left open
    leader
}

#[test]
fn a_follower_holds_the_leaders_bytes_and_state() {
    let tmp = tempfile::tempdir().unwrap();
    let leader = leader_log(&tmp.path().join("leader"));
    let mut follower = open(&tmp.path().join("follower"), batch_len() * 3, true);
    follower.become_follower();
    // Fetched in two pieces, as a follower would.
    let first = read_all(&leader, 0);
    let cut: usize = headers(&first)[..4].iter().map(|h| h.total_len()).sum();
    let one = follower
        .append_replicated(&first.slice(..cut), NOW)
        .unwrap();
    assert_eq!((one.base_offset, one.last_offset), (0, 9));
    let two = follower
        .append_replicated(&read_all(&leader, follower.log_end_offset()), NOW)
        .unwrap();
    assert_eq!(two.last_offset, leader.log_end_offset() - 1);
    assert!(!two.duplicate);

    assert_eq!(
        read_all(&follower, 0),
        read_all(&leader, 0),
        "byte for byte"
    );
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert!(follower.segment_count() > 1);
    assert_eq!(follower.producers().entries(), leader.producers().entries());
    assert_eq!(follower.last_stable_offset(), leader.last_stable_offset());
    let end = leader.log_end_offset();
    assert_eq!(
        follower.aborted_transactions(0, end, 10),
        leader.aborted_transactions(0, end, 10)
    );
    assert_eq!(follower.aborted_transactions(0, end, 10).len(), 1);
    assert_eq!(epochs(&follower), epochs(&leader));
    assert_eq!(epochs(&follower), vec![(1, 0), (3, 11)]);
    for epoch in [0, 1, 2, 3, 4] {
        assert_eq!(
            follower.end_offset_for_epoch(epoch),
            leader.end_offset_for_epoch(epoch)
        );
    }
    assert_eq!(follower.end_offset_for_epoch(2), (1, 11));
}

#[test]
fn replicated_offsets_must_move_forward_but_may_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(&tmp.path().join("t-0"), 1 << 20, true);
    let gappy: Vec<u8> = [
        build_simple_batch(0, 2, 1000),
        build_simple_batch(5, 1, 1000),
        build_simple_batch(20, 3, 1000),
    ]
    .concat();
    let done = log.append_replicated(&Bytes::from(gappy), NOW).unwrap();
    assert_eq!(
        (done.base_offset, done.last_offset, done.records),
        (0, 22, 6)
    );
    assert_eq!(offsets(&log), vec![(0, 1), (5, 5), (20, 22)]);
    assert_eq!(
        log.read(10, u32::MAX, false).unwrap().bytes,
        build_simple_batch(0, 3, 1000).len() as u64,
        "a read inside a gap starts at the next batch"
    );

    let size = log.size_bytes();
    let below = build_simple_batch(22, 1, 1000);
    assert!(matches!(
        log.append_replicated(&below, NOW),
        Err(StorageError::OffsetOutOfRange { offset: 22, .. })
    ));
    let overlapping: Vec<u8> = [
        build_simple_batch(23, 2, 1000),
        build_simple_batch(24, 1, 1000),
    ]
    .concat();
    assert!(log
        .append_replicated(&Bytes::from(overlapping), NOW)
        .is_err());
    let mut corrupt = build_simple_batch(30, 1, 1000).to_vec();
    *corrupt.last_mut().unwrap() ^= 0xff;
    let mixed: Vec<u8> = [build_simple_batch(23, 1, 1000).to_vec(), corrupt].concat();
    assert!(matches!(
        log.append_replicated(&Bytes::from(mixed), NOW),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(
        (log.size_bytes(), log.log_end_offset()),
        (size, 23),
        "nothing written"
    );

    let empty = log.append_replicated(&Bytes::new(), NOW).unwrap();
    assert_eq!((empty.records, empty.base_offset), (0, 23));
    // Reopened after a crash, the gaps survive recovery.
    drop(log);
    let log = open(&tmp.path().join("t-0"), 1 << 20, false);
    assert_eq!(offsets(&log), vec![(0, 1), (5, 5), (20, 22)]);
}

/// Checks a truncated log, then appends to it and reopens it (clean, then
/// after a crash): the same end and readable data every time.
fn check_after_truncation(dir: &Path, mut log: PartitionLog, segment_bytes: u64, end: i64) {
    assert_eq!(log.log_end_offset(), end);
    let expected: Vec<(i64, i64)> = (log.log_start_offset() / 3..end / 3)
        .map(|b| (b * 3, b * 3 + 2))
        .collect();
    assert_eq!(offsets(&log), expected);
    assert!(log.high_watermark() <= end);
    fill(&mut log, 2);
    assert_eq!(log.log_end_offset(), end + 6);
    let before = read_all(&log, log.log_start_offset());
    log.close().unwrap();
    drop(log);
    let log = open(dir, segment_bytes, true);
    assert_eq!(log.log_end_offset(), end + 6);
    assert_eq!(read_all(&log, log.log_start_offset()), before);
    drop(log);
    fs::remove_file(dir.join(RECOVERY_POINT_FILE)).unwrap();
    let log = open(dir, segment_bytes, false);
    assert_eq!(log.log_end_offset(), end + 6);
    assert_eq!(read_all(&log, log.log_start_offset()), before);
}

#[test]
fn truncation_inside_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, batch_len() * 4, true);
    fill(&mut log, 10); // segments at 0, 12, 24
    log.set_high_watermark(30);
    // Offset 16 is inside the batch 15-17: it goes whole.
    log.truncate_to(16).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.high_watermark(), 15);
    check_after_truncation(&dir, log, batch_len() * 4, 15);
}

#[test]
fn truncation_at_a_segment_boundary_and_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, batch_len() * 2, true);
    fill(&mut log, 10); // segments at 0, 6, 12, 18, 24
    log.truncate_to(12).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    assert!(
        !segment_path(&dir, 18, "log").exists(),
        "removed segments' files go"
    );
    log.truncate_to(12).unwrap(); // a no-op at the end
    log.truncate_to(4).unwrap(); // across a boundary, into the first segment
    assert_eq!(log.segment_count(), 1);
    assert!(
        log.take_roll_sync().is_none(),
        "no roll waits for a removed segment"
    );
    check_after_truncation(&dir, log, batch_len() * 2, 3);
}

#[test]
fn truncation_below_the_log_start_empties_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, batch_len() * 2, true);
    log.become_leader(0).unwrap();
    fill(&mut log, 6);
    log.truncate_fully_and_start_at(9).unwrap(); // the leader starts past us
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (9, 9));
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.high_watermark(), 9);
    fill(&mut log, 2);
    log.truncate_to(3).unwrap(); // below the start of 9
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
    assert!(log.producers().is_empty());
    check_after_truncation(&dir, log, batch_len() * 2, 3);
}

#[test]
fn truncation_at_the_log_end_drops_an_epoch_with_no_batch() {
    // A replica led epoch 2 from offset 3 and appended nothing before a
    // leader without epoch 2 took over: the divergence it is told about
    // sits exactly at its log end, and only the epoch entry must go.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, batch_len() * 3, true);
    log.become_leader(0).unwrap();
    fill(&mut log, 1);
    log.become_leader(2).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (2, 3)]);
    log.become_follower();
    let end = log.log_end_offset();
    log.truncate_to(end).unwrap();
    assert_eq!(log.log_end_offset(), end, "no batch removed");
    assert_eq!(epochs(&log), vec![(0, 0)], "epoch 2 held no batch");
    assert_eq!(log.latest_epoch(), Some(0));
    log.close().unwrap();
    drop(log);
    let log = open(&dir, batch_len() * 3, true);
    assert_eq!(epochs(&log), vec![(0, 0)], "the checkpoint agrees");
}

#[test]
fn truncation_rebuilds_producer_state_and_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = leader_log(&dir);
    let end = log.log_end_offset();
    assert_eq!(log.last_stable_offset(), end - 2, "the open transaction");
    log.truncate_to(end - 2).unwrap();
    assert_eq!(log.last_stable_offset(), end - 2, "no open transaction now");
    assert_eq!(epochs(&log), vec![(1, 0), (3, 11)]);
    log.truncate_to(11).unwrap();
    assert_eq!(epochs(&log), vec![(1, 0)]);
    assert_eq!(
        log.aborted_transactions(0, 11, 10).len(),
        1,
        "its marker is at 10"
    );
    log.truncate_to(10).unwrap();
    assert!(log.aborted_transactions(0, 10, 10).is_empty());
    assert_eq!(log.last_stable_offset(), 6, "the transaction is open again");
    // The state equals what a reopen rebuilds from the log.
    let producers: Vec<(i64, ProducerEntry)> = log
        .producers()
        .entries()
        .into_iter()
        .map(|(id, e)| (id, e.clone()))
        .collect();
    log.close().unwrap();
    drop(log);
    let log = open(&dir, batch_len() * 3, true);
    let reopened: Vec<(i64, ProducerEntry)> = log
        .producers()
        .entries()
        .into_iter()
        .map(|(id, e)| (id, e.clone()))
        .collect();
    assert_eq!(reopened.len(), producers.len());
    for ((id, a), (id2, b)) in producers.iter().zip(&reopened) {
        assert_eq!(id, id2);
        assert_eq!(
            (&a.batches, a.current_txn_first_offset),
            (&b.batches, b.current_txn_first_offset)
        );
    }
    assert_eq!(epochs(&log), vec![(1, 0)]);
}

#[test]
fn the_high_watermark_stays_in_the_log_and_is_due_only_on_a_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, 1 << 20, true);
    fill(&mut log, 4);
    assert_eq!(log.high_watermark(), 0, "a new log starts at its end");
    log.set_high_watermark(7);
    assert!(
        !log.high_watermark_due() && log.high_watermark_to_checkpoint().is_none(),
        "a single node's log (no one made it leader or follower) keeps none"
    );
    log.become_follower();
    log.set_high_watermark(100);
    assert_eq!(log.high_watermark(), 12, "clamped to the log end");
    log.set_high_watermark(6);
    assert!(log.high_watermark_due());
    assert_eq!(log.high_watermark_to_checkpoint(), Some(6));
    log.high_watermark_checkpointed(6);
    assert!(!log.high_watermark_due(), "the checkpoint holds it");
    log.set_high_watermark(9);
    assert!(log.high_watermark_due(), "it moved");
    log.close().unwrap();
    assert!(
        !dir.join(HIGH_WATERMARK_FILE).exists(),
        "the shard checkpoints it, not the log"
    );
    drop(log);

    // Reopened with its shard's value, which is kept (lower, so safe) for
    // as long as the log is not a replica again.
    let mut log = open(&dir, 1 << 20, true);
    assert_eq!(log.high_watermark(), 12, "no value of its own: the log end");
    log.restore_high_watermark(9);
    assert_eq!(log.high_watermark(), 9);
    assert!(!log.high_watermark_due());
    log.set_high_watermark(12);
    assert_eq!(log.high_watermark_to_checkpoint(), Some(9));
    log.become_follower();
    log.truncate_to(6).unwrap();
    assert_eq!(log.high_watermark(), 6, "truncation takes it down");
    assert_eq!(log.high_watermark_to_checkpoint(), Some(6));
    drop(log);
    // A value past the log end (the tail lost in a crash) is clamped.
    let mut log = open(&dir, 1 << 20, true);
    log.restore_high_watermark(50);
    assert_eq!(log.high_watermark(), 6);
    log.become_follower();
    assert!(
        log.high_watermark_due(),
        "the clamped value is written back"
    );
}

#[test]
fn a_per_partition_high_watermark_file_is_read_until_the_checkpoint_covers_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, 1 << 20, true);
    fill(&mut log, 4);
    drop(log);
    fs::write(dir.join(HIGH_WATERMARK_FILE), "0\n5\n").unwrap();
    let mut log = open(&dir, 1 << 20, true);
    assert_eq!(log.high_watermark(), 5, "the layout before: read at open");
    assert_eq!(log.high_watermark_to_checkpoint(), Some(5));
    assert!(
        log.high_watermark_due(),
        "the checkpoint is to take it over"
    );
    let legacy = log.legacy_high_watermark_file().expect("a file to retire");
    log.high_watermark_checkpointed(5);
    assert!(!log.high_watermark_due() && log.legacy_high_watermark_file().is_none());
    drop(log);
    let mut log = open(&dir, 1 << 20, true);
    log.restore_high_watermark(7);
    assert_eq!(log.high_watermark(), 7, "the shard checkpoint wins");
    drop(log);

    // The checkpoint that holds the value removes the file, and nothing
    // of a partition recreated at the same path meanwhile.
    let data_dir = tmp.path();
    let entry = HwEntry {
        topic: "t".into(),
        partition: 0,
        topic_id: "id1".into(),
        high_watermark: 7,
    };
    fs::rename(&dir, data_dir.join("t-0.gone")).unwrap();
    let recreated = open(&dir, 1 << 20, true);
    fs::write(dir.join(HIGH_WATERMARK_FILE), "0\n1\n").unwrap();
    let checkpoint = HwCheckpoint {
        path: hw_checkpoint_path(data_dir, 0),
        entries: vec![entry.clone()],
        legacy: vec![legacy],
    };
    checkpoint.run().unwrap();
    assert!(
        dir.join(HIGH_WATERMARK_FILE).exists(),
        "the new one's stays"
    );
    let reopened = open(&dir, 1 << 20, true);
    let current = reopened.legacy_high_watermark_file().unwrap();
    drop((recreated, reopened));
    let checkpoint = HwCheckpoint {
        path: hw_checkpoint_path(data_dir, 0),
        entries: vec![entry],
        legacy: vec![current],
    };
    checkpoint.run().unwrap();
    assert!(!dir.join(HIGH_WATERMARK_FILE).exists(), "retired");
    let log = open(&dir, 1 << 20, true);
    assert!(log.legacy_high_watermark_file().is_none());
    // A corrupt file counts as none.
    fs::write(dir.join(HIGH_WATERMARK_FILE), "garbage").unwrap();
    drop(log);
    let log = open(&dir, 1 << 20, true);
    assert!(log.legacy_high_watermark_file().is_none());
    assert_eq!(log.high_watermark(), 0, "the log end of an empty log");
}

#[test]
fn the_epoch_cache_is_rebuilt_from_batch_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = leader_log(&dir);
    log.become_leader(6).unwrap();
    fill(&mut log, 1);
    let expected = epochs(&log);
    assert_eq!(expected.len(), 3);
    log.close().unwrap();
    drop(log);
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let written = fs::read_to_string(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let log = open(&dir, batch_len() * 3, true);
    assert_eq!(epochs(&log), expected);
    // A clean open without the file writes none: the headers give the
    // same cache at every open (a single-node broker's logs have none).
    assert!(!path.exists());
    drop(log);
    assert_eq!(epochs(&open(&dir, batch_len() * 3, true)), expected);
    fs::write(&path, "0\n7\n").unwrap();
    assert_eq!(epochs(&open(&dir, batch_len() * 3, true)), expected);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        written,
        "an unreadable file is replaced"
    );
    // An entry past the log end (the tail lost in a crash) goes.
    let mut extra = LeaderEpochCache::decode(&written).unwrap();
    assert!(extra.assign(9, 1_000));
    fs::write(&path, extra.encode()).unwrap();
    assert_eq!(epochs(&open(&dir, batch_len() * 3, true)), expected);
}

#[test]
fn retention_moves_the_first_epoch_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let config = LogConfig {
        index_interval_bytes: 1,
        segment_bytes: batch_len() * 2,
        retention_bytes: (batch_len() * 4) as i64,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.clone(), config, true).unwrap();
    log.become_leader(2).unwrap();
    fill(&mut log, 3);
    log.become_leader(5).unwrap();
    fill(&mut log, 5);
    assert_eq!(epochs(&log), vec![(2, 0), (5, 9)]);
    log.set_high_watermark(3);
    let deleted = log.apply_retention(NOW).unwrap();
    assert!(!deleted.is_empty());
    let start = log.log_start_offset();
    assert!(start > 9);
    assert_eq!(epochs(&log), vec![(5, start)]);
    assert_eq!(log.high_watermark(), start, "clamped to the new start");
}

#[test]
fn a_roll_sync_out_during_truncation_does_not_overstate_the_recovery_point() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, batch_len() * 2, true);
    fill(&mut log, 8); // segments at 0, 6, 12, 18
    let job = log.take_roll_sync().expect("rolled segments wait");
    assert_eq!(job.recovery_point(), 18);
    log.truncate_to(9).unwrap();
    fill(&mut log, 4);
    job.run().unwrap();
    log.finish_roll_sync(job.scope(), true);
    let recovery_point: i64 = fs::read_to_string(dir.join(RECOVERY_POINT_FILE))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        recovery_point, 9,
        "only what the sync covered and the cut kept"
    );
    assert!(
        log.files_to_sync().unwrap().len() >= 2,
        "the segments written since still wait"
    );
}

/// The append path writes the epoch checkpoint to the page cache only; a
/// roll sync makes it durable before its recovery point, and a crash before
/// that leaves an older file, whose missing epochs an unclean open takes
/// from the batch headers past the recovery point.
#[test]
fn epochs_begun_past_the_recovery_point_survive_a_stale_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let mut log = open(&dir, batch_len() * 3, true);
    log.become_leader(2).unwrap();
    fill(&mut log, 4); // segments at 0 and 9
    assert!(log.epochs_unsynced(), "written without fsync");
    let failed = log.take_roll_sync().expect("a rolled segment waits");
    log.finish_roll_sync(failed.scope(), false);
    assert!(log.epochs_unsynced(), "a failed sync covers nothing");
    let job = log.take_roll_sync().expect("the roll still waits");
    assert_eq!(job.recovery_point(), 9);
    job.run().unwrap();
    log.finish_roll_sync(job.scope(), true);
    assert!(!log.epochs_unsynced(), "synced with the rolled segment");
    let synced = fs::read_to_string(&path).unwrap();
    assert_eq!(synced, "0\n1\n2 0\n");

    log.become_leader(5).unwrap();
    fill(&mut log, 1);
    assert_eq!(epochs(&log), vec![(2, 0), (5, 12)]);
    assert!(log.epochs_unsynced());
    // A crash that lost the unsynced write: no close, the synced file.
    drop(log);
    fs::write(&path, &synced).unwrap();
    let mut log = open(&dir, batch_len() * 3, false);
    assert_eq!(epochs(&log), vec![(2, 0), (5, 12)]);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "0\n2\n2 0\n5 12\n",
        "written back"
    );
    // The open cut nothing, so it synced nothing: the write back waits
    // for the sync that moves the recovery point past epoch 5.
    assert!(log.epochs_unsynced(), "written back without fsync");
    log.close().unwrap();
    assert!(!log.epochs_unsynced());
}

#[test]
fn close_syncs_an_epoch_checkpoint_the_append_path_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut leader = open(&tmp.path().join("leader"), 1 << 20, true);
    leader.become_leader(4).unwrap();
    fill(&mut leader, 1);
    let mut follower = open(&dir, 1 << 20, true);
    follower.become_follower();
    follower
        .append_replicated(&read_all(&leader, 0), NOW)
        .unwrap();
    assert_eq!(epochs(&follower), vec![(4, 0)]);
    assert!(follower.epochs_unsynced());
    follower.close().unwrap();
    assert!(!follower.epochs_unsynced());
}
