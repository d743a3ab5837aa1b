use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::controller::records::MetadataRecord;

fn entry(term: u64, index: u64, payload_bytes: usize) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(MetadataRecord::DeleteTopic {
            name: "x".repeat(payload_bytes),
        }),
    }
}

fn indexes(store: &LogStore) -> Vec<u64> {
    store.entries(..).iter().map(|e| e.log_id.index).collect()
}

fn segments(dir: &Path) -> Vec<u64> {
    list_segments(dir).unwrap()
}

#[test]
fn entries_vote_and_purge_point_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    store
        .log()
        .append((0..5).map(|i| entry(1, i, 10)).collect())
        .unwrap();
    store.log().append(vec![entry(2, 5, 10)]).unwrap();
    let vote = Vote::new(2, 1);
    write_checked_file(&dir.path().join(VOTE_FILE), &vote).unwrap();
    store
        .log()
        .purge(LogId::new(CommittedLeaderId::new(1, 1), 1))
        .unwrap();
    drop(store);

    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&store), vec![2, 3, 4, 5]);
    assert_eq!(store.vote(), Some(vote));
    let (purged, last) = store.state();
    assert_eq!(purged.unwrap().index, 1);
    assert_eq!(last.unwrap(), entry(2, 5, 0).log_id);
    assert_eq!(store.entries(3..=4).len(), 2);
}

#[test]
fn a_torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    store
        .log()
        .append((0..3).map(|i| entry(1, i, 100)).collect())
        .unwrap();
    drop(store);
    let path = segment_path(dir.path(), 0);
    let len = std::fs::metadata(&path).unwrap().len();
    // Cut the last entry in half, as a crash mid-append would.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 50).unwrap();
    drop(file);

    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&store), vec![0, 1]);
    assert!(std::fs::metadata(&path).unwrap().len() < len - 50);
    // Appending continues right after the last whole entry.
    store.log().append(vec![entry(1, 2, 100)]).unwrap();
    drop(store);
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&store), vec![0, 1, 2]);
}

#[test]
fn a_flipped_byte_in_the_tail_fails_its_crc() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    store
        .log()
        .append((0..3).map(|i| entry(1, i, 100)).collect())
        .unwrap();
    drop(store);
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&store), vec![0, 1]);
}

#[test]
fn truncation_and_purging_span_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    // Entries of 1.5 MiB roll a 4 MiB segment every three entries or so.
    let big = 3 << 19;
    for i in 0..8 {
        store.log().append(vec![entry(1, i, big)]).unwrap();
    }
    let rolled = segments(dir.path());
    assert!(rolled.len() >= 3, "{rolled:?}");

    // A conflicting suffix from index 4 goes, files and all.
    store.log().truncate(4).unwrap();
    assert_eq!(indexes(&store), vec![0, 1, 2, 3]);
    store.log().append(vec![entry(2, 4, 10)]).unwrap();

    // A purge deletes whole segments below the purge point only.
    store
        .log()
        .purge(LogId::new(CommittedLeaderId::new(1, 1), 3))
        .unwrap();
    assert_eq!(indexes(&store), vec![4]);
    drop(store);
    let store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&store), vec![4]);
    assert_eq!(store.entries(..)[0].log_id.leader_id.term, 2);
    assert!(segments(dir.path()).len() < rolled.len());
}

#[test]
#[should_panic(expected = "contiguous")]
fn a_gap_in_the_log_is_a_bug() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    store.log().append(vec![entry(1, 0, 1)]).unwrap();
    let _ = store.log().append(vec![entry(1, 2, 1)]);
}

#[test]
#[should_panic(expected = "terms must not decrease")]
fn a_term_going_back_is_a_bug() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    store.log().append(vec![entry(3, 0, 1)]).unwrap();
    let _ = store.log().append(vec![entry(2, 1, 1)]);
}
