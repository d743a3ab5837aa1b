//! A produce's partitions on their owner shard: every batch appended, then
//! every acknowledgement waited for together (flush, ISR), as Kafka's
//! produce purgatory does, not one replication round trip after another.
//!
//! Appends are written on the shard thread, by the blocking thread or
//! through io_uring, as `append_writer` says now (`append_writer.rs`;
//! `adaptive` moves between the first two): off the reactor, each
//! partition's batches are placed at its end on the shard, one job (or one
//! ring write per partition, all at once) writes the whole request's
//! batches, and the shard then makes them part of the logs. A write held
//! up by dirty-page throttling then delays that request only, not every
//! socket on the shard.

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::ops::{led_partition, storage_error_code};
use super::*;
use crate::storage::{AppendResult, Prepared, PreparedAppend, StorageError, WriteFailed};

const NONE: i16 = 0;

/// `on_appended` is told once every batch is appended (or refused), before
/// the acknowledgements are waited for.
pub async fn produce(
    shard: Rc<Shard>,
    items: Vec<ProduceItem>,
    on_appended: Option<oneshot::Sender<()>>,
) -> Vec<ProduceOutcome> {
    let appended: Vec<_> = if shard.append_writer.inline() {
        items
            .into_iter()
            .map(|item| append_inline(&shard, item))
            .collect()
    } else {
        append_off_reactor(&shard, items).await
    };
    if let Some(tx) = on_appended {
        let _ = tx.send(());
    }
    let settling = appended.into_iter().map(|a| async {
        match a {
            Ok(appended) => settle(&shard, appended).await,
            Err(failed) => failed,
        }
    });
    futures::future::join_all(settling).await
}

fn failed(error: i16) -> ProduceOutcome {
    ProduceOutcome {
        error,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

/// A partition that may take the produce, and what its acks need.
struct Admitted {
    partition: Rc<Partition>,
    /// `Some((leader_epoch, min_insync))` for acks=all.
    acks_all: Option<(i32, usize)>,
}

/// One partition's append, done, and what its acknowledgement waits for.
struct Appended {
    tp: TopicPartition,
    partition: Rc<Partition>,
    result: AppendResult,
    /// `Some((leader_epoch, min_insync, timeout))` for acks=all, with one
    /// of the partition's `acks_waiting` slots.
    acks_all: Option<(i32, usize, Duration, AckSlot)>,
}

/// One of a partition's `acks_waiting` slots, given back when dropped: at
/// the answer, or with a produce dropped while it waits (its connection
/// closed with the produce pipelined behind others).
struct AckSlot(Rc<Partition>);

impl AckSlot {
    fn take(partition: &Rc<Partition>) -> AckSlot {
        partition.acks_waiting.set(partition.acks_waiting.get() + 1);
        AckSlot(partition.clone())
    }
}

impl Drop for AckSlot {
    fn drop(&mut self) {
        let waiting = self.0.acks_waiting.get();
        assert!(waiting > 0, "a slot given back was taken");
        self.0.acks_waiting.set(waiting - 1);
    }
}

/// Whether the partition can take the batch now: this broker leads it, a
/// transactional batch was verified (`check_verified`), the ISR is large
/// enough for acks=all, and not too many acks wait. Both append paths
/// place the batch with nothing awaited after it.
fn admit(shard: &Shard, item: &ProduceItem) -> Result<Admitted, ProduceOutcome> {
    let partition = led_partition(shard, &item.tp, -1).map_err(failed)?;
    check_verified(item, &partition)?;
    if item.acks != -1 {
        return Ok(Admitted {
            partition,
            acks_all: None,
        });
    }
    let (leader_epoch, min_insync) = {
        let role = partition.role.borrow();
        let min_insync = min_insync(shard, &item.tp);
        // Kafka refuses before appending, so nothing of the batch is in the
        // log when the ISR is too small.
        if role.isr_len() < min_insync {
            return Err(failed(ResponseError::NotEnoughReplicas.code()));
        }
        (role.leader_epoch(), min_insync)
    };
    if partition.acks_waiting.get() >= shard.config.replica_acks_waiting_max {
        tracing::debug!(topic = %item.tp.topic, partition = item.tp.partition, "too many acks=all produces waiting");
        return Err(failed(ResponseError::RequestTimedOut.code()));
    }
    Ok(Admitted {
        partition,
        acks_all: Some((leader_epoch, min_insync)),
    })
}

/// KIP-890: a transactional batch that would open a transaction here (a
/// client's, or a group coordinator's transactional offset commit) must
/// have been verified with the coordinator since the producer's last
/// marker here; otherwise its transaction may have ended meanwhile and the
/// batch would open one no coordinator knows of (a hanging transaction,
/// holding back the last stable offset for good).
fn check_verified(item: &ProduceItem, partition: &Partition) -> Result<(), ProduceOutcome> {
    let Some((producer_id, epoch)) = item.records.transactional_producer() else {
        return Ok(());
    };
    let point = partition
        .log
        .borrow()
        .producers()
        .txn_verification_point(producer_id, epoch);
    match point {
        Some(point) if item.txn_verified != Some(point) => {
            tracing::debug!(topic = %item.tp.topic, partition = item.tp.partition, producer_id, "transactional batch not verified for this partition");
            crate::stats::TXN_UNVERIFIED_REFUSED.add(1);
            Err(failed(ResponseError::InvalidTxnState.code()))
        }
        _ => Ok(()),
    }
}

/// The answer to an append that failed: logged unless expected, coded.
fn refused(tp: &TopicPartition, e: &StorageError) -> ProduceOutcome {
    if !super::write_failures::failed_storage("produce", tp, e) {
        tracing::debug!(topic = %tp.topic, partition = tp.partition, error = %e, "produce rejected");
    }
    failed(storage_error_code(e))
}

/// What follows a successful append: waiters woken, a roll's sync started,
/// the high watermark moved, and for acks=all a waiting slot taken.
fn appended(
    item: ProduceItem,
    admitted: Admitted,
    result: AppendResult,
) -> Result<Appended, ProduceOutcome> {
    super::write_failures::succeeded();
    let partition = admitted.partition;
    if result.duplicate {
        crate::stats::PRODUCE_DUPLICATES.add(1);
    } else {
        let bytes = item.records.bytes().len() as u64;
        crate::stats::PRODUCED_BYTES.add(bytes);
        partition.traffic.produced(bytes, result.records);
        partition.notify_moved();
        super::durability::start_roll_sync(&item.tp, &partition);
        super::prefault::start(&item.tp, &partition);
        super::replica::advance_high_watermark(&partition);
    }
    let acks_all = admitted.acks_all.map(|(leader_epoch, min_insync)| {
        let timeout = Duration::from_millis(item.timeout_ms);
        (leader_epoch, min_insync, timeout, AckSlot::take(&partition))
    });
    // The answer is all a waiting produce keeps: `item.records` drops here.
    Ok(Appended {
        tp: item.tp,
        partition,
        result,
        acks_all,
    })
}

/// Appends on the shard thread; nothing awaits, so a request's appends run
/// back to back.
fn append_inline(shard: &Shard, item: ProduceItem) -> Result<Appended, ProduceOutcome> {
    let admitted = admit(shard, &item)?;
    let now = crate::runtime::now_ms();
    let appending = Instant::now();
    let result =
        admitted
            .partition
            .log
            .borrow_mut()
            .append_validated(&item.records, now, item.origin);
    let took = appending.elapsed();
    crate::stats::APPEND.observe(took);
    // No second clock read: this runs for every partition of a produce.
    shard.append_writer.note_write(took, appending + took);
    match result {
        Ok(result) => appended(item, admitted, result),
        Err(e) => Err(refused(&item.tp, &e)),
    }
}

/// An append placed at its partition's end, waiting for the writer.
struct Staged {
    index: usize,
    item: ProduceItem,
    admitted: Admitted,
    prepared: PreparedAppend,
}

/// Places every partition's batches, writes them all off the reactor (one
/// job on the blocking thread, or io_uring), then finishes each append. A
/// partition another request is writing right now is waited for, but only
/// once this request's own staged writes are done, so two requests never
/// wait on each other.
async fn append_off_reactor(
    shard: &Shard,
    items: Vec<ProduceItem>,
) -> Vec<Result<Appended, ProduceOutcome>> {
    let started = Instant::now();
    let mut out: Vec<Option<Result<Appended, ProduceOutcome>>> =
        (0..items.len()).map(|_| None).collect();
    let mut staged: Vec<Staged> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let admitted = match admit_when_idle(shard, &item, &mut staged, &mut out).await {
            Ok(admitted) => admitted,
            Err(failure) => {
                out[index] = Some(Err(failure));
                continue;
            }
        };
        let now = crate::runtime::now_ms();
        let prepared =
            admitted
                .partition
                .log
                .borrow_mut()
                .prepare_append(&item.records, now, item.origin);
        out[index] = match prepared {
            Err(e) => Some(Err(refused(&item.tp, &e))),
            Ok(Prepared::Duplicate(result)) => Some(appended(item, admitted, result)),
            Ok(Prepared::Write(prepared)) => {
                staged.push(Staged {
                    index,
                    item,
                    admitted,
                    prepared,
                });
                None
            }
        };
    }
    write_staged(shard, &mut staged, &mut out).await;
    crate::stats::APPEND.observe(started.elapsed());
    out.into_iter()
        .map(|o| o.expect("every item appended or refused"))
        .collect()
}

/// [`admit`], once no other append is being written to the partition.
async fn admit_when_idle(
    shard: &Shard,
    item: &ProduceItem,
    staged: &mut Vec<Staged>,
    out: &mut [Option<Result<Appended, ProduceOutcome>>],
) -> Result<Admitted, ProduceOutcome> {
    loop {
        let admitted = admit(shard, item)?;
        if !admitted.partition.log.borrow().write_in_flight() {
            return Ok(admitted);
        }
        // Ours or another request's: ours are written first, so waiting
        // never holds a partition someone else waits for.
        write_staged(shard, staged, out).await;
        admitted.partition.write_idle().await;
    }
}

/// A staged append and how its write went.
type Written = (PreparedAppend, Result<(), WriteFailed>);

/// Writes the staged appends off the reactor, then finishes each on its
/// log.
async fn write_staged(
    shard: &Shard,
    staged: &mut Vec<Staged>,
    out: &mut [Option<Result<Appended, ProduceOutcome>>],
) {
    if staged.is_empty() {
        return;
    }
    let (rest, prepared): (Vec<_>, Vec<_>) = staged
        .drain(..)
        .map(|s| ((s.index, s.item, s.admitted), s.prepared))
        .unzip();
    let written = if shard.append_writer.ring() {
        write_on_ring(prepared).await
    } else {
        write_on_blocking_thread(shard, prepared).await
    };
    for ((index, item, admitted), (prepared, result)) in rest.into_iter().zip(written) {
        let finished = admitted
            .partition
            .log
            .borrow_mut()
            .finish_append(prepared, result);
        admitted.partition.written.notify();
        out[index] = Some(match finished {
            Ok(result) => appended(item, admitted, result),
            Err(e) => Err(refused(&item.tp, &e)),
        });
    }
}

/// Writes the appends one after another in one job on the blocking thread.
async fn write_on_blocking_thread(shard: &Shard, prepared: Vec<PreparedAppend>) -> Vec<Written> {
    let (written, took): (Vec<Written>, Duration) = crate::runtime::blocking(move || {
        let writing = Instant::now();
        let written = prepared
            .into_iter()
            .map(|p| {
                let result = p.write.run();
                (p, result)
            })
            .collect();
        (written, writing.elapsed())
    })
    .await;
    shard.append_writer.note_write(took, Instant::now());
    written
}

/// Hands every append to io_uring at once: writes to different partitions
/// run side by side in the kernel, and none holds the shard thread.
async fn write_on_ring(prepared: Vec<PreparedAppend>) -> Vec<Written> {
    let writes = prepared.into_iter().map(|p| async move {
        let write = &p.write;
        let result = crate::runtime::write_at(write.file(), write.contiguous(), write.start())
            .await
            // The cut back runs here, on the shard: a failed write (a full
            // disk) is rare, and an ftruncate that shrinks is quick.
            .map_err(|error| write.failed(error));
        (p, result)
    });
    futures::future::join_all(writes).await
}

/// Waits for what acknowledging an append needs: the flush policy's (or
/// `fsync_on_ack`'s) fdatasync, and for acks=all the ISR.
async fn settle(shard: &Shard, appended: Appended) -> ProduceOutcome {
    let Appended {
        tp,
        partition,
        result,
        acks_all,
    } = appended;
    let must_sync = result.flush_needed || (acks_all.is_some() && shard.config.fsync_on_ack);
    let synced = !must_sync || super::durability::flush(&tp, &partition).await;
    let error = match acks_all {
        Some((leader_epoch, min_insync, timeout, slot)) => {
            let error = if synced {
                let waiting = Instant::now();
                let error = super::replica::wait_replicated(
                    shard,
                    &partition,
                    result.last_offset + 1,
                    leader_epoch,
                    min_insync,
                    timeout,
                )
                .await;
                crate::stats::REPLICATION_WAIT.observe(waiting.elapsed());
                error
            } else {
                ResponseError::KafkaStorageError.code()
            };
            drop(slot);
            error
        }
        None if synced => NONE,
        None => ResponseError::KafkaStorageError.code(),
    };
    if error != NONE {
        return failed(error);
    }
    let log_start_offset = partition.log.borrow().log_start_offset();
    ProduceOutcome {
        error: NONE,
        base_offset: result.base_offset,
        log_append_time_ms: result.log_append_time_ms,
        log_start_offset,
    }
}

/// The topic's `min.insync.replicas`, else the broker's.
fn min_insync(shard: &Shard, tp: &TopicPartition) -> usize {
    let topics = shard.topics.borrow();
    topics.get(&tp.topic).map_or_else(
        || usize::try_from(shard.config.min_insync_replicas.max(1)).unwrap_or(1),
        |t| {
            t.parsed(&shard.config, &topics.broker_configs)
                .min_insync_replicas
        },
    )
}
