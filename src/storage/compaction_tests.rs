//! Tests of log compaction through `PartitionLog`'s API, on real files.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

use super::recovery::check_stored_header;
use super::segment::{cleaned_path, segment_path};
use super::*;
use crate::compression::{decompress, recompress_batch, Codec};
use crate::record::build::build_batch;
use crate::record::{compute_crc, BatchHeader, Records, BATCH_HEADER_LEN};

/// (offset, key, value, timestamp) of one record.
type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>, i64);

fn compact_config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        segment_bytes: 600,
        cleanup_compact: true,
        cleanup_delete: false,
        retention_ms: 0,
        delete_retention_ms: 100,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> PartitionLog {
    // One open file: compaction reads a segment while writing another.
    let handles = FileHandles::new(1);
    PartitionLog::open_in(dir.to_path_buf(), config, clean, &handles).unwrap()
}

/// One batch holding `records` as (key, value); timestamps from `ts`.
fn keyed(records: &[(&str, Option<&str>)], ts: i64) -> Bytes {
    let specs: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            (
                Some(k.as_bytes()),
                v.map(str::as_bytes),
                ts + i as i64,
                &[][..],
            )
        })
        .collect();
    build_batch(0, &specs)
}

/// Every record readable from `offset` on, checking each batch on the way
/// (CRC, stored-header rules, records count, offsets inside the header's range).
fn records_from(log: &PartitionLog, offset: i64) -> Vec<Rec> {
    let plan = log.read(offset, u32::MAX, true).unwrap();
    let mut out = Vec::new();
    for slice in &plan.slices {
        let mut buf = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut buf, slice.position).unwrap();
        let mut pos = 0;
        while pos < buf.len() {
            let header = BatchHeader::parse(&buf[pos..]).unwrap();
            let batch = &buf[pos..pos + header.total_len()];
            assert_eq!(
                compute_crc(batch),
                header.crc,
                "CRC of batch {}",
                header.base_offset
            );
            check_stored_header(&header).unwrap();
            let section = if header.is_compressed() {
                let codec = Codec::from_attributes(header.attributes).unwrap();
                decompress(codec, &batch[BATCH_HEADER_LEN..], 1 << 20).unwrap()
            } else {
                batch[BATCH_HEADER_LEN..].to_vec()
            };
            let mut records = Records::new(&section, header.records_count);
            for record in records.by_ref() {
                let r = record.unwrap();
                let at = header.base_offset + i64::from(r.offset_delta);
                assert!(
                    at <= header.last_offset(),
                    "record inside its batch's range"
                );
                out.push((
                    at,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                    header.base_timestamp + r.timestamp_delta,
                ));
            }
            assert_eq!(records.remaining(), 0, "records fill the batch");
            pos += header.total_len();
        }
    }
    assert!(
        out.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets strictly increase"
    );
    out
}

/// Runs compaction rounds with a small budget until none is under way,
/// the work they hand out run inline (the shard runs it on a blocking
/// thread).
fn compact_fully(log: &mut PartitionLog, now_ms: i64) -> CompactionStats {
    let mut total = CompactionStats::default();
    let mut add = |stats: CompactionStats| {
        total.bytes_read += stats.bytes_read;
        total.segments_cleaned += stats.segments_cleaned;
        total.records_dropped += stats.records_dropped;
    };
    for _ in 0..10_000 {
        let stats = log.compact(now_ms).unwrap();
        add(stats);
        let more = match log.take_compaction_work(150).unwrap() {
            Some(work) => {
                let worked = log.finish_compaction_work(work.run()).unwrap();
                add(worked);
                worked.more_work
            }
            None => stats.more_work,
        };
        if !more {
            return total;
        }
    }
    panic!("compaction never finished");
}

/// 60 updates of keys k0..k3, two per batch, over several segments.
fn fill_updates(log: &mut PartitionLog) {
    for i in 0..30 {
        let (a, b) = (format!("k{}", (2 * i) % 4), format!("k{}", (2 * i + 1) % 4));
        let (va, vb) = (format!("v{}", 2 * i), format!("v{}", 2 * i + 1));
        let ts = 1000 + 10 * i;
        log.append(&keyed(&[(&a, Some(&va)), (&b, Some(&vb))], ts), ts)
            .unwrap();
    }
}

/// Checks the compaction result against the log before it: every survivor
/// is the record that was at its offset, the closed segments hold at most
/// one record per key, and every key's newest record survives.
fn check_compacted(before: &[Rec], after: &[Rec], active_base: i64) {
    let original: HashMap<i64, &Rec> = before.iter().map(|r| (r.0, r)).collect();
    for r in after {
        assert_eq!(Some(&r), original.get(&r.0), "record at {} unchanged", r.0);
    }
    let mut newest: HashMap<&Option<Vec<u8>>, i64> = HashMap::new();
    for r in before {
        newest.insert(&r.1, r.0);
    }
    for (key, offset) in &newest {
        assert!(
            after.iter().any(|r| r.0 == *offset),
            "newest record of {key:?} at {offset} kept"
        );
    }
    let mut seen = std::collections::HashSet::new();
    for r in after.iter().filter(|r| r.0 < active_base) {
        assert!(
            seen.insert(r.1.clone()),
            "one record of {:?} below the active segment",
            r.1
        );
    }
}

/// Only the newest record per key stays in the closed segments; offsets,
/// log start, log end and every survivor's bytes are unchanged.
#[test]
fn keeps_latest_per_key_with_offsets_preserved() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    assert!(log.segment_count() > 3, "several segments");
    let before = records_from(&log, 0);
    let (start, end, size) = (
        log.log_start_offset(),
        log.log_end_offset(),
        log.size_bytes(),
    );

    let stats = compact_fully(&mut log, 5000);
    assert!(
        stats.segments_cleaned > 0 && stats.records_dropped > 0,
        "{stats:?}"
    );
    let after = records_from(&log, 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
    assert!(log.size_bytes() < size, "the log shrank");
    check_compacted(&before, &after, log.active().base_offset);

    // Nothing new: no round starts, nothing changes.
    assert_eq!(log.compact(6000).unwrap(), CompactionStats::default());
    assert_eq!(records_from(&log, 0), after);

    // Appends continue at the log end and a later round folds them in.
    fill_updates(&mut log);
    assert_eq!(log.log_end_offset(), end + 60);
    let before = records_from(&log, 0);
    compact_fully(&mut log, 7000);
    check_compacted(&before, &records_from(&log, 0), log.active().base_offset);
}

/// A fetch from a removed offset starts at the next surviving record, and
/// timestamp lookups land on survivors.
#[test]
fn reads_and_timestamp_lookups_across_removed_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    let before = records_from(&log, 0);
    compact_fully(&mut log, 5000);
    let after = records_from(&log, 0);
    let removed: Vec<&Rec> = before.iter().filter(|r| !after.contains(r)).collect();
    assert!(!removed.is_empty());
    for r in removed {
        let got = records_from(&log, r.0);
        let expected: Vec<Rec> = after.iter().filter(|a| a.0 > r.0).cloned().collect();
        // A kept batch may hold records below the asked offset; a consumer skips them.
        let got: Vec<Rec> = got.into_iter().filter(|g| g.0 >= r.0).collect();
        assert_eq!(got, expected, "read from removed offset {}", r.0);
        let found = log.offset_for_timestamp(r.3).unwrap();
        let next = after.iter().find(|a| a.3 >= r.3).map(|a| (a.0, a.3));
        assert_eq!(found, next, "timestamp {} of removed offset {}", r.3, r.0);
    }
    assert_eq!(records_from(&log, log.log_start_offset()), after);
}

/// A tombstone stays for delete_retention_ms after its segment was first
/// cleaned, then goes (with every older record of its key).
#[test]
fn tombstones_expire_after_delete_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    log.append(&keyed(&[("k1", None)], 2000), 2000).unwrap();
    let tombstone_at = log.log_end_offset() - 1;
    fill_updates_other(&mut log);
    compact_fully(&mut log, 10_000);
    let has_k1 = |log: &PartitionLog| -> Vec<Rec> {
        records_from(log, 0)
            .into_iter()
            .filter(|r| r.1.as_deref() == Some(b"k1"))
            .collect()
    };
    let k1 = has_k1(&log);
    assert_eq!(k1.len(), 1, "only the tombstone of k1: {k1:?}");
    assert_eq!((k1[0].0, k1[0].2.clone()), (tombstone_at, None));

    // Not yet due: a round for new dirty data keeps it.
    fill_updates_other(&mut log);
    compact_fully(&mut log, 10_050);
    assert_eq!(
        has_k1(&log).len(),
        1,
        "tombstone kept within delete.retention.ms"
    );

    // Due: a round starts without new data and drops it.
    let stats = compact_fully(&mut log, 10_200);
    assert!(stats.records_dropped >= 1, "{stats:?}");
    assert!(has_k1(&log).is_empty(), "tombstone dropped");
}

/// Updates of keys other than k1, enough to roll a few segments.
fn fill_updates_other(log: &mut PartitionLog) {
    for i in 0..20 {
        let key = format!("x{}", i % 2);
        let ts = 3000 + i;
        log.append(&keyed(&[(&key, Some("value"))], ts), ts)
            .unwrap();
    }
}

/// A closed segment whose records all went is removed, unless it is the
/// first, which stays (empty) so the log start does not move.
#[test]
fn emptied_segments_go_but_the_log_start_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    let segments = log.segment_count();
    compact_fully(&mut log, 5000);
    assert!(log.segment_count() < segments, "emptied segments removed");
    assert_eq!(log.log_start_offset(), 0);
    assert!(dir.join(format!("{:020}.log", 0)).exists());
    let first = records_from(&log, 0);
    assert_eq!(records_from(&log, log.log_start_offset()), first);
}

/// Compaction survives a clean reopen, an unclean one that rescans every
/// segment (gaps between batches are not corruption), and a leftover
/// `.cleaned` file from a crash mid-rewrite is deleted at open.
#[test]
fn recovery_after_compaction_and_leftover_cleaned_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    compact_fully(&mut log, 5000);
    let after = records_from(&log, 0);
    let end = log.log_end_offset();
    let bases: Vec<i64> = log.segments.keys().copied().collect();
    log.close().unwrap();
    drop(log);

    let log = open(&dir, compact_config(), true);
    assert_eq!(records_from(&log, 0), after, "clean reopen");
    drop(log);

    fs::write(dir.join(RECOVERY_POINT_FILE), "0").unwrap();
    for base in &bases {
        let _ = fs::remove_file(segment_path(&dir, *base, "index"));
    }
    let leftover = cleaned_path(&dir, bases[0]);
    fs::write(&leftover, b"half a segment").unwrap();
    let log = open(&dir, compact_config(), false);
    assert!(!leftover.exists(), "leftover .cleaned removed");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(records_from(&log, 0), after, "unclean reopen rescans");
}

/// A round interrupted by a config change leaves no `.cleaned` file, and a
/// non-compacted log is never touched.
#[test]
fn compaction_off_is_a_no_op_and_abandons_a_round() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    let before = records_from(&log, 0);
    // Map the keys and start the first rewrite.
    let mut stats = log.compact(5000).unwrap();
    for _ in 0..1_000 {
        if !stats.more_work || cleaned_path(&dir, 0).exists() {
            break;
        }
        if let Some(work) = log.take_compaction_work(60).unwrap() {
            log.finish_compaction_work(work.run()).unwrap();
        }
        stats = log.compact(5000).unwrap();
    }
    assert!(stats.more_work, "a round under way");
    assert!(cleaned_path(&dir, 0).exists(), "its first rewrite started");
    log.set_config(LogConfig {
        cleanup_compact: false,
        ..compact_config()
    });
    assert_eq!(log.compact(5000).unwrap(), CompactionStats::default());
    assert!(!cleaned_path(&dir, 0).exists(), "half-written file removed");
    assert_eq!(records_from(&log, 0), before);
}

/// Compact-only logs are not subject to time or size retention.
#[test]
fn compact_only_skips_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    let segments = log.segment_count();
    assert!(log.apply_retention(i64::MAX / 2).unwrap().is_empty());
    assert_eq!(log.segment_count(), segments);
    log.set_config(LogConfig {
        cleanup_delete: true,
        ..compact_config()
    });
    assert!(!log.apply_retention(i64::MAX / 2).unwrap().is_empty());
}

/// Compressed batches are filtered too: decompressed, the survivors'
/// bytes compressed again in the same codec.
#[test]
fn compressed_batches_are_compacted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    for i in 0..30 {
        let (va, vb) = (format!("v{}", 2 * i), format!("v{}", 2 * i + 1));
        let ts = 1000 + 10 * i;
        let plain = keyed(&[("a", Some(&va)), ("b", Some(&vb))], ts);
        let gzip = recompress_batch(&plain, Codec::Gzip, None, 1 << 20).unwrap();
        log.append(&gzip, ts).unwrap();
    }
    let before = records_from(&log, 0);
    let stats = compact_fully(&mut log, 5000);
    assert!(stats.records_dropped > 0);
    let after = records_from(&log, 0);
    check_compacted(&before, &after, log.active().base_offset);
}

/// A transactional copy of `batch` from producer `pid`.
fn in_txn(batch: &Bytes, pid: i64) -> Bytes {
    crate::record::build::with_producer(batch, pid, 0, 0, true)
}

fn marker(pid: i64, commit: bool) -> Bytes {
    let marker = crate::record::Marker {
        commit,
        coordinator_epoch: 0,
    };
    crate::record::build_marker(pid, 0, marker, 1000)
}

/// Neither an aborted nor an open transaction's record makes a committed
/// record of the same key go, and markers stay.
#[test]
fn transactions_never_make_committed_records_go() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = open(tmp.path(), compact_config(), true);
    log.append(
        &keyed(
            &[("a", Some("committed-a")), ("b", Some("committed-b"))],
            1000,
        ),
        1000,
    )
    .unwrap();
    // An aborted transaction overwrites a.
    log.append(&in_txn(&keyed(&[("a", Some("aborted-a"))], 1001), 7), 1001)
        .unwrap();
    log.append_marker(&marker(7, false), 1002).unwrap();
    // An open transaction overwrites b.
    log.append(&in_txn(&keyed(&[("b", Some("open-b"))], 1003), 8), 1003)
        .unwrap();
    for i in 0..20 {
        // Unrelated keys so the log rolls several segments.
        let k = format!("z{i}");
        log.append(
            &keyed(&[(&k, Some("filler-value-filler-value"))], 1004),
            1004,
        )
        .unwrap();
    }
    assert!(log.segment_count() > 2);
    compact_fully(&mut log, 5000);
    let after = records_from(&log, 0);
    let value_of = |v: &str| after.iter().any(|r| r.2.as_deref() == Some(v.as_bytes()));
    assert!(
        value_of("committed-a"),
        "an aborted write removed a committed one"
    );
    assert!(
        value_of("committed-b"),
        "an open transaction removed a committed one"
    );
    assert!(value_of("open-b"));
    assert_eq!(
        log.aborted_transactions(0, log.log_end_offset(), 10).len(),
        1
    );
    // The marker is still in the log.
    let plan = log.read(0, u32::MAX, true).unwrap();
    let mut markers = 0;
    for slice in &plan.slices {
        let mut buf = vec![0u8; slice.len as usize];
        slice.file.read_exact_at(&mut buf, slice.position).unwrap();
        let mut pos = 0;
        while pos < buf.len() {
            let header = BatchHeader::parse(&buf[pos..]).unwrap();
            markers += usize::from(header.is_control());
            pos += header.total_len();
        }
    }
    assert_eq!(markers, 1);
}

/// Work out while the round goes away (a close, a truncation) finds no
/// round when it answers: nothing is swapped in, no `.cleaned` file stays,
/// and the round hands out nothing else while its work is out.
#[test]
fn work_answered_after_the_round_went_away_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let mut log = open(&dir, compact_config(), true);
    fill_updates(&mut log);
    let before = records_from(&log, 0);
    let mut work = None;
    // Scans until the first rewrite step is handed out.
    for _ in 0..1_000 {
        log.compact(5000).unwrap();
        work = log.take_compaction_work(60).unwrap();
        if cleaned_path(&dir, 0).exists() {
            break;
        }
        let scan = work.take().expect("a scan step");
        log.finish_compaction_work(scan.run()).unwrap();
    }
    let work = work.expect("a rewrite step for the blocking thread");
    assert!(
        log.take_compaction_work(60).unwrap().is_none(),
        "one piece of work out at a time"
    );
    assert_eq!(
        log.compact(5000).unwrap(),
        CompactionStats::default(),
        "the round waits"
    );
    log.close().unwrap();
    assert!(
        !cleaned_path(&dir, 0).exists(),
        "the half-written file is removed"
    );
    let stats = log.finish_compaction_work(work.run()).unwrap();
    assert_eq!(stats, CompactionStats::default());
    assert!(!cleaned_path(&dir, 0).exists());
    assert_eq!(records_from(&log, 0), before);
}

/// `min_compaction_lag_ms`: a segment holding a record younger than the
/// lag is not rewritten, so every such record is still there; once the
/// lag has passed, a round compacts them too.
#[test]
fn min_compaction_lag_keeps_young_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let lag = 150;
    let config = LogConfig {
        min_compaction_lag_ms: lag,
        ..compact_config()
    };
    let mut log = open(&dir, config, true);
    fill_updates(&mut log);
    let before = records_from(&log, 0);
    // fill_updates stamps 1000..=1290: at 1300 the newest 150 ms are young.
    let now = 1_300;
    let stats = compact_fully(&mut log, now);
    assert!(
        stats.records_dropped > 0,
        "older segments compacted: {stats:?}"
    );
    let after = records_from(&log, 0);
    for young in before.iter().filter(|r| r.3 > now - lag) {
        assert!(after.contains(young), "young record {young:?} kept");
    }
    let kept_young = after.iter().filter(|r| r.3 > now - lag).count();
    compact_fully(&mut log, now + 10 * lag);
    let later = records_from(&log, 0);
    check_compacted(&before, &later, log.active().base_offset);
    assert!(
        later.iter().filter(|r| r.3 > now - lag).count() < kept_young,
        "once old enough, they are compacted"
    );
}

/// `max_compaction_lag_ms`: a log whose dirty share is below
/// `min_cleanable_dirty_ratio` is compacted anyway once its oldest dirty
/// segment waited longer than the lag.
#[test]
fn max_compaction_lag_compacts_below_the_dirty_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |max_lag: i64| {
        let dir = tmp.path().join(format!("t-{max_lag}"));
        let config = LogConfig {
            min_cleanable_dirty_ratio: 0.9,
            max_compaction_lag_ms: max_lag,
            ..compact_config()
        };
        let mut log = open(&dir, config, true);
        fill_updates(&mut log);
        compact_fully(&mut log, 2_000);
        // A little more: a small dirty share of the closed bytes.
        for i in 0..4 {
            let ts = 3_000 + i;
            log.append(&keyed(&[("k0", Some("new")), ("k1", Some("new"))], ts), ts)
                .unwrap();
        }
        compact_fully(&mut log, 10_000)
    };
    assert_eq!(
        run(i64::MAX).segments_cleaned,
        0,
        "below the ratio: no round"
    );
    assert!(run(1_000).segments_cleaned > 0, "overdue: compacted");
}
