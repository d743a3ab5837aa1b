//! What a shard tells the layers above it without naming them. The
//! services layer registers one observer per shard at start; the shard
//! calls it on its own core, after its state has changed, and never awaits
//! it, so an observer that has work to do spawns it.

use super::TopicPartition;

pub trait ShardObserver {
    /// A topics snapshot is applied and every partition's role settled;
    /// `now_led` are the partitions this broker has just come to lead.
    fn topics_applied(&self, now_led: &[TopicPartition]);

    /// A transaction marker for `producer_id` is in `tp`'s log (this shard
    /// owns `tp`), appended just now; called before the append is answered.
    fn txn_marker_written(&self, tp: &TopicPartition, producer_id: i64, commit: bool);
}
