//! The shard high watermark checkpoints on real files: their text, and
//! their layout when the shard count changes.

use std::fs;

use super::hw_checkpoint::*;
use super::io::TMP_SUFFIX;
use super::tests::file_names;

fn entry(topic: &str, partition: i32, topic_id: &str, high_watermark: i64) -> HwEntry {
    HwEntry {
        topic: topic.into(),
        partition,
        topic_id: topic_id.into(),
        high_watermark,
    }
}

/// Shard of a topic's partition in these tests: its number mod `shards`.
fn by_partition(shards: usize) -> impl Fn(&str, i32) -> usize {
    move |_, partition| partition as usize % shards
}

#[test]
fn a_checkpoint_reads_back_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = vec![entry("a", 0, "id-a", 10), entry("b.x_y-z", 7, "id-b", 0)];
    write_checkpoint(&hw_checkpoint_path(tmp.path(), 0), &entries).unwrap();
    assert_eq!(
        fs::read_to_string(tmp.path().join("replication-offset-checkpoint-0")).unwrap(),
        "0\n2\na 0 id-a 10\nb.x_y-z 7 id-b 0\n"
    );
    let stored = load_high_watermarks(tmp.path(), 1, by_partition(1)).unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored.get("a", 0, "id-a"), Some(10));
    assert_eq!(stored.get("b.x_y-z", 7, "id-b"), Some(0));
    assert_eq!(
        stored.get("a", 0, "id-other"),
        None,
        "a recreated topic does not take its predecessor's value"
    );
    assert_eq!(stored.get("a", 1, "id-a"), None);
}

#[test]
fn a_corrupt_checkpoint_counts_as_none_and_is_replaced() {
    for text in [
        "",
        "1\n0\n",
        "0\n2\na 0 id 1\n",
        "0\n1\na 0 id\n",
        "0\n1\na 0 id 1 extra\n",
        "0\n1\na -1 id 1\n",
        "0\n1\na 0 id -5\n",
        "0\n1\n 0 id 5\n",
        "0\nx\n",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let path = hw_checkpoint_path(tmp.path(), 0);
        fs::write(&path, text).unwrap();
        let stored = load_high_watermarks(tmp.path(), 1, by_partition(1)).unwrap();
        assert!(stored.is_empty(), "{text:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n0\n", "{text:?}");
    }
}

#[test]
fn files_that_fit_the_shard_count_are_left_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    // Not in the order a relayout writes: a rewrite would show.
    let zero = "0\n2\nt 2 id 5\nt 0 id 9\n";
    fs::write(hw_checkpoint_path(tmp.path(), 0), zero).unwrap();
    fs::write(hw_checkpoint_path(tmp.path(), 1), "0\n1\nt 1 id 3\n").unwrap();
    let leftover = format!("replication-offset-checkpoint-1{TMP_SUFFIX}");
    fs::write(tmp.path().join(&leftover), "half").unwrap();
    let stored = load_high_watermarks(tmp.path(), 2, by_partition(2)).unwrap();
    assert_eq!(
        (
            stored.get("t", 0, "id"),
            stored.get("t", 1, "id"),
            stored.get("t", 2, "id")
        ),
        (Some(9), Some(3), Some(5))
    );
    assert_eq!(
        fs::read_to_string(hw_checkpoint_path(tmp.path(), 0)).unwrap(),
        zero
    );
    assert_eq!(
        file_names(tmp.path()),
        [
            "replication-offset-checkpoint-0",
            "replication-offset-checkpoint-1"
        ],
        "an interrupted write's temporary file is removed"
    );
}

#[test]
fn a_new_shard_count_lays_the_files_out_again_keeping_every_value() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        hw_checkpoint_path(tmp.path(), 0),
        "0\n2\nt 0 id 9\nt 2 id 5\n",
    )
    .unwrap();
    fs::write(
        hw_checkpoint_path(tmp.path(), 1),
        "0\n2\nt 1 id 3\nt 3 old 8\n",
    )
    .unwrap();
    // A stale file of a third shard: its value for t-0 is lower, and wins.
    fs::write(hw_checkpoint_path(tmp.path(), 2), "0\n1\nt 0 id 4\n").unwrap();

    // Down to one shard: everything in shard 0's file, the others gone.
    let stored = load_high_watermarks(tmp.path(), 1, by_partition(1)).unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(
        stored.get("t", 0, "id"),
        Some(4),
        "the lower of two is safe"
    );
    assert_eq!(file_names(tmp.path()), ["replication-offset-checkpoint-0"]);
    assert_eq!(
        fs::read_to_string(hw_checkpoint_path(tmp.path(), 0)).unwrap(),
        "0\n4\nt 0 id 4\nt 1 id 3\nt 2 id 5\nt 3 old 8\n"
    );

    // Up to two: each partition in its owner's file.
    let again = load_high_watermarks(tmp.path(), 2, by_partition(2)).unwrap();
    assert_eq!(again.len(), 4);
    assert_eq!(
        fs::read_to_string(hw_checkpoint_path(tmp.path(), 0)).unwrap(),
        "0\n2\nt 0 id 4\nt 2 id 5\n"
    );
    assert_eq!(
        fs::read_to_string(hw_checkpoint_path(tmp.path(), 1)).unwrap(),
        "0\n2\nt 1 id 3\nt 3 old 8\n"
    );
    let settled = load_high_watermarks(tmp.path(), 2, by_partition(2)).unwrap();
    assert_eq!(settled.get("t", 3, "old"), Some(8));
}

#[test]
fn a_data_dir_without_checkpoints_gets_none() {
    let tmp = tempfile::tempdir().unwrap();
    let stored = load_high_watermarks(tmp.path(), 4, by_partition(4)).unwrap();
    assert!(stored.is_empty());
    assert!(file_names(tmp.path()).is_empty(), "nothing written");
}

#[test]
fn a_relayout_cut_short_is_finished_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    // As a crash leaves it when one shard becomes two: shard 0's file
    // already rewritten without partition 1, shard 1's not yet written,
    // and every value in the spare file.
    fs::write(hw_checkpoint_path(tmp.path(), 0), "0\n1\nt 0 id 9\n").unwrap();
    fs::write(
        hw_checkpoint_path(tmp.path(), 2),
        "0\n2\nt 0 id 9\nt 1 id 3\n",
    )
    .unwrap();
    let stored = load_high_watermarks(tmp.path(), 2, by_partition(2)).unwrap();
    assert_eq!(
        (stored.get("t", 0, "id"), stored.get("t", 1, "id")),
        (Some(9), Some(3)),
        "nothing lost"
    );
    assert_eq!(
        file_names(tmp.path()),
        [
            "replication-offset-checkpoint-0",
            "replication-offset-checkpoint-1"
        ]
    );
    assert_eq!(
        fs::read_to_string(hw_checkpoint_path(tmp.path(), 1)).unwrap(),
        "0\n1\nt 1 id 3\n"
    );
}
