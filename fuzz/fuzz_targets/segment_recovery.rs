//! Opening a partition whose files hold arbitrary bytes: `PartitionLog::open`
//! recovers (rescans, truncates a torn or corrupt tail, loads or rebuilds
//! indexes) and must not panic. After an unclean shutdown every segment is
//! rescanned, so every batch a read returns is whole, well-formed,
//! CRC-correct and in offset order, and opening again changes nothing. After
//! a clean one, closed segments with loadable indexes are trusted below their
//! last index entry (as Kafka trusts what lies below its recovery point):
//! there a read must only not panic, and open may refuse the partition with
//! `StorageError::Corrupt`.
//!
//! Input: a flags byte, then one or two segments, each
//! `[u16 LE len][.log][u16 LE len][.index][u16 LE len][.timeindex]`, the
//! second preceded by its base offset (u32 BE). Parts end early with the
//! input. Flags: bit 0 clean shutdown (closed segments' indexes are trusted,
//! not rescanned), bit 1 repair each batch's CRC first (so the fuzzer gets
//! past it), bit 2 a second segment, bit 3 write index files.
#![no_main]

use std::os::unix::fs::FileExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sluice::record::{
    compute_crc, recompute_crc, BatchHeader, BATCH_HEADER_LEN, CODEC_MAX, LOG_OVERHEAD, MAGIC_V2,
};
use sluice::storage::{segment_path, LogConfig, PartitionLog, StorageError};

const CLEAN_SHUTDOWN: u8 = 1;
const FIX_CRC: u8 = 2;
const TWO_SEGMENTS: u8 = 4;
const WITH_INDEXES: u8 = 8;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    // tmpfs when there is one: recovery fsyncs, and a disk would set the pace.
    let root = Path::new("/dev/shm");
    let tmp = if root.is_dir() {
        tempfile::tempdir_in(root)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let dir = tmp.path().join("topic-0");
    std::fs::create_dir(&dir).unwrap();
    write_segment(&dir, 0, &mut rest, flags);
    if flags & TWO_SEGMENTS != 0 && rest.len() >= 4 {
        let base = u32::from_be_bytes(rest[..4].try_into().unwrap());
        rest = &rest[4..];
        write_segment(&dir, i64::from(base), &mut rest, flags);
    }
    let clean = flags & CLEAN_SHUTDOWN != 0;
    let config = LogConfig {
        // Small, so a few KB of input spans several index entries.
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let mut log = match PartitionLog::open(dir.clone(), config.clone(), clean) {
        Ok(log) => log,
        // A trusted closed segment turned out corrupt (producer-state replay
        // or a header read met it): the shard logs it and leaves the
        // partition offline, an operating error rather than a crash.
        Err(StorageError::Corrupt(_)) if clean => return,
        Err(e) => panic!("open recovers: {e}"),
    };
    let first = check_readable(&log, !clean);
    log.close().expect("close");
    drop(log);
    let log = PartitionLog::open(dir, config, clean).expect("reopen");
    let second = check_readable(&log, !clean);
    // After a clean shutdown a corrupt trusted segment may be cut on the
    // second open (it became the active segment, which is always rescanned).
    if !clean {
        assert_eq!(first, second, "recovery is idempotent");
    }
});

/// Writes segment `base`'s files from the next parts of `input`.
fn write_segment(dir: &Path, base: i64, input: &mut &[u8], flags: u8) {
    let mut log = take_part(input);
    if flags & FIX_CRC != 0 {
        fix_crcs(&mut log);
    }
    std::fs::write(segment_path(dir, base, "log"), &log).unwrap();
    let index = take_part(input);
    let time_index = take_part(input);
    if flags & WITH_INDEXES != 0 {
        std::fs::write(segment_path(dir, base, "index"), &index).unwrap();
        std::fs::write(segment_path(dir, base, "timeindex"), &time_index).unwrap();
    }
}

fn take_part(input: &mut &[u8]) -> Vec<u8> {
    if input.len() < 2 {
        *input = &[];
        return Vec::new();
    }
    let len = usize::from(u16::from_le_bytes([input[0], input[1]])).min(input.len() - 2);
    let part = input[2..2 + len].to_vec();
    *input = &input[2 + len..];
    part
}

/// Recomputes the CRC of each batch that fits in `buf`.
fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= BATCH_HEADER_LEN {
        let len = i32::from_be_bytes(buf[pos + 8..pos + 12].try_into().unwrap());
        let Some(total) = usize::try_from(len).ok().map(|l| l + LOG_OVERHEAD) else {
            return;
        };
        if total < BATCH_HEADER_LEN || total > buf.len() - pos {
            return;
        }
        recompute_crc(&mut buf[pos..pos + total]);
        pos += total;
    }
}

/// Reads the whole log and checks every batch; returns the log's range and
/// bytes.
fn check_readable(log: &PartitionLog, rescanned: bool) -> (i64, i64, Vec<u8>) {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(0 <= start && start <= end);
    let plan = log
        .read(start, u32::MAX, true)
        .expect("read from the log start");
    let mut all = Vec::new();
    let mut expected = start;
    for slice in &plan.slices {
        let mut bytes = vec![0u8; slice.len as usize];
        slice
            .file
            .read_exact_at(&mut bytes, slice.position)
            .expect("a planned slice lies inside its file");
        all.extend_from_slice(&bytes);
        let mut pos = 0;
        while rescanned && pos < bytes.len() {
            let header = BatchHeader::parse(&bytes[pos..]).expect("a read batch parses");
            let total = header.total_len();
            assert!(
                pos + total <= bytes.len(),
                "a read slice holds whole batches"
            );
            check_stored_header(&header);
            assert_eq!(compute_crc(&bytes[pos..pos + total]), header.crc, "CRC");
            assert!(header.base_offset >= expected, "offsets never step back");
            assert!(header.last_offset() < end, "batches end below the log end");
            expected = header.last_offset() + 1;
            pos += total;
        }
    }
    assert!(log
        .read(end, u32::MAX, true)
        .expect("read at the log end")
        .slices
        .is_empty());
    (start, end, all)
}

/// What recovery promises of a kept batch's header, restated here rather
/// than borrowed from the code under test (a compacted batch may hold fewer
/// records than its offset span).
fn check_stored_header(header: &BatchHeader) {
    assert_eq!(header.magic, MAGIC_V2);
    assert!(header.records_count > 0 && header.last_offset_delta >= 0);
    assert!(i64::from(header.records_count) <= i64::from(header.last_offset_delta) + 1);
    assert!(header.codec() <= CODEC_MAX);
}
