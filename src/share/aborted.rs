//! Which batches a `read_committed` share group never gets: those of
//! aborted transactions (Kafka's
//! `SharePartition.filterAbortedTransactionalAcquiredRecords`).
//!
//! A ShareFetch answer has no list of aborted transactions for the member
//! to drop their records itself, as a fetch's has, so the leader passes
//! over them. It walks the batches it read in offset order with the
//! aborted transactions a `read_committed` read names, as a consumer walks
//! a fetch's: a transaction named is open for its producer from its first
//! offset until that producer's next control batch, its marker.

use std::collections::HashSet;

use crate::record::BatchHeader;
use crate::shard::ABORTED_TXNS_PER_FETCH_MAX;

use super::partition::Holds;

/// The walk over one read's batches.
pub struct AbortedWalk {
    /// (producer id, first offset) of the aborted transactions not yet
    /// reached, the lowest first offset last.
    ahead: Vec<(i64, i64)>,
    /// Producers inside an aborted transaction at the walk's batch.
    inside: HashSet<i64>,
    /// The read named as many as it names at most: some may be missing.
    cut_short: bool,
}

impl AbortedWalk {
    /// A walk over the batches of a read that named `aborted`.
    pub fn new(mut aborted: Vec<(i64, i64)>) -> AbortedWalk {
        let cut_short = aborted.len() >= ABORTED_TXNS_PER_FETCH_MAX;
        aborted.sort_unstable_by_key(|&(_, first)| std::cmp::Reverse(first));
        AbortedWalk {
            ahead: aborted,
            inside: HashSet::new(),
            cut_short,
        }
    }

    /// Whether the read named aborted transactions up to its bound, so that
    /// some may be missing and no batch can be told committed.
    pub fn cut_short(&self) -> bool {
        self.cut_short
    }

    /// What the next batch (in offset order) holds.
    pub fn holds(&mut self, header: &BatchHeader) -> Holds {
        while let Some(&(producer, first)) = self.ahead.last() {
            if first > header.last_offset() {
                break;
            }
            self.inside.insert(producer);
            self.ahead.pop();
        }
        if header.is_control() {
            // A producer's one transaction open at a time ends with its
            // next marker: the abort marker of the one named.
            self.inside.remove(&header.producer_id);
            return Holds::Markers;
        }
        if header.is_transactional() && self.inside.contains(&header.producer_id) {
            Holds::Aborted
        } else {
            Holds::Records
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ATTR_CONTROL, ATTR_TRANSACTIONAL};

    fn header(base: i64, count: i32, producer: i64, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: producer,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: count,
        }
    }

    const TXN: i16 = ATTR_TRANSACTIONAL;
    const MARKER: i16 = ATTR_TRANSACTIONAL | ATTR_CONTROL;

    #[test]
    fn only_the_named_transactions_batches_are_aborted() {
        // Producer 7 aborts 0-2 (marker 5); producer 8 commits 3-4 (marker
        // 6) in between; plain records at 7; producer 7 commits 8 (marker 9).
        let mut walk = AbortedWalk::new(vec![(7, 0)]);
        let kinds: Vec<Holds> = [
            header(0, 3, 7, TXN),
            header(3, 2, 8, TXN),
            header(5, 1, 7, MARKER),
            header(6, 1, 8, MARKER),
            header(7, 1, -1, 0),
            header(8, 1, 7, TXN),
            header(9, 1, 7, MARKER),
        ]
        .iter()
        .map(|h| walk.holds(h))
        .collect();
        use Holds::*;
        assert_eq!(
            kinds,
            [Aborted, Records, Markers, Markers, Records, Records, Markers]
        );
    }

    #[test]
    fn a_transaction_begun_before_the_read_is_aborted_from_its_first_batch_read() {
        // The read starts at 10, inside producer 3's transaction begun at 4
        // (its marker at 12); producer 4's begins at 11, after the first
        // batch, and ends at 13.
        let mut walk = AbortedWalk::new(vec![(4, 11), (3, 4)]);
        let kinds: Vec<Holds> = [
            header(10, 1, 3, TXN),
            header(11, 1, 4, TXN),
            header(12, 1, 3, MARKER),
            header(13, 1, 4, MARKER),
            header(14, 1, 3, TXN),
        ]
        .iter()
        .map(|h| walk.holds(h))
        .collect();
        use Holds::*;
        assert_eq!(kinds, [Aborted, Aborted, Markers, Markers, Records]);
    }
}
