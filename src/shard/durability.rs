//! Getting appended data to disk without blocking the shard: the flush
//! policy (`flush.messages`, `flush.ms`, `--fsync-on-ack`) and the
//! fdatasync of rolled segments both run on glommio's blocking thread.

use std::rc::Rc;

use super::{Partition, Shard, TopicPartition};

/// Makes everything appended to `partition` so far durable: rolled segments
/// not synced yet and the active one. False if an fdatasync failed.
pub async fn flush(tp: &TopicPartition, partition: &Partition) -> bool {
    let (files, up_to) = {
        let log = partition.log.borrow();
        (log.files_to_sync(), log.log_end_offset())
    };
    let synced = match files {
        // Reopening a file the shard's cache closed can fail (EMFILE).
        Err(e) => Err(e),
        Ok(files) => {
            crate::runtime::blocking(move || files.iter().try_for_each(|f| f.sync_data())).await
        }
    };
    match synced {
        Ok(()) => {
            partition.log.borrow_mut().mark_flushed(up_to);
            crate::stats::LOG_FLUSHES.add(1);
            true
        }
        Err(e) => {
            super::write_failures::failed_io("fdatasync", tp, &e);
            false
        }
    }
}

/// Starts the background fdatasync of `partition`'s rolled segments, if any
/// wait and none is running; a failure leaves them for the next call.
pub fn start_roll_sync(tp: &TopicPartition, partition: &Rc<Partition>) {
    let Some(job) = partition.log.borrow_mut().take_roll_sync() else {
        return;
    };
    let (tp, partition) = (tp.clone(), partition.clone());
    crate::runtime::spawn_local(async move {
        let scope = job.scope();
        let result = crate::runtime::blocking(move || job.run()).await;
        match &result {
            Ok(()) => crate::stats::ROLL_SYNCS.add(1),
            Err(e) => {
                super::write_failures::failed_io("fdatasync of rolled segments (retried)", &tp, e)
            }
        }
        partition
            .log
            .borrow_mut()
            .finish_roll_sync(scope, result.is_ok());
    })
    .detach();
}

impl Shard {
    /// One pass of the flush scheduler: flushes partitions whose `flush.ms`
    /// passed with no append to notice it, and starts roll syncs that wait
    /// (after a retention roll, or a failed attempt).
    pub async fn flush_pass(self: &Rc<Self>) {
        let now = crate::runtime::now_ms();
        for (tp, partition) in self.owned_partitions() {
            start_roll_sync(&tp, &partition);
            let overdue = partition.log.borrow().flush_overdue(now);
            if overdue {
                flush(&tp, &partition).await;
            }
        }
    }
}
