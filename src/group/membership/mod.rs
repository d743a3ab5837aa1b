//! The classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and the timers) as Kafka's GroupCoordinator runs it.
//!
//! Each function changes one [`Group`] and answers through oneshots; it
//! returns `true` when the group's metadata record must be written (a new
//! assignment, a group gone empty, a static member replaced).
//!
//! By role: `join` (JoinGroup, member ids, protocol choice, static
//! members), `rebalance` (the join phase, its completion, members leaving
//! it, and the timers), `sync` (SyncGroup and Heartbeat), `leave`
//! (LeaveGroup).

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::state::{Group, GroupState, JoinWaiter, Member};

mod join;
mod leave;
mod rebalance;
mod sync;

pub use join::{join, new_member_id, select_protocol, Join};
pub use leave::{leave, leave_identities, leave_response};
pub use rebalance::{maybe_complete_join, prepare_rebalance, tick};
pub use sync::{heartbeat, sync, Sync};

// Shared between the roles (children see these through `use super::*`).
use join::{fenced, join_response};
use rebalance::{after_member_removed, remove_member};

/// The limits a coordinator applies, from the broker config.
#[derive(Clone, Debug)]
pub struct Limits {
    pub initial_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn join_error(error: i16, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = error;
    r.generation_id = -1;
    r.member_id = s(member_id);
    r
}

pub fn sync_error(error: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = error;
    r
}
