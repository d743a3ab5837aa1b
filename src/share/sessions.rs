//! Share sessions (KIP-932): the partitions a share group member fetches
//! from this broker, kept between its ShareFetch requests so each names
//! only what changed, as incremental fetch sessions do for consumers.
//!
//! A session is keyed by (group, member) and checked by its epoch: 0 opens
//! it (anew, replacing an older one), each later request brings the next
//! epoch, and -1 closes it, releasing what the member holds there. Each
//! core keeps the sessions of the connections it serves; a member whose
//! connection lands on another core is told SHARE_SESSION_NOT_FOUND and
//! opens a new one there.

use std::collections::HashMap;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::shard::TopicPartition;

/// Kafka's share session epochs with a meaning of their own.
pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// A partition of a session: the topic id the member names it by, and
/// the partition.
pub type SessionPartition = (Uuid, TopicPartition);

struct Session {
    partitions: Vec<SessionPartition>,
    next_epoch: i32,
    last_used_ms: i64,
}

/// A request's step through its session.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// The session's partitions after the step (those it had, when it
    /// closed).
    pub partitions: Vec<SessionPartition>,
    /// The session closed with this request.
    pub closed: bool,
}

pub struct Sessions {
    sessions: HashMap<(String, String), Session>,
    max: usize,
}

impl Sessions {
    pub fn new(max: usize) -> Sessions {
        Sessions {
            sessions: HashMap::new(),
            max,
        }
    }

    /// A ShareFetch's step: `added` partitions join the session (all of
    /// it, at epoch 0), `forgotten` ones (topic id, partition) leave it.
    /// `idle_ms` is how long an unused session may be dropped after, when
    /// a new one needs its room.
    pub fn fetch(
        &mut self,
        key: (String, String),
        epoch: i32,
        added: Vec<SessionPartition>,
        forgotten: &[(Uuid, i32)],
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<Step, i16> {
        if epoch == INITIAL_EPOCH {
            if !self.sessions.contains_key(&key) && self.sessions.len() >= self.max {
                self.drop_idle(now_ms, idle_ms);
                if self.sessions.len() >= self.max {
                    return Err(ResponseError::ShareSessionLimitReached.code());
                }
            }
            let mut partitions = Vec::new();
            add(&mut partitions, added);
            self.sessions.insert(
                key,
                Session {
                    partitions: partitions.clone(),
                    next_epoch: 1,
                    last_used_ms: now_ms,
                },
            );
            return Ok(Step {
                partitions,
                closed: false,
            });
        }
        let session = self.step(&key, epoch, now_ms)?;
        if epoch == FINAL_EPOCH {
            let session = self.sessions.remove(&key).expect("stepped above");
            return Ok(Step {
                partitions: session.partitions,
                closed: true,
            });
        }
        session
            .partitions
            .retain(|(id, tp)| !forgotten.contains(&(*id, tp.partition)));
        add(&mut session.partitions, added);
        Ok(Step {
            partitions: session.partitions.clone(),
            closed: false,
        })
    }

    /// A ShareAcknowledge's step: it needs an open session (epoch 0 opens
    /// none) and may close it.
    pub fn acknowledge(
        &mut self,
        key: (String, String),
        epoch: i32,
        now_ms: i64,
    ) -> Result<Step, i16> {
        if epoch == INITIAL_EPOCH {
            return Err(ResponseError::InvalidShareSessionEpoch.code());
        }
        let session = self.step(&key, epoch, now_ms)?;
        let partitions = session.partitions.clone();
        let closed = epoch == FINAL_EPOCH;
        if closed {
            self.sessions.remove(&key);
        }
        Ok(Step { partitions, closed })
    }

    /// Checks `epoch` against the session's and moves it on (the final
    /// epoch fits any).
    fn step(
        &mut self,
        key: &(String, String),
        epoch: i32,
        now_ms: i64,
    ) -> Result<&mut Session, i16> {
        let session = self
            .sessions
            .get_mut(key)
            .ok_or(ResponseError::ShareSessionNotFound.code())?;
        if epoch != FINAL_EPOCH {
            if epoch != session.next_epoch {
                return Err(ResponseError::InvalidShareSessionEpoch.code());
            }
            // Kafka's epochs wrap to 1, past the initial one.
            session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        }
        session.last_used_ms = now_ms;
        Ok(session)
    }

    /// Drops the sessions unused for `idle_ms`: their members are gone, or
    /// will open new ones.
    fn drop_idle(&mut self, now_ms: i64, idle_ms: i64) {
        self.sessions
            .retain(|_, s| now_ms.saturating_sub(s.last_used_ms) <= idle_ms);
    }
}

/// Adds the partitions not in `to` already, in their order.
fn add(to: &mut Vec<SessionPartition>, added: Vec<SessionPartition>) {
    for p in added {
        if !to.iter().any(|(_, tp)| *tp == p.1) {
            to.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn p(n: i32) -> SessionPartition {
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition: n,
        };
        (Uuid::from_u128(1), tp)
    }

    fn key() -> (String, String) {
        ("g".into(), "m".into())
    }

    #[test]
    fn a_session_opens_moves_by_epoch_and_closes() {
        let mut s = Sessions::new(1);
        let opened = s
            .fetch(key(), 0, vec![p(0), p(1)], &[], 0, 10)
            .expect("opens");
        assert_eq!(opened.partitions, vec![p(0), p(1)]);
        let not_found = ResponseError::ShareSessionNotFound.code();
        let bad_epoch = ResponseError::InvalidShareSessionEpoch.code();
        assert_eq!(s.fetch(key(), 2, vec![], &[], 0, 10), Err(bad_epoch));
        let uuid = Uuid::from_u128(1);
        let next = s
            .fetch(key(), 1, vec![p(2)], &[(uuid, 0)], 0, 10)
            .expect("steps");
        assert_eq!(next.partitions, vec![p(1), p(2)]);
        assert_eq!(s.acknowledge(key(), 0, 0), Err(bad_epoch));
        assert_eq!(s.acknowledge(key(), 2, 0).map(|s| s.closed), Ok(false));
        let other = ("g".to_string(), "n".to_string());
        let full = ResponseError::ShareSessionLimitReached.code();
        assert_eq!(
            s.fetch(other.clone(), 0, vec![p(0)], &[], 10, 10),
            Err(full)
        );
        let closed = s
            .fetch(key(), FINAL_EPOCH, vec![], &[], 0, 10)
            .expect("closes");
        assert_eq!((closed.partitions.len(), closed.closed), (2, true));
        assert_eq!(s.acknowledge(key(), 3, 0), Err(not_found));
        assert!(s.fetch(other, 0, vec![p(0)], &[], 10, 10).is_ok());
    }

    #[test]
    fn an_idle_session_makes_room_for_a_new_one() {
        let mut s = Sessions::new(1);
        s.fetch(key(), 0, vec![p(0)], &[], 0, 10).expect("opens");
        let other = ("g".to_string(), "n".to_string());
        assert!(s.fetch(other, 0, vec![p(0)], &[], 11, 10).is_ok());
        let not_found = ResponseError::ShareSessionNotFound.code();
        assert_eq!(s.fetch(key(), 1, vec![], &[], 11, 10), Err(not_found));
    }
}
