//! Many logs on one bounded file-handle cache, as a shard runs them.

use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::*;
use crate::record::build::build_simple_batch;
use crate::record::BatchHeader;

const LOGS: usize = 5;
const CACHED_FILES: usize = 2;

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        // A few batches per segment: every log rolls, so files outnumber logs.
        segment_bytes: 3 * build_simple_batch(0, 3, 0).len() as u64,
        ..LogConfig::default()
    }
}

fn open_all(root: &Path, handles: &FileHandles, clean: bool) -> Vec<PartitionLog> {
    (0..LOGS)
        .map(|p| {
            let dir = root.join(format!("topic-{p}"));
            PartitionLog::open_in(dir, config(), clean, handles).unwrap()
        })
        .collect()
}

/// The base offsets of the batches `log` returns from `offset` on.
fn read_bases(log: &PartitionLog, offset: i64) -> Vec<i64> {
    let plan = log.read(offset, u32::MAX, true).unwrap();
    super::tests::batches_in(&plan)
        .into_iter()
        .map(|(base, _)| base)
        .collect()
}

/// Five logs of several segments each, on a cache of two open files:
/// appends, reads, a clean close and reopen all work, files reopen on
/// demand, and the cache never holds more than two.
#[test]
fn five_logs_on_two_open_files() {
    let tmp = tempfile::tempdir().unwrap();
    let handles = FileHandles::new(CACHED_FILES);
    let mut logs = open_all(tmp.path(), &handles, true);
    assert!(handles.open_count() <= CACHED_FILES);
    for round in 0..10i64 {
        for log in &mut logs {
            let ts = 1000 + round;
            let appended = log.append(&build_simple_batch(0, 3, ts), ts).unwrap();
            assert_eq!(appended.base_offset, 3 * round);
            assert!(handles.open_count() <= CACHED_FILES);
        }
        for log in &logs {
            let expected: Vec<i64> = (0..=round).map(|r| 3 * r).collect();
            assert_eq!(read_bases(log, 0), expected);
            assert!(handles.open_count() <= CACHED_FILES);
        }
    }
    assert!(logs.iter().all(|log| log.segment_count() > 1));
    assert!(handles.evictions() > 0, "files were closed and reopened");
    for log in &mut logs {
        log.close().unwrap();
        assert!(handles.open_count() <= CACHED_FILES);
    }
    drop(logs);
    assert_eq!(handles.open_count(), 0, "a dropped log leaves no open file");

    let logs = open_all(tmp.path(), &handles, true);
    for log in &logs {
        assert_eq!(log.log_end_offset(), 30);
        assert_eq!(read_bases(log, 12), vec![12, 15, 18, 21, 24, 27]);
        assert_eq!(log.offset_for_timestamp(1005).unwrap(), Some((15, 1005)));
    }
    assert!(handles.open_count() <= CACHED_FILES);
}

/// A fetch's planned slice outlives the cache's handle on its file: the
/// sendfile that would send it after an eviction still reads the bytes.
#[test]
fn a_sendfile_in_flight_survives_eviction() {
    let tmp = tempfile::tempdir().unwrap();
    let handles = FileHandles::new(1);
    let mut logs = open_all(tmp.path(), &handles, true);
    let batch = build_simple_batch(0, 3, 1000);
    logs[0].append(&batch, 1000).unwrap();
    let plan = logs[0].read(0, u32::MAX, true).unwrap();
    let evictions = handles.evictions();
    for log in &mut logs[1..] {
        log.append(&build_simple_batch(0, 3, 1000), 1000).unwrap();
    }
    assert!(
        handles.evictions() > evictions,
        "the slice's file left the cache"
    );
    assert_eq!(handles.open_count(), 1);

    let slice = &plan.slices[0];
    let out = tempfile::tempfile().unwrap();
    let mut offset = libc::off_t::try_from(slice.position).unwrap();
    // SAFETY: both descriptors are open for the call (the slice's `Arc`
    // and `out`); `offset` is a valid, exclusive pointer.
    let sent = unsafe {
        libc::sendfile(
            out.as_raw_fd(),
            slice.file.as_raw_fd(),
            &mut offset,
            slice.len as usize,
        )
    };
    assert_eq!(
        sent,
        slice.len as isize,
        "{}",
        std::io::Error::last_os_error()
    );
    let mut copy = vec![0u8; slice.len as usize];
    out.read_exact_at(&mut copy, 0).unwrap();
    assert_eq!(BatchHeader::parse(&copy).unwrap().records_count, 3);
    assert_eq!(
        copy[12..],
        batch[12..],
        "the bytes appended, past baseOffset"
    );
}

/// Retention takes a deleted segment's file out of the cache (closed
/// with the unlink, off the shard), and the log goes on reopening the rest.
#[test]
fn retention_takes_deleted_files_out_of_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let handles = FileHandles::new(CACHED_FILES);
    let mut logs = open_all(tmp.path(), &handles, true);
    for log in &mut logs {
        for i in 0..7 {
            log.append(&build_simple_batch(0, 3, 1000 + i), 1000 + i)
                .unwrap();
        }
        log.set_config(LogConfig {
            retention_ms: 10,
            ..config()
        });
    }
    for log in &mut logs {
        let deleted = log.apply_retention(1_000_000).unwrap();
        assert!(!deleted.is_empty());
        for segment in deleted {
            segment.remove().unwrap();
        }
        assert!(handles.open_count() <= CACHED_FILES);
        assert_eq!(read_bases(log, log.log_start_offset()), Vec::<i64>::new());
        let appended = log.append(&build_simple_batch(0, 1, 5000), 5000).unwrap();
        assert_eq!(read_bases(log, appended.base_offset), vec![21]);
    }
}
