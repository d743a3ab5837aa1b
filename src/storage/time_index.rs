//! The sparse time index of one segment: (largest timestamp so far,
//! relative offset of the batch where it was recorded), added only when the
//! timestamp grows. Kept in memory while its segment is active, written at
//! roll and close; a rolled segment's is looked up in its file
//! (`index_file.rs`).

/// On disk: timestamp i64 BE, relative offset u32 BE.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// The largest timestamp of every batch up to and including the one at
    /// `relative_offset`.
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl TimeEntry {
    /// The entry a time index file holds in these bytes (its one layout,
    /// for the whole-file decode and a rolled segment's chunk reads alike).
    pub fn from_bytes(bytes: &[u8; TIME_INDEX_ENTRY_BYTES]) -> TimeEntry {
        let (timestamp, offset) = bytes.split_at(8);
        TimeEntry {
            timestamp: i64::from_be_bytes(timestamp.try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(offset.try_into().expect("4 bytes")),
        }
    }
}

/// Entries strictly increasing in timestamp, non-decreasing in offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Records `timestamp` at `relative_offset` if it is larger than the last entry.
    pub fn push_if_grown(&mut self, timestamp: i64, relative_offset: u32) {
        if let Some(last) = self.entries.last() {
            if timestamp <= last.timestamp {
                return;
            }
            assert!(
                relative_offset >= last.relative_offset,
                "time index offsets must not decrease"
            );
        }
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
    }

    /// The relative offset of the last entry whose timestamp is below
    /// `timestamp`: every batch before that one holds only smaller
    /// timestamps, so a search for `timestamp` may start there.
    pub fn lookup_before(&self, timestamp: i64) -> Option<u32> {
        let below = self.entries.partition_point(|e| e.timestamp < timestamp);
        below
            .checked_sub(1)
            .map(|i| self.entries[i].relative_offset)
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops the entries recorded at or past `relative_offset` (a truncated tail).
    pub fn truncate_from(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Decodes a time index file; `None` if it is malformed or not ordered.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.as_chunks::<TIME_INDEX_ENTRY_BYTES>().0 {
            let TimeEntry {
                timestamp,
                relative_offset,
            } = TimeEntry::from_bytes(chunk);
            let ordered = index
                .last()
                .is_none_or(|l| timestamp > l.timestamp && relative_offset >= l.relative_offset);
            if !ordered {
                return None;
            }
            index.push_if_grown(timestamp, relative_offset);
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_only_and_looks_up_before() {
        let mut index = TimeIndex::default();
        assert_eq!(index.lookup_before(100), None);
        index.push_if_grown(100, 0);
        index.push_if_grown(90, 3); // ignored
        index.push_if_grown(200, 5);
        assert_eq!(index.len(), 2);
        assert_eq!(index.lookup_before(100), None);
        assert_eq!(index.lookup_before(101), Some(0));
        assert_eq!(index.lookup_before(200), Some(0));
        assert_eq!(index.lookup_before(201), Some(5));
        let decoded = TimeIndex::decode(&index.encode()).unwrap();
        assert_eq!(decoded, index);
        assert_eq!(TimeIndex::decode(&[0u8; 13]), None);
    }
}
