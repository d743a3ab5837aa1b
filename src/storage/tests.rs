//! Tests of `PartitionLog` through its public API, on real files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::*;
use crate::record::build::{build_batch, build_simple_batch};
use crate::record::BatchHeader;

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

/// The recovery point on disk; no file reads as 0, as at open.
fn recovery_point(dir: &Path) -> i64 {
    match fs::read_to_string(dir.join(RECOVERY_POINT_FILE)) {
        Ok(text) => text.trim().parse().unwrap(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => panic!("{e}"),
    }
}

/// With a cache of one open file: every test here also runs with each
/// file closed and reopened as the log moves between them.
fn open(dir: &Path, config: LogConfig, clean: bool) -> PartitionLog {
    let handles = FileHandles::new(1);
    PartitionLog::open_in(dir.to_path_buf(), config, clean, &handles).unwrap()
}

fn partition_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("topic-0")
}

/// The names in `dir`, sorted.
pub(super) fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The names in `dir` with their inodes, sorted: a file written again (a
/// temporary file renamed over it) shows a new inode.
pub(super) fn names_and_inodes(dir: &Path) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut files: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            (name, e.metadata().unwrap().ino())
        })
        .collect();
    files.sort();
    files
}

/// The (base, last) offsets of the batches a plan covers, reading its slices.
pub(super) fn batches_in(plan: &ReadPlan) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for slice in &plan.slices {
        let mut buf = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut buf, slice.position).unwrap();
        let mut pos = 0;
        while pos < buf.len() {
            let header = BatchHeader::parse(&buf[pos..]).unwrap();
            out.push((header.base_offset, header.last_offset()));
            pos += header.total_len();
        }
        assert_eq!(pos, buf.len(), "slices hold whole batches");
    }
    assert_eq!(
        plan.bytes,
        plan.slices.iter().map(|s| u64::from(s.len)).sum::<u64>()
    );
    out
}

/// Appends `n` batches of 3 records with timestamps 1000, 1010, ...
fn fill(log: &mut PartitionLog, n: usize) {
    for i in 0..n {
        let ts = 1000 + 10 * i as i64;
        log.append(&build_simple_batch(0, 3, ts), ts).unwrap();
    }
}

fn batch_len() -> u64 {
    build_simple_batch(0, 3, 0).len() as u64
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(&partition_dir(&tmp), config(), true);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let first = log.append(&build_simple_batch(99, 3, 5), 7).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.records),
        (0, 2, 3)
    );
    assert_eq!(first.log_append_time_ms, -1);
    let two = Bytes::from(
        [
            build_simple_batch(0, 2, 5).to_vec(),
            build_simple_batch(0, 1, 5).to_vec(),
        ]
        .concat(),
    );
    let second = log.append(&two, 8).unwrap();
    assert_eq!(
        (second.base_offset, second.last_offset, second.records),
        (3, 5, 3)
    );
    assert_eq!(log.log_end_offset(), 6);
    let plan = log.read(0, u32::MAX, false).unwrap();
    assert_eq!(batches_in(&plan), vec![(0, 2), (3, 4), (5, 5)]);
    assert_eq!(
        plan.slices.len(),
        1,
        "contiguous batches merge into one slice"
    );
    assert_eq!(
        batches_in(&log.read(4, u32::MAX, false).unwrap()),
        vec![(3, 4), (5, 5)]
    );
    assert_eq!(log.size_bytes(), plan.bytes);
}

#[test]
fn rejected_append_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(&partition_dir(&tmp), config(), true);
    let good = build_simple_batch(0, 1, 5);
    let mut bad = build_simple_batch(0, 1, 5).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let both = Bytes::from([good.to_vec(), bad].concat());
    assert!(matches!(
        log.append(&both, 0),
        Err(StorageError::Corrupt(_))
    ));
    let small = LogConfig {
        max_message_bytes: 10,
        ..config()
    };
    log.set_config(small);
    assert!(matches!(
        log.append(&good, 0),
        Err(StorageError::MessageTooLarge { .. })
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
}

/// A write that fails (a full disk) leaves nothing: offsets, size and
/// indexes stay, a tail it could not cut is cut before the next append
/// (or the roll before it), which lands where the refused one would have.
#[test]
fn a_failed_write_leaves_nothing_and_the_next_append_lands_in_place() {
    for roll_next in [false, true] {
        failed_write_then_append(roll_next);
    }
}

fn failed_write_then_append(roll_next: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, config(), true);
    fill(&mut log, 2);
    let (end, size) = (log.log_end_offset(), log.size_bytes());
    let index_len = log.active().index.len();
    let real = log.active().file().unwrap();
    // /dev/full: every write fails with ENOSPC, and the cut back fails too
    // (a device cannot be truncated).
    let full = OpenOptions::new().read(true).write(true).open("/dev/full");
    log.active().replace_file_for_test(full.unwrap());
    let Err(err) = log.append(&build_simple_batch(0, 3, 2000), 2000) else {
        panic!("a write to a full disk succeeded");
    };
    assert!(err.is_out_of_space(), "{err}");
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    assert_eq!(log.active().index.len(), index_len);
    // What the part of the write that got through left in the real file.
    real.write_all_at(&[0xee; 4096], size).unwrap();
    let path = log.active().log_path();
    let reopened = OpenOptions::new().read(true).write(true).open(path);
    log.active().replace_file_for_test(reopened.unwrap());
    let config = LogConfig {
        segment_bytes: if roll_next { size } else { u64::MAX },
        ..config()
    };
    log.set_config(config.clone());
    let appended = log.append(&build_simple_batch(0, 3, 2000), 2000).unwrap();
    assert_eq!(appended.base_offset, end);
    let on_disk: u64 = [0, end]
        .iter()
        .filter_map(|base| fs::metadata(segment_path(&dir, *base, "log")).ok())
        .map(|m| m.len())
        .sum();
    assert_eq!(on_disk, log.size_bytes());
    let all = [(0, 2), (3, 5), (6, 8)];
    assert_eq!(batches_in(&log.read(0, u32::MAX, true).unwrap()), all);
    log.close().unwrap();
    drop(log);
    for clean in [true, false] {
        let log = open(&dir, config.clone(), clean);
        assert_eq!(batches_in(&log.read(0, u32::MAX, true).unwrap()), all);
    }
}

/// A reopen after a clean close writes nothing: the active segment's
/// indexes and the recovery point are loaded, not rebuilt and rewritten
/// (with many partitions those writes were most of a restart); closing an
/// untouched log again rewrites neither.
#[test]
fn a_clean_reopen_rewrites_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, config(), true);
    fill(&mut log, 3);
    log.close().unwrap();
    drop(log);
    let files = names_and_inodes;
    let before = files(&dir);
    let log = open(&dir, config(), true);
    assert_eq!(files(&dir), before, "a clean reopen replaced a file");
    assert_eq!(log.log_end_offset(), 3 * 3);
    assert_eq!(recovery_point(&dir), 3 * 3);
    let plan = log.read(0, u32::MAX, false).unwrap();
    assert_eq!(batches_in(&plan), vec![(0, 2), (3, 5), (6, 8)]);
    // Closed again untouched: the indexes and the recovery point stand
    // (the producer snapshot is still written).
    let mut log = log;
    log.close().unwrap();
    let kept = |files: Vec<(String, u64)>| -> Vec<(String, u64)> {
        files
            .into_iter()
            .filter(|(name, _)| name.ends_with("index") || name == RECOVERY_POINT_FILE)
            .collect()
    };
    assert_eq!(kept(files(&dir)), kept(before.clone()));
    // One more append: the active segment's indexes are written again.
    let mut log = open(&dir, config(), true);
    fill(&mut log, 1);
    log.close().unwrap();
    let index_inode = |files: &[(String, u64)]| {
        files
            .iter()
            .find(|(n, _)| n.ends_with(".index"))
            .map(|(_, ino)| *ino)
    };
    assert_ne!(index_inode(&files(&dir)), index_inode(&before));
    assert_eq!(recovery_point(&dir), 4 * 3);
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len() * 3,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    fill(&mut log, 10);
    assert_eq!(log.segment_count(), 4); // 3 + 3 + 3 + 1 batches
    assert_eq!(log.log_end_offset(), 30);
    for offset in 0..30 {
        let batches = batches_in(&log.read(offset, u32::MAX, false).unwrap());
        let expected: Vec<(i64, i64)> = (offset / 3..10).map(|b| (b * 3, b * 3 + 2)).collect();
        assert_eq!(batches, expected, "offset {offset}");
    }
    let plan = log.read(0, u32::MAX, false).unwrap();
    assert_eq!(plan.slices.len(), 4, "one slice per segment");
    assert!(segment_path(&partition_dir(&tmp), 3 * 3, "index").exists());
    let dir = partition_dir(&tmp);
    // Rolls leave their fdatasync to the background; the recovery point
    // moves only once it ran.
    assert_eq!(recovery_point(&dir), 0);
    let job = log.take_roll_sync().expect("three rolled segments wait");
    assert!(log.take_roll_sync().is_none(), "one job out at a time");
    assert_eq!(job.recovery_point(), 27);
    job.run().unwrap();
    log.finish_roll_sync(job.scope(), true);
    assert_eq!(recovery_point(&dir), 27);
    assert!(log.take_roll_sync().is_none(), "nothing left to sync");
    assert_eq!(
        log.files_to_sync().unwrap().len(),
        1,
        "only the active segment"
    );
}

#[test]
fn a_failed_roll_sync_is_retried_and_close_syncs_what_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len() * 2,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    fill(&mut log, 5);
    assert_eq!(
        log.files_to_sync().unwrap().len(),
        3,
        "two rolled, one active"
    );
    let job = log.take_roll_sync().unwrap();
    log.finish_roll_sync(job.scope(), false);
    let again = log.take_roll_sync().expect("the rolls still wait");
    assert_eq!(again.recovery_point(), job.recovery_point());
    log.finish_roll_sync(again.scope(), false);
    log.close().unwrap();
    assert_eq!(
        log.files_to_sync().unwrap().len(),
        1,
        "close synced the rolled segments"
    );
    assert_eq!(recovery_point(&partition_dir(&tmp)), 15);
}

#[test]
fn a_roll_sync_never_writes_into_a_recreated_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len() * 2,
        ..config()
    };
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, config.clone(), true);
    fill(&mut log, 5);
    let job = log.take_roll_sync().unwrap();
    // The topic is deleted (its directory moved away) and recreated.
    fs::rename(&dir, dir.with_extension("deleted")).unwrap();
    let fresh = open(&dir, config, true);
    job.run().unwrap();
    assert_eq!(
        recovery_point(&dir),
        0,
        "the new log's recovery point is its own"
    );
    drop(fresh);
}

#[test]
fn rolls_sync_inline_once_too_many_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len(),
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    // Every batch after the first rolls; nobody runs the background syncs.
    fill(&mut log, 70);
    assert!(
        log.files_to_sync().unwrap().len() <= 65,
        "{}",
        log.files_to_sync().unwrap().len()
    );
    assert!(
        recovery_point(&partition_dir(&tmp)) > 0,
        "the inline sync moved the recovery point"
    );
}

#[test]
fn read_limits_and_range() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len() * 2,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    fill(&mut log, 5);
    let len = batch_len() as u32;
    assert!(log.read(0, len - 1, false).unwrap().slices.is_empty());
    assert_eq!(
        batches_in(&log.read(0, len - 1, true).unwrap()),
        vec![(0, 2)]
    );
    assert_eq!(
        batches_in(&log.read(1, len * 5 / 2, true).unwrap()),
        vec![(0, 2), (3, 5)]
    );
    // Across a segment boundary, still only whole batches within the budget.
    assert_eq!(
        batches_in(&log.read(3, len * 2, false).unwrap()),
        vec![(3, 5), (6, 8)]
    );
    assert_eq!(log.read(15, 100, true).unwrap().bytes, 0);
    assert!(matches!(
        log.read(16, 100, true),
        Err(StorageError::OffsetOutOfRange { offset: 16, .. })
    ));
    assert!(matches!(
        log.read(-1, 100, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

/// Reads cut by the budget find the same batches through a sparse index as
/// a walk of every header would: batches of uneven sizes, an index entry
/// every few batches, segments rolled along the way, every start offset
/// against every budget.
#[test]
fn budget_cuts_match_a_header_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 300,
        segment_bytes: 2_000,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    // (base, last, bytes) of each batch as appended.
    let mut batches = Vec::new();
    for i in 0..40usize {
        let value = vec![b'v'; 10 + (i * 37) % 120];
        let records: Vec<crate::record::build::RecordSpec<'_>> = (0..1 + i % 3)
            .map(|_| (None, Some(&value[..]), 1_000, &[][..]))
            .collect();
        let batch = build_batch(0, &records);
        let appended = log.append(&batch, 0).unwrap();
        batches.push((
            appended.base_offset,
            appended.last_offset,
            batch.len() as u64,
        ));
    }
    assert!(log.segment_count() > 3);
    for (start, &(base, _, _)) in batches.iter().enumerate() {
        for budget in (0..1_200).step_by(23) {
            for min_one in [false, true] {
                let plan = log.read(base, budget, min_one).unwrap();
                // The model: whole batches from `start` while they fit, the
                // first one anyway with `min_one`.
                let mut want = Vec::new();
                let mut taken = 0;
                for &(b, l, len) in &batches[start..] {
                    if taken + len > u64::from(budget) && !(min_one && want.is_empty()) {
                        break;
                    }
                    taken += len;
                    want.push((b, l));
                }
                assert_eq!(
                    batches_in(&plan),
                    want,
                    "from {base}, budget {budget}, min_one {min_one}"
                );
            }
        }
    }
}

/// ListOffsets v0's arrays (Kafka 3.x's `legacyFetchOffsetsBefore`):
/// segment starts found by their files' times, then the log end, newest
/// first.
#[test]
fn offsets_before_walks_segment_starts_by_file_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let config = LogConfig {
        segment_bytes: 1,
        ..config()
    };
    let mut log = open(&dir, config, true);
    assert_eq!(log.offsets_before(-1, 10, 0).unwrap(), [0], "empty log");
    for _ in 0..3 {
        let batch = build_batch(0, &[(None, Some(b"x"), 1_000, &[])]);
        log.append(&batch, 0).unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    // Segment i's file last written at (i + 1) * 10 s after the epoch.
    for (i, base) in [0, 1, 2].into_iter().enumerate() {
        let path = super::segment::segment_path(&dir, base, "log");
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(10 * (i as u64 + 1));
        std::fs::File::open(path).unwrap().set_modified(at).unwrap();
    }
    let now_ms = 50_000;
    let before = |ts, max| log.offsets_before(ts, max, now_ms).unwrap();
    assert_eq!(before(-1, 10), [3, 2, 1, 0]);
    assert_eq!(before(-1, 2), [3, 2]);
    assert_eq!(before(-1, 0), [0; 0]);
    assert_eq!(before(-2, 10), [0]);
    assert_eq!(before(25_000, 10), [1, 0]);
    assert_eq!(before(30_000, 1), [2]);
    assert_eq!(before(45_000, 10), [2, 1, 0]);
    assert_eq!(before(now_ms, 10), [3, 2, 1, 0]);
    assert_eq!(before(9_999, 10), [0; 0], "older than every segment");
}

#[test]
fn offset_for_timestamp_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    for i in 0..20i64 {
        let (a, b) = (1000 + 10 * i, 1005 + 10 * i);
        log.append(
            &build_batch(0, &[(None, Some(b"x"), a, &[]), (None, Some(b"y"), b, &[])]),
            0,
        )
        .unwrap();
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((1, 1005)));
    assert_eq!(log.offset_for_timestamp(1006).unwrap(), Some((2, 1010)));
    assert_eq!(log.offset_for_timestamp(1150).unwrap(), Some((30, 1150)));
    assert_eq!(log.offset_for_timestamp(1195).unwrap(), Some((39, 1195)));
    assert_eq!(log.offset_for_timestamp(1196).unwrap(), None);
    for ts in 1000..1196 {
        let (offset, found) = log.offset_for_timestamp(ts).unwrap().unwrap();
        assert!(found >= ts && found - ts < 10, "ts {ts}");
        let expected = (ts - 1000) / 10 * 2
            + i64::from((ts - 1000) % 10 > 5) * 2
            + i64::from((1..=5).contains(&((ts - 1000) % 10)));
        assert_eq!(offset, expected, "ts {ts}");
    }
}

#[test]
fn log_append_time_stamps_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    let result = log.append(&build_simple_batch(0, 2, 5), 12345).unwrap();
    assert_eq!(result.log_append_time_ms, 12345);
    assert_eq!(log.offset_for_timestamp(6).unwrap(), Some((0, 12345)));
    let plan = log.read(0, u32::MAX, false).unwrap();
    let mut buf = vec![0u8; plan.bytes as usize];
    plan.slices[0].file.read_exact_at(&mut buf, 0).unwrap();
    crate::record::validate_batches(&Bytes::from(buf), u32::MAX)
        .expect("stamped batch stays valid");
}

#[test]
fn flush_policy_by_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 5,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    assert!(
        !log.append(&build_simple_batch(0, 3, 5), 0)
            .unwrap()
            .flush_needed
    );
    assert!(
        log.append(&build_simple_batch(0, 3, 5), 0)
            .unwrap()
            .flush_needed
    );
    log.active_file().unwrap().sync_data().unwrap();
    log.mark_flushed(log.log_end_offset());
    assert!(
        !log.append(&build_simple_batch(0, 1, 5), 0)
            .unwrap()
            .flush_needed
    );
}

#[test]
fn rolls_by_time() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 100,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    log.append(&build_simple_batch(0, 1, 5), 1000).unwrap();
    log.append(&build_simple_batch(0, 1, 5), 1050).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&build_simple_batch(0, 1, 5), 1100).unwrap();
    assert_eq!(log.segment_count(), 2);
}

fn log_path(dir: &Path, base: i64) -> PathBuf {
    segment_path(dir, base, "log")
}

/// A log of 10 batches in segments at 0, 12 and 24 (the last holds 2),
/// none synced, left as a crash leaves it: dropped without close.
fn crashed_log(tmp: &tempfile::TempDir) -> (PathBuf, LogConfig) {
    let dir = partition_dir(tmp);
    let config = LogConfig {
        segment_bytes: batch_len() * 4,
        ..config()
    };
    let mut log = open(&dir, config.clone(), true);
    fill(&mut log, 10);
    drop(log);
    (dir, config)
}

#[test]
fn unclean_recovery_truncates_garbage_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, config) = crashed_log(&tmp);
    let last = log_path(&dir, 24);
    let valid_len = fs::metadata(&last).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&build_simple_batch(30, 3, 0)[..70]).unwrap(); // a torn batch
    file.write_all(&[0xab; 100]).unwrap();
    drop(file);
    fs::write(dir.join("00000000000000000000.index.tmp"), b"leftover").unwrap();

    let mut log = open(&dir, config, false);
    assert_eq!(fs::metadata(&last).unwrap().len(), valid_len);
    assert!(!dir.join("00000000000000000000.index.tmp").exists());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 30));
    assert_eq!(
        recovery_point(&dir),
        30,
        "a cut is synced at open, and the recovery point follows"
    );
    assert!(log.take_roll_sync().is_none(), "open synced the rescan");
    let all: Vec<(i64, i64)> = (0..10).map(|b| (b * 3, b * 3 + 2)).collect();
    assert_eq!(batches_in(&log.read(0, u32::MAX, false).unwrap()), all);
    let next = log.append(&build_simple_batch(0, 2, 5), 0).unwrap();
    assert_eq!((next.base_offset, next.last_offset), (30, 31));
}

#[test]
fn an_unclean_open_that_cuts_nothing_leaves_the_rescan_to_a_roll_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, config) = crashed_log(&tmp);
    assert_eq!(recovery_point(&dir), 0);
    let all: Vec<(i64, i64)> = (0..10).map(|b| (b * 3, b * 3 + 2)).collect();

    let mut log = open(&dir, config.clone(), false);
    assert_eq!(batches_in(&log.read(0, u32::MAX, false).unwrap()), all);
    assert_eq!(
        recovery_point(&dir),
        0,
        "nothing rescanned was synced, so the point stays"
    );
    assert_eq!(
        log.files_to_sync().unwrap().len(),
        3,
        "two rescanned rolls and the active segment wait for a sync"
    );
    let job = log.take_roll_sync().expect("the rescanned rolls wait");
    assert_eq!(job.recovery_point(), 24);
    job.run().unwrap();
    log.finish_roll_sync(job.scope(), true);
    assert_eq!(recovery_point(&dir), 24);
    drop(log); // a second crash: only the active segment is rescanned

    let mut log = open(&dir, config, false);
    assert_eq!(batches_in(&log.read(0, u32::MAX, false).unwrap()), all);
    assert!(
        log.take_roll_sync().is_none(),
        "only the active one is past it"
    );
    log.close().unwrap();
    assert_eq!(recovery_point(&dir), 30, "close synced the rescanned tail");
}

#[test]
fn unclean_recovery_cuts_at_corrupt_batch_and_drops_later_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, config) = crashed_log(&tmp);
    assert_eq!(
        recovery_point(&dir),
        0,
        "no sync ran: everything is rescanned"
    );
    // Flip a record byte of the second batch of segment 12 (offsets 15..17).
    let file = OpenOptions::new()
        .write(true)
        .open(log_path(&dir, 12))
        .unwrap();
    file.write_all_at(&[0xff], batch_len() + 70).unwrap();
    let mut log = open(&dir, config, false);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.segment_count(), 2);
    assert!(!log_path(&dir, 24).exists());
    assert_eq!(
        log.append(&build_simple_batch(0, 1, 5), 0)
            .unwrap()
            .base_offset,
        15
    );
}

#[test]
fn clean_reopen_loads_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let config = LogConfig {
        segment_bytes: batch_len() * 4,
        ..config()
    };
    let mut log = open(&dir, config.clone(), true);
    fill(&mut log, 10);
    let before = batches_in(&log.read(0, u32::MAX, false).unwrap());
    log.close().unwrap();
    drop(log);
    assert_eq!(recovery_point(&dir), 30);
    let index = fs::read(segment_path(&dir, 24, "index")).unwrap();
    assert!(!index.is_empty());

    let mut log = open(&dir, config.clone(), true);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 30));
    assert_eq!(batches_in(&log.read(0, u32::MAX, false).unwrap()), before);
    assert_eq!(log.offset_for_timestamp(1045).unwrap(), Some((15, 1050)));
    log.append(&build_simple_batch(0, 1, 5), 0).unwrap();
    log.close().unwrap();
    drop(log);

    // Missing or garbage index files are rebuilt by scanning.
    fs::remove_file(segment_path(&dir, 0, "index")).unwrap();
    fs::write(segment_path(&dir, 12, "timeindex"), b"garbage").unwrap();
    let log = open(&dir, config, true);
    assert_eq!(log.log_end_offset(), 31);
    assert_eq!(
        batches_in(&log.read(13, u32::MAX, false).unwrap()).first(),
        Some(&(12, 14))
    );
    assert_eq!(log.offset_for_timestamp(1005).unwrap(), Some((3, 1010)));
}

/// Retention as the shard runs it: segments out of the log, then their
/// renamed files unlinked. Returns how many went.
fn retain(log: &mut PartitionLog, now_ms: i64) -> usize {
    let deleted = log.apply_retention(now_ms).unwrap();
    let n = deleted.len();
    for segment in deleted {
        segment.remove().unwrap();
    }
    n
}

#[test]
fn retention_renames_then_the_caller_unlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len() * 2,
        retention_bytes: (batch_len() * 2) as i64,
        retention_ms: -1,
        ..config()
    };
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, config.clone(), true);
    fill(&mut log, 5);
    let deleted = log.apply_retention(i64::MAX).unwrap();
    assert_eq!(deleted.len(), 1, "segments of 2, 2, 1 batches keep 3 >= 2");
    assert!(!log_path(&dir, 0).exists(), "out of the log at once");
    let renamed = dir.join(format!("{:020}.log.deleted", 0));
    assert!(renamed.exists());
    // A crash now: open removes the leftovers.
    drop(log);
    let log = open(&dir, config, false);
    assert!(!renamed.exists());
    assert_eq!(log.log_start_offset(), 6);
    // The late unlink finds nothing and says so.
    assert!(deleted.into_iter().all(|d| d.remove().is_err()));
}

#[test]
fn retention_by_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len() * 2,
        retention_bytes: (batch_len() * 5) as i64,
        retention_ms: -1,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    fill(&mut log, 9); // segments of 2,2,2,2,1 batches
    assert_eq!(retain(&mut log, i64::MAX), 2);
    assert_eq!(log.log_start_offset(), 12);
    assert_eq!(log.size_bytes(), batch_len() * 5);
    assert!(!log_path(&partition_dir(&tmp), 0).exists());
    assert!(matches!(
        log.read(11, 100, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(batches_in(&log.read(12, u32::MAX, false).unwrap()).len(), 5);
    assert_eq!(retain(&mut log, i64::MAX), 0);
}

#[test]
fn retention_by_time_rolls_expired_active() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let config = LogConfig {
        segment_bytes: batch_len() * 2,
        retention_ms: 100,
        ..config()
    };
    let mut log = open(&dir, config, true);
    fill(&mut log, 5); // timestamps 1000..1040; segments at 0, 6, 12
    assert_eq!(retain(&mut log, 1100), 0);
    assert_eq!(retain(&mut log, 1115), 1); // segment 0 (max 1010) expired
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(retain(&mut log, 1200), 2); // all, after rolling the active one
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (15, 15, 0)
    );
    assert_eq!(log.read(15, 100, true).unwrap().bytes, 0);
    assert_eq!(
        log.append(&build_simple_batch(0, 1, 5), 0)
            .unwrap()
            .base_offset,
        15
    );
    log.close().unwrap();
    drop(log);
    let log = open(&dir, LogConfig::default(), false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (15, 16));
}

#[test]
fn delete_removes_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, config(), true);
    fill(&mut log, 2);
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn sparse_index_lookup_scans_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: (batch_len() * 3) as u32,
        ..LogConfig::default()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    fill(&mut log, 20);
    for offset in 0..60 {
        let first = batches_in(&log.read(offset, 1, true).unwrap());
        assert_eq!(
            first,
            vec![(offset / 3 * 3, offset / 3 * 3 + 2)],
            "offset {offset}"
        );
    }
}

#[test]
fn retention_without_timestamps_uses_file_time() {
    let tmp = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: batch_len(),
        retention_ms: 60_000,
        ..config()
    };
    let mut log = open(&partition_dir(&tmp), config, true);
    for _ in 0..3 {
        log.append(&build_simple_batch(0, 3, -1), 0).unwrap();
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(retain(&mut log, now_ms), 0);
    assert_eq!(retain(&mut log, now_ms + 3_600_000), 3);
    assert_eq!(log.log_start_offset(), 9);
}

/// Found by the `segment_recovery` fuzz target: a CRC-valid batch whose
/// offsets lie more than u32::MAX past its segment's base (indexes hold u32
/// deltas) panicked recovery; it is corrupt, and recovery cuts it off.
#[test]
fn recovery_cuts_a_batch_past_the_segments_offset_range() {
    let far = i64::from(u32::MAX) + 7;
    for clean in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = partition_dir(&tmp);
        fs::create_dir_all(&dir).unwrap();
        let first = build_simple_batch(0, 3, 1000);
        let log_bytes = [&first[..], &build_simple_batch(far, 1, 1010)[..]].concat();
        fs::write(log_path(&dir, 0), &log_bytes).unwrap();
        // Indexes present, so a clean open trusts segment 0 and only scans
        // its tail; segment `far + 1` makes 0 a closed segment.
        fs::write(segment_path(&dir, 0, "index"), b"").unwrap();
        fs::write(segment_path(&dir, 0, "timeindex"), b"").unwrap();
        fs::write(
            log_path(&dir, far + 1),
            build_simple_batch(far + 1, 1, 1020),
        )
        .unwrap();
        let log = open(&dir, config(), clean);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 3));
        assert_eq!(
            fs::metadata(log_path(&dir, 0)).unwrap().len(),
            first.len() as u64
        );
        assert!(!log_path(&dir, far + 1).exists());
        assert_eq!(batches_in(&log.read(0, u32::MAX, false).unwrap()), [(0, 2)]);
    }
}

fn prepared(log: &mut PartitionLog, records: Bytes, now: i64) -> PreparedAppend {
    let checked = crate::record::Validated::check(records, u32::MAX).unwrap();
    match log
        .prepare_append(&checked, now, AppendOrigin::Client)
        .unwrap()
    {
        Prepared::Write(p) => p,
        Prepared::Duplicate(_) => panic!("not a retry"),
    }
}

#[test]
fn a_prepared_append_is_invisible_until_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(&partition_dir(&tmp), config(), true);
    fill(&mut log, 1);
    let p = prepared(&mut log, build_simple_batch(0, 2, 5), 9);
    assert!(log.write_in_flight());
    // Written (as the blocking thread would) but not finished: readers
    // and the log end still stop before it.
    let written = p.write.run();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(
        batches_in(&log.read(0, u32::MAX, false).unwrap()),
        vec![(0, 2)]
    );
    let result = log.finish_append(p, written).unwrap();
    assert!(!log.write_in_flight());
    assert_eq!((result.base_offset, result.last_offset), (3, 4));
    assert_eq!(
        batches_in(&log.read(0, u32::MAX, false).unwrap()),
        vec![(0, 2), (3, 4)]
    );
    log.check_invariants();
}

#[test]
fn a_truncation_during_the_write_voids_the_append() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, config(), true);
    fill(&mut log, 2);
    let p = prepared(&mut log, build_simple_batch(0, 2, 5), 9);
    // The replica stepped down and cut its log while the batch was written.
    log.truncate_to(3).unwrap();
    let written = p.write.run();
    assert!(matches!(
        log.finish_append(p, written),
        Err(StorageError::Superseded)
    ));
    assert_eq!(log.log_end_offset(), 3);
    // The void bytes past the end are cut before the next append lands
    // where the log ends.
    let next = log.append(&build_simple_batch(0, 1, 5), 10).unwrap();
    assert_eq!((next.base_offset, next.last_offset), (3, 3));
    assert_eq!(
        batches_in(&log.read(0, u32::MAX, false).unwrap()),
        vec![(0, 2), (3, 3)]
    );
    log.close().unwrap();
    let reopened = open(&dir, config(), true);
    assert_eq!(reopened.log_end_offset(), 4);
    let one_record = build_simple_batch(0, 1, 5).len() as u64;
    assert_eq!(reopened.size_bytes(), batch_len() + one_record);
}

/// With `preallocate`, the active segment's file is allocated up to
/// `segment_bytes` ahead of its batches; a roll and a close give the rest
/// back, an open preallocates the active segment again, and an open after
/// a crash trims the zeros and keeps every batch.
#[test]
fn preallocated_segments_are_trimmed_at_roll_close_and_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let segment_bytes = batch_len() * 4;
    let config = LogConfig {
        segment_bytes,
        preallocate: true,
        ..config()
    };
    let file_len = |base| fs::metadata(log_path(&dir, base)).unwrap().len();
    let mut log = open(&dir, config.clone(), true);
    assert_eq!(file_len(0), segment_bytes, "a new log's segment");
    fill(&mut log, 6); // 4 batches in segment 0, 2 in segment 12
    assert_eq!(log.segment_count(), 2);
    assert_eq!(file_len(0), 4 * batch_len(), "a roll trims");
    assert_eq!(file_len(12), segment_bytes, "the new active segment");
    assert_eq!(batches_in(&log.read(0, u32::MAX, false).unwrap()).len(), 6);
    log.close().unwrap();
    assert_eq!(file_len(12), 2 * batch_len(), "close trims");

    let mut log = open(&dir, config.clone(), true);
    assert_eq!(log.log_end_offset(), 18);
    assert_eq!(file_len(12), segment_bytes, "preallocated again at open");
    fill(&mut log, 1);
    drop(log); // a crash: nothing trims the zeros
    assert_eq!(file_len(12), segment_bytes);

    let log = open(&dir, config, false);
    assert_eq!(log.log_end_offset(), 21, "every batch kept");
    assert_eq!(log.segment_count(), 2);
    let batches = batches_in(&log.read(0, u32::MAX, false).unwrap());
    assert_eq!(batches.len(), 7);
    assert_eq!(batches.last(), Some(&(18, 20)));
    assert_eq!(file_len(12), segment_bytes, "trimmed, then preallocated");
}

/// A deleted partition's log is dropped as it is: no index, snapshot or
/// recovery point written, no file touched (a close here held the shard
/// for seconds when a topic of thousands of partitions was deleted).
#[test]
fn a_discarded_log_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, config(), true);
    fill(&mut log, 3);
    let files = || -> Vec<(String, u64, u64, i64)> {
        let mut v: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, m.ino(), m.len(), m.mtime_nsec())
            })
            .collect();
        v.sort();
        v
    };
    let before = files();
    log.discard();
    drop(log);
    assert_eq!(files(), before);
    assert_eq!(recovery_point(&dir), 0);
}

/// A log never appended to closes and reopens without creating a file:
/// its indexes are empty, it has no producers and its recovery point is 0,
/// each what a missing file reads as (at 100,000 idle partitions those
/// files were most of a clean stop). Once written, it closes as any log.
#[test]
fn a_log_never_written_closes_and_opens_with_its_segment_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let names = || file_names(&dir);
    let only_segment = vec![format!("{:020}.log", 0)];
    let mut log = open(&dir, config(), true);
    log.close().unwrap();
    drop(log);
    assert_eq!(names(), only_segment);
    let mut log = open(&dir, config(), true);
    assert_eq!(names(), only_segment, "a clean open rebuilt a file");
    assert_eq!(log.log_end_offset(), 0);
    log.close().unwrap();
    drop(log);
    assert_eq!(names(), only_segment);

    let mut log = open(&dir, config(), true);
    fill(&mut log, 2);
    log.close().unwrap();
    drop(log);
    assert_eq!(recovery_point(&dir), 6);
    let after = names();
    for suffix in [".index", ".timeindex", ".snapshot"] {
        assert!(
            after.iter().any(|n| n.ends_with(suffix)),
            "no {suffix} file in {after:?}"
        );
    }
    let log = open(&dir, config(), true);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.offset_for_timestamp(1010).unwrap(), Some((3, 1010)));
}

#[test]
fn a_never_written_log_opens_without_opening_its_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let handles = FileHandles::new(4);
    let reopen = || PartitionLog::open_in(dir.clone(), config(), true, &handles).unwrap();
    let mut log = reopen();
    log.close().unwrap();
    drop(log);
    let opens = handles.opens();
    let mut log = reopen();
    assert_eq!(handles.open_count(), 0, "an idle log holds no descriptor");
    assert_eq!(handles.opens(), opens, "nor opened one to close it again");
    // Its first append opens the segment through the cache.
    fill(&mut log, 1);
    assert_eq!(handles.open_count(), 1);
    assert_eq!(
        batches_in(&log.read(0, u32::MAX, false).unwrap()),
        vec![(0, 2)]
    );
    log.close().unwrap();
    drop(log);
    let log = reopen();
    assert_eq!(
        handles.open_count(),
        1,
        "a written segment's tail is read at open"
    );
    assert_eq!(
        batches_in(&log.read(0, u32::MAX, false).unwrap()),
        vec![(0, 2)]
    );
}

/// Pages of `path` in the page cache from `start` for `len` bytes.
fn cached_pages(path: &Path, start: u64, len: u64) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(path).unwrap();
    let page = 4096;
    assert_eq!(start % page, 0);
    let pages = len.div_ceil(page) as usize;
    let mut resident = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of an open file, unmapped below;
    // mincore only reads the page tables.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            start as libc::off_t,
        );
        assert_ne!(map, libc::MAP_FAILED);
        assert_eq!(libc::mincore(map, len as usize, resident.as_mut_ptr()), 0);
        libc::munmap(map, len as usize);
    }
    resident.iter().map(|r| r & 1 == 1).collect()
}

/// A batch of 32 records of 1 KiB values (~33 KiB).
fn big_batch(timestamp: i64) -> Bytes {
    let value = vec![b'v'; 1024];
    let specs: Vec<_> = (0..32)
        .map(|_| (None, Some(value.as_slice()), timestamp, &[][..]))
        .collect();
    build_batch(0, &specs)
}

/// A log's config with page-cache fills of up to 1 MiB.
fn prefault_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        prefault_bytes: 1 << 20,
        ..config()
    }
}

/// With `prefault_bytes`, an append of 16 KiB or more asks for four such
/// appends of page cache past the end (a trickle asks for none); the
/// file is extended with a hole over that window for it, the fill
/// caches those pages without changing what the log reads, and a roll,
/// a close and a crash's open trim the hole as they trim preallocated
/// blocks.
#[test]
fn prefaults_fill_the_cache_ahead_and_are_trimmed_like_preallocation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let segment_bytes = 4 << 20;
    let config = prefault_config(segment_bytes);
    let file_len = |base| fs::metadata(log_path(&dir, base)).unwrap().len();
    let mut log = open(&dir, config.clone(), true);
    fill(&mut log, 2);
    assert!(log.take_prefault().is_none(), "a trickle gets no window");
    assert_eq!(file_len(0), 2 * batch_len());

    let big = big_batch(2000);
    log.append(&big, 2000).unwrap();
    let end = log.active().size;
    let job = log.take_prefault().expect("a window after a big append");
    assert_eq!(
        job.range(),
        end..end + 4 * big.len() as u64,
        "four appends ahead"
    );
    assert_eq!(
        file_len(0),
        end + 4 * big.len() as u64,
        "extended with a hole to the window's end only"
    );
    assert!(
        log.take_prefault().is_none(),
        "the window is already asked for"
    );

    let first_page = end.div_ceil(4096) * 4096;
    let ahead = job.bytes() - (first_page - end);
    assert!(
        cached_pages(&log_path(&dir, 0), first_page, ahead)
            .iter()
            .all(|cached| !cached),
        "a hole is not cached before the fill"
    );
    job.run().unwrap();
    assert!(
        cached_pages(&log_path(&dir, 0), first_page, ahead)
            .iter()
            .all(|cached| *cached),
        "the fill caches the window"
    );
    assert_eq!(log.log_end_offset(), 38);
    let batches = batches_in(&log.read(0, u32::MAX, false).unwrap());
    assert_eq!(batches.len(), 3, "the zeros past the end are not read");

    // Two more appends leave less than half the window: the rest is asked.
    log.append(&big, 2001).unwrap();
    assert!(log.take_prefault().is_none());
    log.append(&big, 2002).unwrap();
    let next = log.take_prefault().expect("the window moves on");
    assert_eq!(next.bytes(), 2 * big.len() as u64);
    assert_eq!(file_len(0), next.range().end, "the hole moves with it");
    log.close().unwrap();
    assert_eq!(file_len(0), log.active().size, "close trims");

    let mut log = open(&dir, config.clone(), true);
    assert_eq!(log.log_end_offset(), 102);
    log.append(&big, 2003).unwrap();
    let job = log.take_prefault().unwrap();
    job.run().unwrap();
    let kept = log.active().size;
    drop(log); // a crash: nothing trims the hole
    assert_eq!(file_len(0), job.range().end);
    let log = open(&dir, config, false);
    assert_eq!(log.log_end_offset(), 134, "every batch kept");
    assert_eq!(file_len(0), kept, "the hole cut at open");
}

/// Drops `path`'s pages from the page cache (written back first).
fn evict_cached(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(path).unwrap();
    file.sync_data().unwrap();
    // SAFETY: a plain syscall on an open fd.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

/// The hole reaches only as far as the fills do, so reading the batches
/// from the disk cannot read ahead past it: a hole to `segment.bytes` let
/// a fetch's sendfile read ahead into it on the shard thread, up to the
/// device's `read_ahead_kb` of new pages at once.
#[test]
fn reads_of_a_prefaulted_segment_do_not_read_ahead_past_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let mut log = open(&dir, prefault_config(64 << 20), true);
    let big = big_batch(2000);
    let mut window_end = 0;
    for i in 0..8 {
        log.append(&big, 2000 + i).unwrap();
        // Asked for, never run: the hole holds no cached page.
        if let Some(job) = log.take_prefault() {
            window_end = job.range().end;
        }
    }
    let path = log_path(&dir, 0);
    assert_eq!(fs::metadata(&path).unwrap().len(), window_end);
    assert!(window_end > log.active().size);

    evict_cached(&path);
    assert_eq!(
        batches_in(&log.read(0, u32::MAX, false).unwrap()).len(),
        8,
        "read from the disk"
    );
    let past_window = window_end.div_ceil(4096) * 4096;
    let cached = cached_pages(&path, past_window, 16 << 20);
    assert!(
        cached.iter().all(|c| !c),
        "no readahead past the window: {} pages",
        cached.iter().filter(|c| **c).count()
    );
}

/// A window stops at `segment.bytes`: the fills there cover the rest of
/// the segment once, then none is asked for until the roll, and the next
/// segment starts its own.
#[test]
fn prefaults_stop_at_the_segment_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let big = big_batch(2000);
    let batch = big.len() as u64;
    let segment_bytes = 6 * batch + batch / 2;
    let config = prefault_config(segment_bytes);
    let mut log = open(&dir, config, true);
    let mut filled_to = 0;
    for i in 0..6 {
        log.append(&big, 2000 + i).unwrap();
        if let Some(job) = log.take_prefault() {
            filled_to = job.range().end;
            job.run().unwrap();
        }
        assert!(filled_to <= segment_bytes, "no fill past segment.bytes");
    }
    assert_eq!(filled_to, segment_bytes, "filled to the segment's end");
    assert_eq!(log.segment_count(), 1);
    log.append(&big, 2006).unwrap();
    assert_eq!(log.segment_count(), 2, "rolled");
    let job = log.take_prefault().expect("the new segment's window");
    assert_eq!(job.range(), batch..5 * batch);
    assert_eq!(
        fs::metadata(log_path(&dir, 0)).unwrap().len(),
        6 * batch,
        "the roll trimmed the hole"
    );
}

/// Appends the `n`th batch [`fill`] would, at the log end.
fn append_batch(log: &mut PartitionLog, n: i64) {
    let ts = 1000 + 10 * n;
    log.append(&build_simple_batch(0, 3, ts), ts).unwrap();
}

/// Every read, by offset or by timestamp, answers the same from each
/// offset and each timestamp of `log`'s `batches` (3 records each, the
/// timestamps of [`fill`]).
fn assert_reads_whole(log: &PartitionLog, batches: i64) {
    for offset in 0..batches * 3 {
        let expected: Vec<(i64, i64)> = (offset / 3..batches).map(|b| (b * 3, b * 3 + 2)).collect();
        let read = batches_in(&log.read(offset, u32::MAX, false).unwrap());
        assert_eq!(read, expected, "offset {offset}");
        // A budget under the rest cuts the read where the index says.
        let one = batches_in(&log.read(offset, batch_len() as u32 + 1, false).unwrap());
        assert_eq!(one, expected[..1], "offset {offset}, one batch's budget");
    }
    for batch in 0..batches {
        let ts = 1000 + 10 * batch;
        assert_eq!(
            log.offset_for_timestamp(ts).unwrap(),
            Some((batch * 3, ts)),
            "timestamp {ts}"
        );
    }
}

/// The (released, entries in memory) of each segment, oldest first.
fn index_places(log: &PartitionLog) -> Vec<(bool, usize)> {
    log.segments
        .values()
        .map(|s| (s.indexes_released(), s.index.len() + s.time_index.len()))
        .collect()
}

#[test]
fn rolled_segments_read_their_indexes_from_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let config = LogConfig {
        segment_bytes: batch_len() * 3,
        ..config()
    };
    let mut log = open(&dir, config.clone(), true);
    fill(&mut log, 10);
    // 3 + 3 + 3 + 1 batches: each rolled segment indexed its second and
    // third batch, and keeps none of that in memory.
    let rolled = (true, 0);
    assert_eq!(index_places(&log), [rolled, rolled, rolled, (false, 0)]);
    assert_reads_whole(&log, 10);
    assert!(log.segments.values().all(|s| !s.index_file_failed()));
    log.close().unwrap();

    // A clean open reads and checks the files, then lets the rolled ones go.
    let mut log = open(&dir, config.clone(), true);
    assert_eq!(index_places(&log), [rolled, rolled, rolled, (false, 1)]);
    assert_reads_whole(&log, 10);
    append_batch(&mut log, 10);
    assert_eq!(
        index_places(&log)[3],
        (false, 3),
        "the active one's in memory"
    );

    // A truncation into a rolled segment makes it the active one again,
    // its indexes back in memory for the appends that follow.
    log.truncate_to(5 * 3).unwrap();
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(index_places(&log), [rolled, (false, 2)]);
    append_batch(&mut log, 5);
    log.roll().unwrap();
    assert_eq!(index_places(&log), [rolled, rolled, (false, 0)]);
    assert_reads_whole(&log, 6);
    assert!(log.segments.values().all(|s| !s.index_file_failed()));

    // An index file gone from under the broker: reads search from the
    // segment start instead, and are as right.
    fs::remove_file(segment_path(&dir, 0, super::segment::INDEX_SUFFIX)).unwrap();
    fs::remove_file(segment_path(&dir, 0, super::segment::TIME_INDEX_SUFFIX)).unwrap();
    assert_reads_whole(&log, 6);
    assert!(log.segments[&0].index_file_failed());
}

/// A partition holding less than one index interval of batches stops and
/// starts with no index file: its open takes the missing files as empty
/// indexes and rebuilds nothing, reads and timestamp searches answer as
/// before, and once it passes an interval its stop writes both files.
#[test]
fn a_segment_under_one_index_interval_keeps_no_index_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partition_dir(&tmp);
    let small = LogConfig {
        index_interval_bytes: 4096,
        ..LogConfig::default()
    };
    let index_files = |dir: &Path| -> Vec<String> {
        file_names(dir)
            .into_iter()
            .filter(|name| name.ends_with("index"))
            .collect()
    };
    let mut log = open(&dir, small.clone(), true);
    fill(&mut log, 3);
    assert!(3 * batch_len() < 4096);
    log.close().unwrap();
    drop(log);
    assert_eq!(index_files(&dir), Vec::<String>::new());

    let before = names_and_inodes(&dir);
    let mut log = open(&dir, small.clone(), true);
    assert_eq!(names_and_inodes(&dir), before, "a clean open wrote a file");
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(
        batches_in(&log.read(4, u32::MAX, false).unwrap()),
        vec![(3, 5), (6, 8)]
    );
    assert_eq!(log.offset_for_timestamp(1010).unwrap(), Some((3, 1010)));
    assert_eq!(log.offset_for_timestamp(1021).unwrap(), None);

    // Past one interval: a stop writes both, and an open reads them.
    let batches = 4096 / batch_len() as usize + 1;
    fill(&mut log, batches);
    log.close().unwrap();
    drop(log);
    assert_eq!(index_files(&dir).len(), 2, "{:?}", file_names(&dir));
    let log = open(&dir, small, true);
    assert_eq!(log.log_end_offset(), 9 + 3 * batches as i64);
    let last = log.log_end_offset() - 1;
    assert_eq!(
        batches_in(&log.read(last, u32::MAX, false).unwrap()),
        vec![(last - 2, last)]
    );
}

/// `segment_index_bytes` rolls a segment whose offset or time index is
/// full (8- and 12-byte entries, as Kafka counts them), whatever its size.
#[test]
fn a_full_index_rolls_the_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let roomy = tmp.path().join("roomy-0");
    let mut log = open(&roomy, config(), true);
    fill(&mut log, 10);
    assert_eq!(log.segment_count(), 1, "one index entry a batch fits");
    let tight = tmp.path().join("tight-0");
    let (offsets_max, times_max) = (3, 2);
    let config = LogConfig {
        segment_index_bytes: 24,
        ..config()
    };
    assert_eq!(config.index_entries_max(), (offsets_max, times_max));
    let mut log = open(&tight, config, true);
    fill(&mut log, 10);
    // The first batch of a segment takes no offset index entry.
    let batches_max = offsets_max + 1;
    assert!(
        log.segment_count() >= 10usize.div_ceil(batches_max),
        "{}",
        log.segment_count()
    );
    for segment in log.segments.values() {
        assert!(segment.index.len() <= offsets_max && segment.time_index.len() <= times_max);
    }
}

/// `segment_jitter_ms` makes each segment roll up to that much early, by
/// a share that differs between segments and partitions, never more than
/// `segment_ms`.
#[test]
fn roll_jitter_differs_per_segment_within_its_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let jittered = |name: &str, jitter_ms: i64| {
        let config = LogConfig {
            segment_ms: 1_000,
            segment_jitter_ms: jitter_ms,
            ..config()
        };
        open(&tmp.path().join(name), config, true)
    };
    let none = jittered("none-0", 0);
    assert!((0..50).all(|base| none.roll_jitter_ms(base) == 0));
    let log = jittered("some-0", 5_000);
    let draws: Vec<i64> = (0..50).map(|base| log.roll_jitter_ms(base)).collect();
    assert!(draws.iter().all(|j| (0..1_000).contains(j)), "{draws:?}");
    assert!(draws.iter().any(|j| *j != draws[0]), "{draws:?}");
    let other = jittered("other-0", 5_000);
    assert!((0..50).any(|base| other.roll_jitter_ms(base) != log.roll_jitter_ms(base)));
    // A segment as old as segment_ms less its jitter rolls.
    let mut log = jittered("rolls-0", 5_000);
    log.append(&build_simple_batch(0, 1, 0), 0).unwrap();
    let due = 1_000 - log.roll_jitter_ms(0);
    assert!(!log.should_roll(1, 1, due - 1));
    assert!(log.should_roll(1, 1, due));
}

/// A compacted log's active segment rolls by `max_compaction_lag_ms` when
/// that is sooner than `segment_ms` (only closed segments are compacted,
/// so a record waits at most about that long); a log that is not
/// compacted keeps to `segment_ms`.
#[test]
fn a_compacted_log_rolls_by_its_max_compaction_lag() {
    let tmp = tempfile::tempdir().unwrap();
    let with = |name: &str, compact: bool| {
        let config = LogConfig {
            segment_ms: 10_000,
            max_compaction_lag_ms: 1_000,
            cleanup_compact: compact,
            ..config()
        };
        let mut log = open(&tmp.path().join(name), config, true);
        log.append(&build_simple_batch(0, 1, 0), 0).unwrap();
        log
    };
    let compacted = with("compacted-0", true);
    assert!(!compacted.should_roll(1, 1, 999));
    assert!(compacted.should_roll(1, 1, 1_000));
    let deleted = with("deleted-0", false);
    assert!(!deleted.should_roll(1, 1, 9_999));
    assert!(deleted.should_roll(1, 1, 10_000));
}
