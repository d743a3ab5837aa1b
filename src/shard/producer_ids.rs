//! Producer ids for InitProducerId, unique across restarts.
//!
//! Ids come in blocks of [`PRODUCER_ID_BLOCK_SIZE`], as Kafka's
//! ProducerIdManager takes them. Shard 0 hands out blocks and persists the
//! start of the next one (`data_dir/producer-id-block`, fsynced) before any
//! id of a block is used, so a restart never hands out an id twice; ids of
//! a block that was not used up are skipped. Every shard draws ids from its
//! own current block, so only one InitProducerId in a thousand crosses
//! cores. In a cluster the blocks will come from the metadata quorum.

use std::cell::Cell;
use std::path::Path;

use futures::channel::oneshot;
use futures::lock::Mutex;

use super::{Shard, ShardMsg};

/// Ids per block (Kafka's PRODUCER_ID_BLOCK_SIZE).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Where shard 0 keeps the first id of the next block.
pub const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";
/// The shard that hands out blocks.
const BLOCK_SHARD: usize = 0;

/// Why no producer id could be had.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("cannot persist the next producer id block: {0}")]
    Io(#[from] std::io::Error),
    #[error("the shard that hands out producer id blocks is gone")]
    Unreachable,
    #[error("producer ids are exhausted")]
    Exhausted,
}

/// One shard's view: its current block and, on shard 0, the next block.
#[derive(Default)]
pub struct ProducerIds {
    /// Next id to hand out and the end of this shard's block (exclusive).
    current: Cell<(i64, i64)>,
    /// Shard 0 only: the first id of the next block once read from disk.
    /// The lock keeps block writes in order, so the file only grows.
    next_block: Mutex<Option<i64>>,
}

impl Shard {
    /// A producer id no earlier InitProducerId got, on this run or before.
    pub async fn new_producer_id(&self) -> Result<i64, ProducerIdError> {
        let (next, end) = self.producer_ids.current.get();
        if next < end {
            self.producer_ids.current.set((next + 1, end));
            return Ok(next);
        }
        let (start, end) = if self.id == BLOCK_SHARD {
            self.allocate_producer_id_block().await?
        } else {
            let (reply, answer) = oneshot::channel();
            self.send_to_shard(BLOCK_SHARD, ShardMsg::ProducerIdBlock { reply })
                .await
                .map_err(|()| ProducerIdError::Unreachable)?;
            answer.await.map_err(|_| ProducerIdError::Unreachable)??
        };
        assert!(start < end, "a block holds at least one id");
        self.producer_ids.current.set((start + 1, end));
        Ok(start)
    }

    /// Shard 0: the next block, persisted as taken before it is returned.
    pub async fn allocate_producer_id_block(&self) -> Result<(i64, i64), ProducerIdError> {
        assert_eq!(self.id, BLOCK_SHARD, "only shard 0 hands out blocks");
        if let Some(controller) = &self.controller {
            // In a cluster the blocks come from the metadata quorum, so no
            // two brokers ever hand out the same id.
            let record = crate::controller::records::MetadataRecord::AllocateProducerIds {
                broker: self.config.node_id,
                count: PRODUCER_ID_BLOCK_SIZE as i32,
            };
            return match controller.propose(record).await {
                Ok((
                    _,
                    crate::controller::records::RecordOutcome::ProducerIds { first, count },
                )) => Ok((first, first + i64::from(count))),
                Ok(_) => Err(ProducerIdError::Unreachable),
                Err(e) => {
                    tracing::warn!(error = %e, "no producer id block from the quorum");
                    Err(ProducerIdError::Unreachable)
                }
            };
        }
        let mut next_block = self.producer_ids.next_block.lock().await;
        let path = self.config.data_dir.join(PRODUCER_ID_BLOCK_FILE);
        let start = match *next_block {
            Some(start) => start,
            None => {
                let read = path.clone();
                crate::runtime::blocking(move || read_next_block(&read)).await?
            }
        };
        let end = start
            .checked_add(PRODUCER_ID_BLOCK_SIZE)
            .ok_or(ProducerIdError::Exhausted)?;
        crate::runtime::blocking(move || write_next_block(&path, end)).await?;
        *next_block = Some(end);
        tracing::info!(start, end, "took a producer id block");
        Ok((start, end))
    }
}

/// The first id of the next block; 0 for a new data dir.
fn read_next_block(path: &Path) -> std::io::Result<i64> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Replaces the file durably (write, fsync, rename, directory fsync).
fn write_next_block(path: &Path, next: i64) -> std::io::Result<()> {
    crate::metadata::write_atomically(path, next.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_block_survives_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PRODUCER_ID_BLOCK_FILE);
        assert_eq!(read_next_block(&path).unwrap(), 0);
        write_next_block(&path, 2000).unwrap();
        assert_eq!(read_next_block(&path).unwrap(), 2000);
        std::fs::write(&path, "garbage").unwrap();
        assert!(read_next_block(&path).is_err());
    }
}
