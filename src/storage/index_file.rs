//! A rolled segment's indexes, kept in their files with only every
//! [`CHUNK_ENTRIES`]th entry in memory.
//!
//! Kafka memory-maps its indexes, so a rolled segment's entries live in the
//! page cache, which the kernel evicts when it needs the room. Held whole
//! in the heap they cost up to 6 MiB per GiB of log at the default
//! `index.interval.bytes` (an 8-byte offset entry and a 16-byte time entry
//! every 4 KiB of batches), for every rolled segment kept, so memory grew
//! with retention: a broker keeping 4 TiB needed 24 GiB for indexes alone.
//! A rolled segment's indexes never change. With every 512th entry in
//! memory (12 KiB per GiB of log), a lookup searches those, then reads the
//! one chunk of 512 entries that holds the answer with one `pread`,
//! through the page cache: an open, a 4 KiB read and a close took about
//! 4 us on the 2-vCPU VM, and a read of a rolled segment makes one lookup,
//! two when its budget cuts it.
//!
//! The files hold what open checked (`OffsetIndex::decode`,
//! `TimeIndex::decode`) or what this process wrote itself; a chunk whose
//! first entry is not the one kept in memory is an error, never an answer.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::index::{IndexEntry, OffsetIndex, OFFSET_INDEX_ENTRY_BYTES};
use super::time_index::{TimeEntry, TimeIndex, TIME_INDEX_ENTRY_BYTES};

/// Entries a lookup reads from a file at once: 4 KiB of offset index.
pub const CHUNK_ENTRIES: usize = 512;
/// The largest chunk, of the time index's wider entries.
const CHUNK_BYTES_MAX: usize = CHUNK_ENTRIES * TIME_INDEX_ENTRY_BYTES;
const _: () = assert!(OFFSET_INDEX_ENTRY_BYTES <= TIME_INDEX_ENTRY_BYTES);

/// What stays in memory of a rolled segment's indexes: the first entry of
/// each chunk, and how many entries each file holds.
#[derive(Debug)]
pub struct IndexSummary {
    offsets: Vec<IndexEntry>,
    offset_count: usize,
    times: Vec<TimeEntry>,
    time_count: usize,
}

impl IndexSummary {
    /// The summary of indexes whose files hold exactly these entries.
    pub fn of(index: &OffsetIndex, time_index: &TimeIndex) -> IndexSummary {
        let firsts = |n: usize| (0..n).step_by(CHUNK_ENTRIES);
        IndexSummary {
            offsets: firsts(index.len()).map(|i| index.entries()[i]).collect(),
            offset_count: index.len(),
            times: firsts(time_index.len())
                .map(|i| time_index.entries()[i])
                .collect(),
            time_count: time_index.len(),
        }
    }

    /// [`OffsetIndex::lookup`] against the file at `path`.
    pub fn offset_lookup(&self, path: &Path, relative_offset: u32) -> io::Result<u32> {
        let found = self.offsets_where(path, |e| e.relative_offset <= relative_offset)?;
        Ok(found.map_or(0, |e| e.position))
    }

    /// [`OffsetIndex::floor_position`] against the file at `path`.
    pub fn offset_floor_position(&self, path: &Path, position: u32) -> io::Result<u32> {
        let found = self.offsets_where(path, |e| e.position <= position)?;
        Ok(found.map_or(0, |e| e.position))
    }

    /// [`TimeIndex::lookup_before`] against the file at `path`.
    pub fn time_lookup_before(&self, path: &Path, timestamp: i64) -> io::Result<Option<u32>> {
        let found = last_where(
            path,
            &self.times,
            self.time_count,
            |e| e.timestamp < timestamp,
            TimeEntry::from_bytes,
        )?;
        Ok(found.map(|e| e.relative_offset))
    }

    fn offsets_where(
        &self,
        path: &Path,
        below: impl Fn(&IndexEntry) -> bool,
    ) -> io::Result<Option<IndexEntry>> {
        last_where(
            path,
            &self.offsets,
            self.offset_count,
            below,
            IndexEntry::from_bytes,
        )
    }
}

/// The last of a file's `count` sorted entries for which `below` holds
/// (it holds for a prefix of them), given the first entry of each chunk;
/// `None` when it holds for none. Reads the one chunk that holds it, into
/// the stack: a lookup allocates nothing.
fn last_where<E: Copy + PartialEq, const N: usize>(
    path: &Path,
    firsts: &[E],
    count: usize,
    below: impl Fn(&E) -> bool,
    decode: fn(&[u8; N]) -> E,
) -> io::Result<Option<E>> {
    debug_assert_eq!(firsts.len(), count.div_ceil(CHUNK_ENTRIES));
    let Some(chunk) = firsts.partition_point(&below).checked_sub(1) else {
        return Ok(None);
    };
    let first = chunk * CHUNK_ENTRIES;
    let len = CHUNK_ENTRIES.min(count - first);
    let mut buffer = [0u8; CHUNK_BYTES_MAX];
    let bytes = &mut buffer[..len * N];
    File::open(path)?.read_exact_at(bytes, (first * N) as u64)?;
    let entries = bytes.as_chunks::<N>().0;
    if decode(&entries[0]) != firsts[chunk] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the index file changed since the segment rolled",
        ));
    }
    let after = entries.partition_point(|entry| below(&decode(entry)));
    assert!(after >= 1, "the chunk's first entry is below");
    Ok(Some(decode(&entries[after - 1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lookups through the summary answer as the whole index in memory
    /// does, for every probe, across chunk boundaries.
    #[test]
    fn lookups_agree_with_the_in_memory_index() {
        let tmp = tempfile::tempdir().unwrap();
        for entries in [0u32, 1, 2, 7, 511, 512, 513, 1024, 1500] {
            let mut index = OffsetIndex::default();
            let mut times = TimeIndex::default();
            for i in 1..=entries {
                index.push(i * 3, i * 100);
                times.push_if_grown(i64::from(i) * 10, i * 3);
            }
            let summary = IndexSummary::of(&index, &times);
            let offsets = tmp.path().join(format!("{entries}.index"));
            let time_path = tmp.path().join(format!("{entries}.timeindex"));
            std::fs::write(&offsets, index.encode()).unwrap();
            std::fs::write(&time_path, times.encode()).unwrap();
            for probe in (0..entries * 3 + 5).chain([u32::MAX]) {
                assert_eq!(
                    summary.offset_lookup(&offsets, probe).unwrap(),
                    index.lookup(probe),
                    "offset {probe} of {entries}"
                );
            }
            for probe in (0..entries * 100 + 200).step_by(37).chain([u32::MAX]) {
                assert_eq!(
                    summary.offset_floor_position(&offsets, probe).unwrap(),
                    index.floor_position(probe),
                    "position {probe} of {entries}"
                );
            }
            for probe in (-1..i64::from(entries) * 10 + 20).chain([i64::MAX]) {
                assert_eq!(
                    summary.time_lookup_before(&time_path, probe).unwrap(),
                    times.lookup_before(probe),
                    "timestamp {probe} of {entries}"
                );
            }
        }
    }

    /// A file that is not the one summarized (rewritten under the broker)
    /// is an error, not a wrong position.
    #[test]
    fn a_changed_or_missing_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mut index = OffsetIndex::default();
        index.push(1, 100);
        index.push(2, 200);
        let summary = IndexSummary::of(&index, &TimeIndex::default());
        let path = tmp.path().join("0.index");
        assert!(summary.offset_lookup(&path, 2).is_err(), "missing");
        let mut other = OffsetIndex::default();
        other.push(1, 150);
        other.push(2, 200);
        std::fs::write(&path, other.encode()).unwrap();
        assert!(summary.offset_lookup(&path, 2).is_err(), "changed");
        assert_eq!(summary.offset_lookup(&path, 0).unwrap(), 0, "no read");
    }
}
