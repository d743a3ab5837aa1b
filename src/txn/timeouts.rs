//! The coordinator's periodic pass (Kafka's abortTimedOutTransactions and
//! transactional id expiry): abort transactions open past their timeout,
//! fencing the producer that left them; finish prepared ones whose markers
//! are not all written; forget ids idle past `transactional_id_expiration_ms`.

use std::rc::Rc;
use std::time::Duration;

use super::{append, finish, write, Coordinator, TxnState};

/// Aborts transactions open past their timeout (fencing their producer),
/// finishes prepared ones left unfinished, and forgets expired ids; until
/// the shard stops. Each pass is bounded by the ids this shard holds.
pub async fn tick_loop(coord: Rc<Coordinator>) {
    let shard = &coord.shard;
    let every = Duration::from_millis(
        shard
            .config
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .max(1),
    );
    while crate::runtime::timeout(every, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        tick(&coord).await;
    }
}

async fn tick(coord: &Rc<Coordinator>) {
    let shard = &coord.shard;
    super::load::unload_moved(coord);
    let now = crate::runtime::now_ms();
    let expiration_ms = shard.config.transactional_id_expiration_ms;
    let mut timed_out = Vec::new();
    let mut unfinished = Vec::new();
    let mut expired = Vec::new();
    for (id, e) in coord.txns.borrow().iter() {
        if e.pending.is_some() {
            continue;
        }
        if e.meta.timed_out(now) {
            timed_out.push(id.clone());
        } else if e.meta.state.is_prepare() {
            unfinished.push(id.clone());
        } else if e.meta.expired(now, expiration_ms) {
            expired.push(id.clone());
        }
    }
    for id in timed_out {
        if abort_timed_out(coord, &id).await {
            unfinished.push(id);
        }
    }
    for id in unfinished {
        crate::runtime::spawn_local(finish(coord.clone(), id)).detach();
    }
    for id in expired {
        expire(coord, &id, now, expiration_ms).await;
    }
}

/// Kafka's abortTimedOutTransactions for one id: PrepareAbort at a bumped
/// epoch, so the producer that left it open is fenced. Decided on the
/// state at the time of the write (earlier writes of the pass awaited), so
/// an id its producer ended meanwhile is left alone. True if written.
async fn abort_timed_out(coord: &Rc<Coordinator>, id: &str) -> bool {
    let now = crate::runtime::now_ms();
    let next = match coord.txns.borrow().get(id) {
        Some(e) if e.pending.is_none() && e.meta.timed_out(now) => {
            super::fencing_abort(&coord.shard, e.meta.fence_and_abort(now))
        }
        _ => return false,
    };
    tracing::info!(
        transactional_id = id,
        producer_id = next.producer_id,
        "aborting a transaction open past its timeout"
    );
    let written = write(coord, id, next, TxnState::PrepareEpochFence).await;
    if written.is_ok() {
        crate::stats::TXN_TIMED_OUT.add(1);
    }
    written.is_ok()
}

/// Writes `id`'s tombstone and forgets it, if it is still expired.
async fn expire(coord: &Rc<Coordinator>, id: &str, now: i64, expiration_ms: i64) {
    {
        let mut txns = coord.txns.borrow_mut();
        match txns.get_mut(id) {
            Some(e) if e.pending.is_none() && e.meta.expired(now, expiration_ms) => {
                e.pending = Some(TxnState::Dead);
            }
            _ => return,
        }
    }
    let written = append(coord, id, None).await;
    let mut txns = coord.txns.borrow_mut();
    if written.is_ok() {
        txns.remove(id);
    } else if let Some(e) = txns.get_mut(id) {
        e.pending = None;
    }
}
