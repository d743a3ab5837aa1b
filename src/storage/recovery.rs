//! Opening a partition directory: listing segments, loading or rebuilding
//! indexes, and rescanning everything after the recovery point, truncating a
//! torn or corrupt tail.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::record::{
    parse_marker, BatchHeader, Marker, RecordError, ATTRIBUTES_OFFSET, BATCH_HEADER_LEN, CODEC_MAX,
    MAGIC_V2,
};

use super::handles::FileHandles;
use super::io::{overwrite_in_place, sync_dir, write_atomic, TMP_SUFFIX};
use super::leader_epoch::LeaderEpochCache;
use super::producer_state::{remove_snapshot, snapshot_path, ProducerStates, SNAPSHOT_SUFFIX};
use super::segment::{
    parse_offset_name, segment_path, Segment, Segments, SideFiles, CLEANED_SUFFIX, DELETED_SUFFIX,
    INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::txn_index::{AbortedTxn, TXN_INDEX_SUFFIX};
use super::{LogConfig, StorageError};

/// File in the partition dir holding the offset below which every segment
/// is known to be on disk, as decimal text (zero-padded when a stop wrote
/// it, `write_recovery_point_unsynced`).
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Digits of a recovery point a group close writes in place: any offset
/// (i64::MAX has 19), zero-padded, so every prefix reads no higher.
const RECOVERY_POINT_DIGITS: usize = 20;
/// Bytes read at a time while checking a batch's CRC during recovery.
const RECOVERY_READ_CHUNK_BYTES: usize = 64 * 1024;

pub fn read_recovery_point(dir: &Path) -> i64 {
    stored_recovery_point(dir).unwrap_or(0)
}

/// The recovery point file's value; `None` without a readable one.
pub fn stored_recovery_point(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join(RECOVERY_POINT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

pub fn write_recovery_point(dir: &Path, offset: i64) -> io::Result<()> {
    write_atomic(
        &dir.join(RECOVERY_POINT_FILE),
        offset.to_string().as_bytes(),
    )?;
    sync_dir(dir)
}

/// [`write_recovery_point`] without any fsync or rename, for a group close:
/// it synced every log's bytes before and syncs the filesystem next. A
/// rename over the old file cost a stop more than anything else it wrote
/// (ext4 starts the new file's write-back at a rename over another: 6.3 of
/// 13.7 s at 100,000 partitions). Written in place, a crash before the
/// sync leaves the old point, the new one (both true of the disk), or a
/// torn file that reads lower or as none (0, a whole rescan), never
/// higher: the text is zero-padded to a fixed width, so the new bytes cut
/// at the old length read as a lower number, and the old ones at the new
/// length end in NUL bytes, which do not parse. Its few bytes lie in the
/// file's first sector, which a disk writes whole (PostgreSQL keeps
/// `pg_control` within 512 bytes for this).
pub fn write_recovery_point_unsynced(dir: &Path, offset: i64) -> io::Result<()> {
    assert!(offset >= 0, "a recovery point is an offset");
    let text = format!("{offset:0width$}", width = RECOVERY_POINT_DIGITS);
    assert_eq!(text.len(), RECOVERY_POINT_DIGITS);
    overwrite_in_place(&dir.join(RECOVERY_POINT_FILE), text.as_bytes())
}

/// Sets the recovery point to `offset` after the log was cut (it may have
/// to go down). When the file cannot be written (a full disk) it is
/// removed instead, so the next unclean start rescans the whole log rather
/// than trusting a point past bytes that were cut and written again.
pub fn reset_recovery_point(dir: &Path, offset: i64) -> io::Result<()> {
    let Err(e) = write_recovery_point(dir, offset) else {
        return Ok(());
    };
    tracing::warn!(dir = %dir.display(), error = %e, "cannot reset the recovery point; removing it");
    match fs::remove_file(dir.join(RECOVERY_POINT_FILE)) {
        Err(removal) if removal.kind() != io::ErrorKind::NotFound => Err(removal),
        _ => sync_dir(dir),
    }
}

/// [`crate::record::check_header`] for batches already in the log: a
/// compacted batch keeps its lastOffsetDelta but may hold fewer records.
pub fn check_stored_header(header: &BatchHeader) -> Result<(), RecordError> {
    if header.magic != MAGIC_V2 {
        return Err(RecordError::Corrupt("unsupported magic (only v2 batches)"));
    }
    if header.records_count <= 0 || header.last_offset_delta < 0 {
        return Err(RecordError::Corrupt("batch without records"));
    }
    if i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1 {
        return Err(RecordError::Corrupt("records count > lastOffsetDelta + 1"));
    }
    if header.codec() > CODEC_MAX {
        return Err(RecordError::Corrupt("unknown compression codec"));
    }
    Ok(())
}

/// Whether every offset of the batch lies within `segment_base` ..=
/// `segment_base + u32::MAX`: indexes hold offsets relative to the base in
/// a u32, and the log rolls before an append could leave that range, so a
/// batch past it is corrupt (its last offset cannot overflow either).
/// Expects a header [`check_stored_header`] passed (lastOffsetDelta >= 0).
pub fn fits_segment(header: &BatchHeader, segment_base: i64) -> bool {
    let span = i64::from(u32::MAX) - i64::from(header.last_offset_delta);
    header.base_offset >= segment_base && header.base_offset - segment_base <= span
}

/// What the one listing of a log's directory at open found: the base
/// offsets of its `.log` files and the offsets of its producer snapshots,
/// ascending, and every name it kept, so open reads only files that exist.
/// (At 100,000 idle partitions a second listing for the snapshots was 14%
/// of a restart, and six failed opens a partition more.)
pub struct Listing {
    logs: Vec<i64>,
    pub snapshots: Vec<i64>,
    names: HashSet<String>,
}

impl Listing {
    /// Whether the directory holds `name` (a file open may read).
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// A name the directory holds that `wanted` picks, if any.
    pub fn find(&self, wanted: impl Fn(&str) -> bool) -> Option<&str> {
        self.names.iter().map(String::as_str).find(|n| wanted(n))
    }

    /// A file open has just made.
    pub fn insert(&mut self, name: String) {
        self.names.insert(name);
    }

    fn side_files(&self, base: i64) -> SideFiles {
        let has = |suffix| {
            let path = segment_path(Path::new(""), base, suffix);
            self.names
                .contains(path.to_str().expect("segment names are ASCII"))
        };
        SideFiles {
            index: has(INDEX_SUFFIX),
            time_index: has(TIME_INDEX_SUFFIX),
            txn_index: has(TXN_INDEX_SUFFIX),
        }
    }
}

/// Removes leftover temporary, half-compacted and orphan index files, and
/// lists what stays; a directory that does not exist yet is created (a new
/// partition), which costs an existing one nothing.
fn list_dir(dir: &Path) -> io::Result<Listing> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            fs::read_dir(dir)?
        }
        listed => listed?,
    };
    let mut logs = Vec::new();
    let mut snapshots = Vec::new();
    let mut indexes = Vec::new();
    let mut names = HashSet::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_SUFFIX)
            || name.ends_with(CLEANED_SUFFIX)
            || name.ends_with(DELETED_SUFFIX)
        {
            fs::remove_file(entry.path())?;
            continue;
        }
        if let Some((base, suffix)) = parse_offset_name(&name) {
            match suffix {
                LOG_SUFFIX => logs.push(base),
                INDEX_SUFFIX | TIME_INDEX_SUFFIX | TXN_INDEX_SUFFIX => {
                    indexes.push((base, name.clone()))
                }
                SNAPSHOT_SUFFIX => snapshots.push(base),
                _ => {}
            }
        }
        names.insert(name);
    }
    logs.sort_unstable();
    snapshots.sort_unstable();
    for (base, name) in indexes {
        if logs.binary_search(&base).is_err() {
            fs::remove_file(dir.join(&name))?;
            names.remove(&name);
        }
    }
    Ok(Listing {
        logs,
        snapshots,
        names,
    })
}

/// Checks the batch at `pos` fully (header, bounds, offset contiguity,
/// CRC-32C streamed in chunks). `Ok(Err(reason))` means torn or corrupt.
fn check_batch_at(
    file: &File,
    pos: u64,
    file_len: u64,
    segment_base: i64,
    expected_base: i64,
    chunk: &mut [u8],
) -> io::Result<Result<BatchHeader, &'static str>> {
    let left = file_len - pos;
    if left < BATCH_HEADER_LEN as u64 {
        return Ok(Err("torn batch header"));
    }
    let mut buf = [0u8; BATCH_HEADER_LEN];
    file.read_exact_at(&mut buf, pos)?;
    let header = match BatchHeader::parse(&buf).and_then(|h| check_stored_header(&h).map(|()| h)) {
        Ok(header) => header,
        Err(crate::record::RecordError::Corrupt(reason)) => return Ok(Err(reason)),
        Err(_) => return Ok(Err("invalid batch header")),
    };
    if header.total_len() as u64 > left {
        return Ok(Err("torn batch"));
    }
    // Compaction may leave gaps, never a step back.
    if header.base_offset < expected_base {
        return Ok(Err("batch offset below the previous batch's end"));
    }
    if !fits_segment(&header, segment_base) {
        return Ok(Err("batch offsets past the segment's range"));
    }
    let end = pos + header.total_len() as u64;
    let mut at = pos + ATTRIBUTES_OFFSET as u64;
    let mut crc = 0u32;
    while at < end {
        let n = chunk.len().min((end - at) as usize);
        file.read_exact_at(&mut chunk[..n], at)?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        at += n as u64;
    }
    Ok(if crc == header.crc {
        Ok(header)
    } else {
        Err("CRC mismatch")
    })
}

/// Whether a batch header's worth of bytes at `pos` are all zero (or the
/// file ends there): no batch starts with a zero length.
fn zeros_at(file: &File, pos: u64, file_len: u64) -> io::Result<bool> {
    let mut head = [0u8; BATCH_HEADER_LEN];
    let n = (file_len - pos).min(BATCH_HEADER_LEN as u64) as usize;
    file.read_exact_at(&mut head[..n], pos)?;
    Ok(head[..n].iter().all(|&b| b == 0))
}

/// Rescans `segment` from its start, rebuilding its indexes, and truncates
/// it at the first torn or corrupt batch. Returns whether it truncated.
pub fn recover_segment(
    segment: &mut Segment,
    index_interval_bytes: u32,
) -> Result<bool, StorageError> {
    let file = segment.file()?;
    let file_len = file.metadata()?.len();
    segment.reset_tracking();
    let mut chunk = vec![0u8; RECOVERY_READ_CHUNK_BYTES];
    while segment.size < file_len {
        let pos = segment.size;
        match check_batch_at(
            &file,
            pos,
            file_len,
            segment.base_offset,
            segment.next_offset,
            &mut chunk,
        )? {
            Ok(header) => segment.track_batch(pos, &header, index_interval_bytes),
            Err(reason) => {
                let (segment_base, dropped_bytes) = (segment.base_offset, file_len - pos);
                // Zeros are what a preallocated active segment holds past
                // its batches after a crash (`log_preallocate`): no batch
                // is lost. Still a cut: zeros in a segment that is not the
                // last (a roll's trim lost with the power) drop the later
                // segments, as any cut does.
                if zeros_at(&file, pos, file_len)? {
                    tracing::info!(
                        segment = segment_base,
                        position = pos,
                        dropped_bytes,
                        reason,
                        "trimming zeros past the last batch"
                    );
                } else {
                    tracing::warn!(
                        segment = segment_base,
                        position = pos,
                        dropped_bytes,
                        reason,
                        "truncating segment at an invalid batch"
                    );
                }
                segment.truncate_file(pos)?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Loads indexes from their files (clean path), rebuilding by a full scan
/// when they are missing or do not match the log. Returns whether it truncated.
fn load_or_rebuild(
    segment: &mut Segment,
    files: SideFiles,
    index_interval_bytes: u32,
    clean_shutdown: bool,
) -> Result<bool, StorageError> {
    if segment.load_indexes(files, index_interval_bytes) && segment.load_tail()? {
        if clean_shutdown {
            segment.mark_indexes_durable();
        }
        return Ok(false);
    }
    tracing::info!(segment = segment.base_offset, "rebuilding segment indexes");
    let truncated = recover_segment(segment, index_interval_bytes)?;
    segment.finish_time_index();
    write_rebuilt_indexes(segment, true);
    Ok(truncated)
}

/// Writes indexes open rebuilt, fsynced when `durable`, else to the page
/// cache only. A full disk must not keep a log from opening (its reads go
/// on): a failed write leaves no index file, and the next open rebuilds
/// again.
fn write_rebuilt_indexes(segment: &Segment, durable: bool) {
    let written = if durable {
        segment.write_indexes()
    } else {
        segment.write_indexes_unsynced()
    };
    if let Err(e) = written {
        tracing::warn!(segment = segment.base_offset, error = %e, "rebuilt indexes not written; the next open rebuilds them");
    }
}

/// Sets where `segment_ms` counts from after a reopen: the first batch's
/// timestamp, when it has one.
fn set_rolling_base(segment: &mut Segment) -> Result<(), StorageError> {
    if !segment.is_empty() {
        let first = segment.read_header(0)?.max_timestamp;
        segment.rolling_base_ms = (first > 0).then_some(first);
    }
    Ok(())
}

/// The segments [`load_segments`] opened, and what of them a crash left
/// past the recovery point without a sync since.
pub struct LoadedSegments {
    pub segments: Segments,
    /// Segments rescanned whole and left to the page cache, oldest first:
    /// the rolled ones (base, next base) the recovery point must not pass
    /// before an fdatasync. The active segment, if rescanned, is marked
    /// written, so the next roll or close syncs it.
    pub unsynced_rolls: Vec<(i64, i64)>,
    /// Whether the rescanned bytes stay past the recovery point: nothing
    /// was cut, so it stays where it is and the next crash rescans them
    /// again. False when a cut (or too long a rescan) made them durable
    /// here, and the recovery point may move to the log end.
    pub deferred: bool,
    /// The recovery point the rescan started from (0 without a file);
    /// `None` after a clean shutdown, which rescans nothing.
    pub recovery_point: Option<i64>,
    /// The directory as listed before the segments opened. Opening them
    /// writes no snapshot, epoch checkpoint or high watermark file, so
    /// what it says of those still holds.
    pub listing: Listing,
}

/// Opens every segment in `dir` (a new, empty one in a directory created
/// if missing). Unless `clean_shutdown`, segments that may hold offsets at
/// or past the recovery point are rescanned; the first bad batch truncates
/// its segment and deletes all later ones.
///
/// A rescan that cut nothing syncs nothing, as Kafka's recovery does: the
/// bytes are what the page cache held, and they stay past the recovery
/// point until a roll sync or close makes them durable. That was five
/// fdatasyncs and two directory fsyncs per partition before a restarted
/// node could serve; a cut still pays them, since it changed the files.
pub fn load_segments(
    dir: &Path,
    config: &LogConfig,
    clean_shutdown: bool,
    handles: &FileHandles,
    unsynced_rolls_max: usize,
    owner: Option<&str>,
) -> Result<LoadedSegments, StorageError> {
    let mut listing = list_dir(dir)?;
    // Before anything is read or repaired: another topic's files are not
    // this log's to touch.
    if let Some(owner) = owner {
        super::owner::claim(dir, &mut listing, owner)?;
    }
    let bases = std::mem::take(&mut listing.logs);
    let mut segments = Segments::new();
    if bases.is_empty() {
        segments.insert(0, Box::new(Segment::create(dir, 0, handles)?));
        return Ok(LoadedSegments {
            segments,
            unsynced_rolls: Vec::new(),
            deferred: false,
            recovery_point: (!clean_shutdown).then(|| read_recovery_point(dir)),
            listing,
        });
    }
    let stored_point = (!clean_shutdown).then(|| read_recovery_point(dir));
    let recovery_point = stored_point.unwrap_or(i64::MAX);
    let interval = config.index_interval_bytes;
    let mut rescanned = Vec::new();
    let mut cut = false;
    for (i, &base) in bases.iter().enumerate() {
        let files = listing.side_files(base);
        let mut segment = Segment::open_listed(dir, base, handles, files)?;
        let previous_end = segments.values().next_back().map(|s| s.next_offset);
        // A compacted segment may end below the next base, never past it.
        if previous_end.is_some_and(|end| end > base) {
            tracing::warn!(
                segment = base,
                ?previous_end,
                "segment overlaps the previous one"
            );
            delete_segments(dir, &bases[i..], handles)?;
            cut = true;
            break;
        }
        // After a clean shutdown nothing is unflushed, the active segment
        // included: close synced it and wrote its indexes, so a restart
        // loads them instead of rescanning and rewriting every partition's
        // tail (four fsyncs each, most of a restart with many partitions).
        let may_hold_unflushed =
            !clean_shutdown && bases.get(i + 1).is_none_or(|&next| next > recovery_point);
        let truncated = if may_hold_unflushed {
            rescanned.push(base);
            let truncated = recover_segment(&mut segment, interval)?;
            segment.finish_time_index();
            truncated
        } else {
            load_or_rebuild(&mut segment, files, interval, clean_shutdown)?
        };
        segments.insert(base, Box::new(segment));
        if truncated {
            delete_segments(dir, &bases[i + 1..], handles)?;
            cut = true;
            break;
        }
    }
    if let Some(active) = segments.values_mut().next_back() {
        set_rolling_base(active)?;
    }
    // A log ending below its recovery point lost bytes it had synced:
    // whatever the cause, the point must come down, past synced bytes only.
    let log_end = segments.values().next_back().map_or(0, |s| s.next_offset);
    let deferred = !rescanned.is_empty()
        && !cut
        && rescanned.len() <= unsynced_rolls_max + 1
        && log_end >= recovery_point;
    let unsynced_rolls = if deferred {
        leave_rescan_unsynced(&mut segments, &rescanned)
    } else {
        sync_rescan(&segments, &rescanned)?;
        Vec::new()
    };
    release_rolled_indexes(&mut segments);
    Ok(LoadedSegments {
        segments,
        unsynced_rolls,
        deferred,
        recovery_point: stored_point,
        listing,
    })
}

/// Rolled segments read their indexes from their files from here on; the
/// active one keeps its own in memory for its appends.
pub(super) fn release_rolled_indexes(segments: &mut Segments) {
    segments
        .values_mut()
        .rev()
        .skip(1)
        .for_each(|segment| segment.release_indexes());
}

/// Leaves the rescanned segments to the page cache: the rolled ones get
/// their rebuilt indexes (no fsync, as a roll writes them) and are returned
/// as (base, next base) for the roll sync; the active one is marked for
/// its roll or close to sync.
fn leave_rescan_unsynced(segments: &mut Segments, rescanned: &[i64]) -> Vec<(i64, i64)> {
    let active_base = *segments
        .keys()
        .next_back()
        .expect("a segment was rescanned");
    let mut rolls = Vec::with_capacity(rescanned.len());
    for &base in rescanned {
        let next_base = segments.range(base + 1..).next().map(|(next, _)| *next);
        let segment = segments.get_mut(&base).expect("rescanned segments stay");
        let Some(next_base) = next_base else {
            assert_eq!(
                base, active_base,
                "only the active segment has no successor"
            );
            // Its indexes are written when it rolls or closes.
            segment.mark_written();
            continue;
        };
        write_rebuilt_indexes(segment, false);
        rolls.push((base, next_base));
    }
    rolls
}

/// Makes the rescanned segments durable, rebuilt indexes included, so the
/// recovery point can move to the log end.
fn sync_rescan(segments: &Segments, rescanned: &[i64]) -> Result<(), StorageError> {
    for base in rescanned {
        let segment = &segments[base];
        segment.file()?.sync_data()?;
        write_rebuilt_indexes(segment, true);
    }
    Ok(())
}

fn delete_segments(dir: &Path, bases: &[i64], handles: &FileHandles) -> Result<(), StorageError> {
    for &base in bases {
        tracing::warn!(segment = base, "deleting segment after a truncated one");
        Segment::open(dir, base, handles)?.delete_files()?;
    }
    Ok(())
}

/// The producer state as of the log end: the newest readable snapshot at or
/// below it (of `snapshots`, the directory's, ascending), then every batch
/// after it replayed from the log (all of the log when no snapshot fits),
/// which also rebuilds the aborted-transaction index entries of the
/// replayed range. Snapshots past the log end (a
/// truncated tail) are removed. Also the digest of the snapshot file when
/// it alone gave the state (it is at the log end: nothing replayed).
pub fn load_producer_state(
    dir: &Path,
    snapshots: Vec<i64>,
    segments: &mut Segments,
    log_start: i64,
    producers_max: usize,
) -> Result<(ProducerStates, Option<SnapshotDigest>), StorageError> {
    debug_assert!(snapshots.is_sorted());
    let log_end = segments
        .values()
        .next_back()
        .map_or(log_start, |s| s.next_offset);
    let mut loaded = None;
    for offset in snapshots.into_iter().rev() {
        if offset > log_end {
            tracing::info!(dir = %dir.display(), offset, log_end, "dropping a producer snapshot past the log end");
            remove_snapshot(dir, offset)?;
            continue;
        }
        let bytes = fs::read(snapshot_path(dir, offset))?;
        match ProducerStates::decode_snapshot(&bytes, producers_max) {
            Some(found) => {
                loaded = Some((found, SnapshotDigest::of(offset, &bytes)));
                break;
            }
            None => {
                tracing::warn!(dir = %dir.display(), offset, "unreadable producer snapshot; trying an older one")
            }
        }
    }
    let (loaded, digest) = match loaded {
        Some((loaded, digest)) => (Some(loaded), Some(digest)),
        None => (None, None),
    };
    let (from, mut states) =
        loaded.unwrap_or_else(|| (log_start, ProducerStates::new(producers_max)));
    let from = from.max(log_start);
    let replayed = replay_producers(segments, from, &mut states)?;
    if replayed > 0 {
        tracing::info!(dir = %dir.display(), from, replayed, producers = states.len(), "rebuilt producer state from the log");
    }
    let at_log_end = digest.filter(|d| d.offset == log_end && replayed == 0);
    Ok((states, at_log_end))
}

/// Which producer snapshot file holds which bytes: its offset, length and
/// CRC-32C, so close can tell that the file on disk already says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotDigest {
    pub offset: i64,
    len: usize,
    crc: u32,
}

impl SnapshotDigest {
    pub fn of(offset: i64, bytes: &[u8]) -> SnapshotDigest {
        SnapshotDigest {
            offset,
            len: bytes.len(),
            crc: crc32c::crc32c(bytes),
        }
    }
}

/// Applies every batch from `from` on to `states`, indexing the aborted
/// transactions its markers end; returns how many batches.
fn replay_producers(
    segments: &mut Segments,
    from: i64,
    states: &mut ProducerStates,
) -> Result<u64, StorageError> {
    let mut replayed = 0;
    let first_base = segments
        .range(..=from)
        .next_back()
        .map_or(from, |(base, _)| *base);
    for segment in segments.range_mut(first_base..).map(|(_, s)| s) {
        // Entries from `from` on come back as the replay meets their markers.
        // A file that cannot be written now (a full disk) is written whole
        // at the next roll or close; the entries are in memory.
        if let Err(e) = segment.txn_index.truncate_from(from) {
            tracing::warn!(segment = segment.base_offset, error = %e, "aborted-transaction index not rewritten; kept in memory");
        }
        let Some(mut pos) = segment.find_batch(from)? else {
            continue;
        };
        while pos < segment.size {
            let header = segment.read_header(pos)?;
            let marker = if header.is_control() {
                read_marker(segment, pos, &header)?
            } else {
                None
            };
            if let Some(done) = states.apply(&header, marker, header.max_timestamp) {
                if done.aborted {
                    let appended = segment.txn_index.append(AbortedTxn {
                        producer_id: done.producer_id,
                        first_offset: done.first_offset,
                        last_offset: done.last_offset,
                        last_stable_offset: states
                            .first_unstable_offset()
                            .unwrap_or(done.last_offset + 1),
                    });
                    if let Err(e) = appended {
                        tracing::warn!(segment = segment.base_offset, error = %e, "aborted-transaction index write failed; kept in memory");
                    }
                }
            }
            pos += header.total_len() as u64;
            replayed += 1;
        }
    }
    Ok(replayed)
}

/// The marker of the control batch at `pos` (control batches are small).
fn read_marker(
    segment: &Segment,
    pos: u64,
    header: &BatchHeader,
) -> Result<Option<Marker>, StorageError> {
    const CONTROL_BATCH_BYTES_MAX: usize = 4096;
    if header.total_len() > CONTROL_BATCH_BYTES_MAX {
        return Ok(None);
    }
    let mut batch = vec![0u8; header.total_len()];
    segment.file()?.read_exact_at(&mut batch, pos)?;
    Ok(parse_marker(&batch))
}

/// The leader-epoch cache of the log: its checkpoint or, when that is
/// missing or corrupt, one rebuilt from the batch headers; after a crash
/// (`unflushed_from`: the recovery point) the epochs of the segments that
/// may hold unflushed batches are taken from their headers again, since the
/// append path writes the checkpoint without fsync. Then cut to the log's
/// range (a crash may have cut the tail after an epoch began, or retention
/// the head before the file was written). True with it when it differs
/// from the file, which the caller writes back; a log no leader ever
/// stamped (a single-node broker's) needs no file. `listed`: whether the
/// directory holds the checkpoint.
pub fn load_leader_epochs(
    dir: &Path,
    listed: bool,
    segments: &Segments,
    log_start: i64,
    log_end: i64,
    unflushed_from: Option<i64>,
) -> Result<(LeaderEpochCache, bool), StorageError> {
    let stored = listed
        .then(|| LeaderEpochCache::read_checkpoint(dir))
        .flatten();
    let (mut cache, mut changed) = match stored {
        Some(mut cache) => {
            let changed = match unflushed_from {
                Some(from) => {
                    let first = segments
                        .range(..=from)
                        .next_back()
                        .map_or(i64::MIN, |(b, _)| *b);
                    assign_epochs_from_headers(&mut cache, segments.range(first..))?
                }
                None => false,
            };
            (cache, changed)
        }
        None => {
            let mut cache = LeaderEpochCache::new();
            assign_epochs_from_headers(&mut cache, segments.range(..))?;
            // Listed but unreadable or corrupt.
            let replaces_a_file = listed;
            if !cache.is_empty() {
                // Routine for a single-node broker's logs (see the caller).
                tracing::debug!(dir = %dir.display(), epochs = cache.entries().count(), "rebuilt the leader epoch cache from batch headers");
            }
            let changed = !cache.is_empty() || replaces_a_file;
            (cache, changed)
        }
    };
    changed |= cache.truncate_from_end(log_end);
    changed |= cache.truncate_from_start(log_start);
    Ok((cache, changed))
}

/// Assigns where each stamped epoch (>= 0) first appears in `segments`,
/// from batch headers only; true if that changed the cache. Epochs never
/// decrease along a replicated log, so a segment whose first and last
/// batches share an epoch holds only that one and costs two header reads;
/// only a segment where the epoch changes is walked batch by batch.
fn assign_epochs_from_headers<'a>(
    cache: &mut LeaderEpochCache,
    segments: impl Iterator<Item = (&'a i64, &'a Box<Segment>)>,
) -> Result<bool, StorageError> {
    let mut changed = false;
    for (_, segment) in segments {
        let Some(last_pos) = segment.last_batch_position()? else {
            continue;
        };
        let first = segment.read_header(0)?;
        let last = segment.read_header(last_pos)?;
        if first.partition_leader_epoch == last.partition_leader_epoch {
            changed |= cache.assign(first.partition_leader_epoch, first.base_offset);
            continue;
        }
        let mut pos = 0;
        while pos < segment.size {
            let header = segment.read_header(pos)?;
            changed |= cache.assign(header.partition_leader_epoch, header.base_offset);
            pos += header.total_len() as u64;
        }
    }
    Ok(changed)
}
