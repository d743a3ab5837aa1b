//! The sparse offset index of one segment: relative offset -> position of
//! the batch starting there. Kept in memory while its segment is active,
//! written at roll and close; a rolled segment's is looked up in its file
//! (`index_file.rs`).

/// On disk: relative offset u32 BE, position u32 BE.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the indexed batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of that batch in the segment's `.log`.
    pub position: u32,
}

impl IndexEntry {
    /// The entry an index file holds in these bytes (its one layout, for
    /// the whole-file decode and a rolled segment's chunk reads alike).
    pub fn from_bytes(bytes: &[u8; OFFSET_INDEX_ENTRY_BYTES]) -> IndexEntry {
        let (offset, position) = bytes.split_at(4);
        IndexEntry {
            relative_offset: u32::from_be_bytes(offset.try_into().expect("4 bytes")),
            position: u32::from_be_bytes(position.try_into().expect("4 bytes")),
        }
    }
}

/// Entries strictly increasing in both offset and position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last() {
            assert!(
                relative_offset > last.relative_offset,
                "index offsets must increase"
            );
            assert!(position > last.position, "index positions must increase");
        }
        self.entries.push(IndexEntry {
            relative_offset,
            position,
        });
    }

    /// Position of the last indexed batch starting at or before
    /// `relative_offset`; 0 (the segment start) when there is none.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    /// Position of the last indexed batch starting at or before byte
    /// `position`; 0 (the segment start) when there is none. Entries grow in
    /// position as in offset, so the same search works by position.
    pub fn floor_position(&self, position: u32) -> u32 {
        let after = self.entries.partition_point(|e| e.position <= position);
        after.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops the entries at or past byte `position` (a truncated tail).
    pub fn truncate_at_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes an index file; `None` if it is not a whole number of entries,
    /// not strictly increasing, or points at or past `log_size`.
    pub fn decode(bytes: &[u8], log_size: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.as_chunks::<OFFSET_INDEX_ENTRY_BYTES>().0 {
            let IndexEntry {
                relative_offset,
                position,
            } = IndexEntry::from_bytes(chunk);
            let increasing = index
                .last()
                .is_none_or(|l| relative_offset > l.relative_offset && position > l.position);
            if !increasing || u64::from(position) >= log_size {
                return None;
            }
            index.push(relative_offset, position);
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_lookup() {
        let mut index = OffsetIndex::default();
        assert_eq!(index.lookup(5), 0);
        index.push(10, 100);
        index.push(20, 250);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 100);
        assert_eq!(index.lookup(19), 100);
        assert_eq!(index.lookup(20), 250);
        assert_eq!(index.lookup(u32::MAX), 250);
    }

    #[test]
    fn encode_decode_and_reject_inconsistent() {
        let mut index = OffsetIndex::default();
        index.push(1, 61);
        index.push(5, 400);
        let bytes = index.encode();
        assert_eq!(OffsetIndex::decode(&bytes, 1000), Some(index));
        assert_eq!(OffsetIndex::decode(&bytes, 400), None); // position past the log
        assert_eq!(OffsetIndex::decode(&bytes[..7], 1000), None);
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert_eq!(OffsetIndex::decode(&swapped, 1000), None);
    }

    #[test]
    #[should_panic]
    fn push_out_of_order_panics() {
        let mut index = OffsetIndex::default();
        index.push(5, 10);
        index.push(5, 20);
    }
}
