//! Reading a whole partition back, for the coordinators that keep their
//! state in an internal topic (`__consumer_offsets`, `__transaction_state`)
//! and rebuild it on load.

use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::*;

/// Bytes read per step of a replay.
const REPLAY_READ_BYTES: u32 = 1 << 20;

impl Shard {
    /// Reads `tp` from its log start to its end in steps of whole batches,
    /// handing each step's bytes to `apply`, which returns the offset after
    /// the last batch it took and how many records it applied. Returns the
    /// records applied in all.
    pub async fn replay_partition(
        self: &Rc<Self>,
        tp: TopicPartition,
        mut apply: impl FnMut(&[u8]) -> (i64, usize),
    ) -> std::io::Result<usize> {
        let mut offset = -1;
        let mut applied = 0;
        loop {
            let item = ReadArgs {
                tp: &tp,
                offset: offset.max(0),
                max_bytes: REPLAY_READ_BYTES,
                min_one_batch: true,
                committed: false,
                current_leader_epoch: -1,
                replica: None,
                to_log_end: true,
                unless_unchanged: None,
                any_replica: false,
                client_rack: None,
            };
            let outcome = self.read(std::iter::once(item)).await.remove(0);
            if outcome.error != 0 {
                return Err(std::io::Error::other(format!(
                    "read error {}",
                    outcome.error
                )));
            }
            if offset < 0 {
                offset = outcome.log_start_offset;
                if offset < 0 {
                    return Ok(0);
                }
                continue;
            }
            if outcome.slices.is_empty() {
                return Ok(applied);
            }
            let slices = outcome.slices;
            let bytes = crate::runtime::blocking(move || -> std::io::Result<Vec<u8>> {
                let mut out = Vec::new();
                for s in slices {
                    let start = out.len();
                    out.resize(start + s.len as usize, 0);
                    s.file.read_exact_at(&mut out[start..], s.position)?;
                }
                Ok(out)
            })
            .await?;
            let (next, n) = apply(&bytes);
            applied += n;
            if next <= offset {
                return Err(std::io::Error::other("replay made no progress"));
            }
            offset = next;
        }
    }
}
