//! Loading a shard's coordinator: create `__transaction_state` if asked and
//! missing, replay the partitions of it this shard owns, then start the
//! tick loop and finish the transactions the replay left in Prepare*.

use std::rc::Rc;
use std::sync::Arc;

use super::{records, Coordinator, Entry, TxnError, TxnState, TXN_TOPIC};
use crate::record::{BatchHeader, Records, BATCH_HEADER_LEN};
use crate::shard::{AdminOp, Shard, TopicPartition};

/// Loads the partitions of this shard's coordinator that this broker leads
/// and has not loaded at their current leader epoch, after forgetting the
/// ids of partitions that moved away. With `create`, creates the topic if
/// missing; without, a missing topic means nothing to load yet. While a
/// load runs, other requests get COORDINATOR_LOAD_IN_PROGRESS (as from
/// Kafka) rather than wait; a failed load answers COORDINATOR_NOT_AVAILABLE.
/// Clients retry both.
pub async fn ensure_loaded(coord: &Rc<Coordinator>, create: bool) -> Result<(), TxnError> {
    if loads_current(coord) {
        return Ok(());
    }
    if coord.loading.get() {
        return Err(TxnError::LoadInProgress);
    }
    coord.loading.set(true);
    let loaded = load(coord, create).await;
    coord.loading.set(false);
    loaded
}

/// Whether what is loaded is exactly what this shard leads now.
fn loads_current(coord: &Coordinator) -> bool {
    let shard = &coord.shard;
    shard.topics().get(TXN_TOPIC).is_some()
        && *coord.loaded.borrow() == shard.led_partitions(TXN_TOPIC)
}

/// Forgets the transactional ids of partitions this broker no longer leads
/// at the epoch they were loaded at: their new coordinator has them.
pub fn unload_moved(coord: &Coordinator) {
    let shard = &coord.shard;
    let moved: Vec<i32> = coord
        .loaded
        .borrow()
        .iter()
        .filter(|(&p, &epoch)| shard.led_epoch(TXN_TOPIC, p) != Some(epoch))
        .map(|(&p, _)| p)
        .collect();
    if moved.is_empty() {
        return;
    }
    let mut txns = coord.txns.borrow_mut();
    let before = txns.len();
    txns.retain(|id, _| !moved.contains(&super::txn_partition(shard, id)));
    let mut loaded = coord.loaded.borrow_mut();
    for p in &moved {
        loaded.remove(p);
    }
    tracing::info!(shard = shard.id, partitions = ?moved, transactional_ids = before - txns.len(), "no longer coordinating the transactional ids of moved {TXN_TOPIC} partitions");
}

async fn load(coord: &Rc<Coordinator>, create: bool) -> Result<(), TxnError> {
    let shard = &coord.shard;
    if shard.topics().get(TXN_TOPIC).is_none() {
        if !create {
            return Ok(());
        }
        if !create_topic(shard).await {
            return Err(TxnError::NotAvailable);
        }
    }
    let Some(topic) = shard.topics().get(TXN_TOPIC).cloned() else {
        return Err(TxnError::NotAvailable);
    };
    unload_moved(coord);
    let started = std::time::Instant::now();
    let mut applied = 0usize;
    let mut newly = Vec::new();
    for partition in 0..topic.partitions {
        let Some(epoch) = shard.led_epoch(TXN_TOPIC, partition) else {
            continue;
        };
        if coord.loaded.borrow().get(&partition) == Some(&epoch) {
            continue;
        }
        match replay(coord, partition).await {
            Ok(n) => applied += n,
            Err(e) => {
                tracing::error!(partition, error = %e, "replaying {TXN_TOPIC}");
                return Err(TxnError::NotAvailable);
            }
        }
        coord.loaded.borrow_mut().insert(partition, epoch);
        newly.push(partition);
    }
    let unfinished: Vec<String> = coord
        .txns
        .borrow()
        .iter()
        .filter(|(id, e)| {
            e.meta.state.is_prepare() && newly.contains(&super::txn_partition(shard, id))
        })
        .map(|(id, _)| id.clone())
        .collect();
    tracing::info!(
        shard = shard.id,
        partitions = ?newly,
        transactional_ids = coord.txns.borrow().len(),
        unfinished = unfinished.len(),
        records = applied,
        ms = started.elapsed().as_millis() as u64,
        "transaction coordinator loaded"
    );
    if !coord.ticking.replace(true) {
        crate::runtime::spawn_local(super::timeouts::tick_loop(coord.clone())).detach();
    }
    for id in unfinished {
        crate::runtime::spawn_local(super::finish(coord.clone(), id)).detach();
    }
    Ok(())
}

/// Loads the partitions this shard has just come to lead.
pub async fn load_led(coord: Rc<Coordinator>) {
    let shard = &coord.shard;
    for _ in 0..LOAD_LED_ATTEMPTS {
        match ensure_loaded(&coord, false).await {
            Ok(()) => return,
            // Another load runs; it may have begun before this leadership.
            Err(TxnError::LoadInProgress) => {
                crate::runtime::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "{TXN_TOPIC} not loaded after a leadership change; the next request retries");
                return;
            }
        }
    }
}

/// Tries, 100 ms apart, a leadership change's load makes while another
/// load runs.
const LOAD_LED_ATTEMPTS: usize = 50;

/// Loads at shard start if the topic exists, so transactions left open or
/// prepared by the last run are finished without waiting for a request.
pub async fn load_at_start(coord: Rc<Coordinator>) {
    let shard = &coord.shard;
    if shard.topics().get(TXN_TOPIC).is_none() {
        return;
    }
    if let Err(e) = ensure_loaded(&coord, false).await {
        tracing::warn!(shard = shard.id, error = %e, "{TXN_TOPIC} not loaded at start; the next request retries");
    }
}

async fn create_topic(shard: &Rc<Shard>) -> bool {
    let configs = [
        // Compacted: the latest state of every transactional id stays.
        ("cleanup.policy", "compact"),
        // Kafka's transaction.state.log.segment.bytes.
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let outcome = shard
        .admin(AdminOp::CreateTopic {
            name: TXN_TOPIC.to_string(),
            assignments: None,
            replication_factor: crate::cluster::internal_replication_factor(
                &shard.topics(),
                &shard.config,
            ),
            partitions: shard.config.transaction_state_num_partitions,
            configs,
            validate_only: false,
        })
        .await;
    let exists = kafka_protocol::ResponseError::TopicAlreadyExists.code();
    if outcome.error != 0 && outcome.error != exists {
        tracing::warn!(error = outcome.error, message = ?outcome.message, "cannot create {TXN_TOPIC}");
        return false;
    }
    true
}

/// Applies every record of one owned partition of the topic, in order.
async fn replay(coord: &Rc<Coordinator>, partition: i32) -> std::io::Result<usize> {
    let shard = &coord.shard;
    let tp = TopicPartition {
        topic: Arc::from(TXN_TOPIC),
        partition,
    };
    shard
        .replay_partition(tp, |bytes| apply_batches(coord, bytes))
        .await
}

/// Applies the records of whole batches in `bytes`; returns the offset
/// after the last batch and how many records were applied.
fn apply_batches(coord: &Coordinator, mut bytes: &[u8]) -> (i64, usize) {
    let mut next = -1;
    let mut applied = 0;
    while let Ok(header) = BatchHeader::parse(bytes) {
        let len = header.total_len();
        if len > bytes.len() {
            break;
        }
        next = header.last_offset() + 1;
        if header.is_compressed() || header.is_control() {
            tracing::warn!(
                offset = header.base_offset,
                "skipping a batch {TXN_TOPIC} cannot hold"
            );
        } else {
            let section = &bytes[BATCH_HEADER_LEN..len];
            for record in Records::new(section, header.records_count) {
                let Ok(record) = record else { break };
                match records::decode(record.key, record.value) {
                    Ok(r) => {
                        apply_record(coord, r);
                        applied += 1;
                    }
                    Err(e) => {
                        let offset = header.base_offset + i64::from(record.offset_delta);
                        tracing::warn!(offset, error = %e, "unreadable {TXN_TOPIC} record")
                    }
                }
            }
        }
        bytes = &bytes[len..];
    }
    (next, applied)
}

/// The later record of an id replaces the earlier; a tombstone removes it.
fn apply_record(coord: &Coordinator, record: records::TxnRecord) {
    let mut txns = coord.txns.borrow_mut();
    match record.value {
        None => {
            txns.remove(&record.transactional_id);
        }
        Some(meta) if meta.state == TxnState::Dead => {
            txns.remove(&record.transactional_id);
        }
        Some(meta) => {
            txns.insert(
                record.transactional_id,
                Entry {
                    meta,
                    pending: None,
                },
            );
        }
    }
}
