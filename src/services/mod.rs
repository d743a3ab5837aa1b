//! What one core serves, above its shard (Redpanda's sharded services):
//! the [`Shard`] with its partitions, and the services that use it, each
//! wired to the others here at start.
//!
//! [`Services`] owns its core's `Rc<Shard>` and everything per core that
//! is not a partition's log: the replica fetchers (`fetcher.rs`) and the
//! incremental fetch sessions of the connections this core serves
//! (`fetch_sessions.rs`). Services call down into the shard (produce, read,
//! follower appends); the shard calls up only through the
//! [`ShardObserver`] registered here, so it names nothing of this layer.

pub mod fetch_sessions;
mod fetcher;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use crate::shard::{Shard, ShardObserver, TopicPartition};
use fetch_sessions::FetchSessions;

/// One core's services. Lives on that core alone; connections (`net`)
/// hold it and hand it to `handlers`.
pub struct Services {
    pub shard: Rc<Shard>,
    /// Incremental fetch sessions of the connections this core serves.
    pub fetch_sessions: RefCell<FetchSessions>,
    /// Replica fetchers, one per broker this shard follows partitions from.
    fetchers: fetcher::Fetchers,
}

impl Services {
    /// This core's services around `shard`, registered as its observer
    /// before the shard applies its first topics snapshot.
    pub fn new(shard: Rc<Shard>) -> Rc<Services> {
        let fetch_sessions = FetchSessions::new(
            shard.config.max_incremental_fetch_session_cache_slots,
            shard.config.min_incremental_fetch_session_eviction_ms,
        );
        let services = Rc::new(Services {
            shard,
            fetch_sessions: RefCell::new(fetch_sessions),
            fetchers: fetcher::Fetchers::default(),
        });
        let observer: Weak<dyn ShardObserver> = Rc::downgrade(&services) as Weak<Services>;
        services.shard.set_observer(observer);
        services
    }
}

impl ShardObserver for Services {
    fn topics_applied(&self, _now_led: &[TopicPartition]) {
        self.fetchers.reconcile(&self.shard);
    }
}
