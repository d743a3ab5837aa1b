//! The group coordinator APIs. Each file decodes nothing itself: the
//! dispatcher hands it a decoded request, it routes the request to the
//! group's coordinator shard (`crate::group`) and builds the response.
//! A request the coordinator could not take answers
//! COORDINATOR_NOT_AVAILABLE, which clients retry.

mod consumer_group_describe;
mod consumer_group_heartbeat;
mod delete_groups;
mod describe_groups;
mod find_coordinator;
mod heartbeat;
mod join_group;
mod leave_group;
mod list_groups;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod share_group_describe;
mod share_group_heartbeat;
mod share_group_offset_resets;
mod share_group_offsets;
mod sync_group;
mod txn_offset_commit;

use std::rc::Rc;

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::{
    consumer_group_describe_response, describe_groups_response, ApiKey,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, LeaveGroupRequest, LeaveGroupResponse, RequestHeader,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::ResponseError;

use super::{decode, ApiSpec, Reply, RequestError};
use crate::group::{ask as call, Coordinator, GroupMsg, Sender};
use crate::security::acl::{Operation, ResourceType};
use crate::services::Services;

pub use consumer_group_describe::SPEC as CONSUMER_GROUP_DESCRIBE;
pub use consumer_group_heartbeat::SPEC as CONSUMER_GROUP_HEARTBEAT;
pub use delete_groups::SPEC as DELETE_GROUPS;
pub use describe_groups::SPEC as DESCRIBE_GROUPS;
pub use find_coordinator::SPEC as FIND_COORDINATOR;
pub use heartbeat::SPEC as HEARTBEAT;
pub use join_group::SPEC as JOIN_GROUP;
pub use leave_group::SPEC as LEAVE_GROUP;
pub use list_groups::SPEC as LIST_GROUPS;
pub use offset_commit::SPEC as OFFSET_COMMIT;
pub use offset_delete::SPEC as OFFSET_DELETE;
pub use offset_fetch::SPEC as OFFSET_FETCH;
pub use share_group_describe::SPEC as SHARE_GROUP_DESCRIBE;
pub use share_group_heartbeat::SPEC as SHARE_GROUP_HEARTBEAT;
pub use share_group_offset_resets::ALTER_SPEC as ALTER_SHARE_GROUP_OFFSETS;
pub use share_group_offset_resets::DELETE_SPEC as DELETE_SHARE_GROUP_OFFSETS;
pub use share_group_offsets::SPEC as DESCRIBE_SHARE_GROUP_OFFSETS;
pub use sync_group::SPEC as SYNC_GROUP;
pub use txn_offset_commit::SPEC as TXN_OFFSET_COMMIT;

const SPECS: [ApiSpec; 19] = [
    FIND_COORDINATOR,
    JOIN_GROUP,
    SYNC_GROUP,
    HEARTBEAT,
    LEAVE_GROUP,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    LIST_GROUPS,
    DESCRIBE_GROUPS,
    DELETE_GROUPS,
    OFFSET_DELETE,
    TXN_OFFSET_COMMIT,
    CONSUMER_GROUP_HEARTBEAT,
    CONSUMER_GROUP_DESCRIBE,
    SHARE_GROUP_HEARTBEAT,
    SHARE_GROUP_DESCRIBE,
    DESCRIBE_SHARE_GROUP_OFFSETS,
    ALTER_SHARE_GROUP_OFFSETS,
    DELETE_SHARE_GROUP_OFFSETS,
];

/// Whether `key` is one of the group APIs served here.
pub fn serves(key: ApiKey) -> bool {
    SPECS.iter().any(|s| s.key == key)
}

/// Decodes, serves and encodes one group API request. The membership
/// APIs need Read on the group (GROUP_AUTHORIZATION_FAILED), checked here;
/// the others check their groups and topics one by one.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    services: &Services,
    access: &super::access::Access,
    header: &RequestHeader,
    client: &super::Client,
    out: &Reply,
    buf: &mut Bytes,
    carried: super::legacy::Carried,
) -> Result<Option<Vec<super::Piece>>, RequestError> {
    let (key, version) = (out.key, out.version);
    let groups = &services.groups;
    macro_rules! serve {
        ($module:ident) => {
            serve!($module::handle)
        };
        ($module:ident :: $handle:ident) => {
            out.encoded(
                $module::$handle(groups, access, header, version, decode(buf, key, version)?).await,
            )
        };
    }
    // A membership request refused answers only its error code.
    macro_rules! read_group {
        ($module:ident, $request:ty, $response:ty) => {{
            let request: $request = decode(buf, key, version)?;
            if !access.group(Operation::Read, &request.group_id) {
                let mut refused = <$response>::default();
                refused.error_code = ResponseError::GroupAuthorizationFailed.code();
                return out.encoded(refused);
            }
            out.encoded($module::handle(groups, header, version, request).await)
        }};
    }
    match key {
        ApiKey::FindCoordinator => out.encoded(
            find_coordinator::handle(
                &services.shard,
                access,
                header,
                &client.session.listener,
                version,
                decode(buf, key, version)?,
            )
            .await,
        ),
        ApiKey::JoinGroup => {
            let request: JoinGroupRequest = decode(buf, key, version)?;
            if !access.group(Operation::Read, &request.group_id) {
                let code = ResponseError::GroupAuthorizationFailed.code();
                return out.encoded(crate::group::join_error(code, &request.member_id));
            }
            out.encoded(join_group::handle(groups, header, client, version, request).await)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let request: ConsumerGroupHeartbeatRequest = decode(buf, key, version)?;
            if !access.group(Operation::Read, &request.group_id) {
                let mut refused = ConsumerGroupHeartbeatResponse::default();
                refused.error_code = ResponseError::GroupAuthorizationFailed.code();
                return out.encoded(refused);
            }
            let handled =
                consumer_group_heartbeat::handle(groups, header, client, version, request);
            out.encoded(handled.await)
        }
        ApiKey::ShareGroupHeartbeat => {
            let request: ShareGroupHeartbeatRequest = decode(buf, key, version)?;
            if !access.group(Operation::Read, &request.group_id) {
                let mut refused = ShareGroupHeartbeatResponse::default();
                refused.error_code = ResponseError::GroupAuthorizationFailed.code();
                return out.encoded(refused);
            }
            let handled = share_group_heartbeat::handle(groups, header, client, version, request);
            out.encoded(handled.await)
        }
        ApiKey::SyncGroup => read_group!(sync_group, SyncGroupRequest, SyncGroupResponse),
        ApiKey::Heartbeat => read_group!(heartbeat, HeartbeatRequest, HeartbeatResponse),
        ApiKey::LeaveGroup => read_group!(leave_group, LeaveGroupRequest, LeaveGroupResponse),
        ApiKey::OffsetCommit => out.encoded(
            offset_commit::handle(
                groups,
                access,
                version,
                decode(buf, key, version)?,
                carried.commit_timestamps,
            )
            .await,
        ),
        ApiKey::OffsetFetch => serve!(offset_fetch),
        ApiKey::ListGroups => serve!(list_groups),
        ApiKey::DescribeGroups => serve!(describe_groups),
        ApiKey::DeleteGroups => serve!(delete_groups),
        ApiKey::OffsetDelete => serve!(offset_delete),
        ApiKey::TxnOffsetCommit => {
            let request = decode(buf, key, version)?;
            let txns = &services.txns;
            out.encoded(txn_offset_commit::handle(groups, txns, access, version, request).await)
        }
        ApiKey::ConsumerGroupDescribe => serve!(consumer_group_describe),
        ApiKey::ShareGroupDescribe => serve!(share_group_describe),
        ApiKey::DescribeShareGroupOffsets => serve!(share_group_offsets),
        ApiKey::AlterShareGroupOffsets => serve!(share_group_offset_resets::handle_alter),
        ApiKey::DeleteShareGroupOffsets => serve!(share_group_offset_resets::handle_delete),
        _ => Err(RequestError::UnsupportedVersion {
            key,
            version,
            client: client.software(),
        }),
    }
}

/// Longest client-given reason (JoinGroup v8+, LeaveGroup v5+, KIP-800)
/// a log line carries; the protocol bounds it only by the frame.
const REASON_LOG_MAX: usize = 256;

/// A client's reason for joining or leaving, cut to [`REASON_LOG_MAX`]
/// bytes for a log line; `None` when it gave none.
fn client_reason(reason: Option<&kafka_protocol::protocol::StrBytes>) -> Option<&str> {
    let reason = reason.map(|r| r.as_str()).filter(|r| !r.is_empty())?;
    Some(&reason[..reason.floor_char_boundary(REASON_LOG_MAX)])
}

/// A group's description, as DescribeGroups and ConsumerGroupDescribe
/// answer it.
trait Described {
    fn refused(group_id: GroupId, code: i16) -> Self;
    fn error_code(&self) -> i16;
    fn set_operations(&mut self, operations: i32);
}

/// Both descriptions carry these fields under the same names.
macro_rules! described {
    ($t:ty) => {
        impl Described for $t {
            fn refused(group_id: GroupId, code: i16) -> Self {
                let mut d = Self::default();
                d.group_id = group_id;
                d.error_code = code;
                d
            }
            fn error_code(&self) -> i16 {
                self.error_code
            }
            fn set_operations(&mut self, operations: i32) {
                self.authorized_operations = operations;
            }
        }
    };
}
described!(describe_groups_response::DescribedGroup);
described!(consumer_group_describe_response::DescribedGroup);
described!(kafka_protocol::messages::share_group_describe_response::DescribedGroup);

/// Each of `ids` described by its coordinator (`ask` makes the message),
/// where the principal may Describe it (GROUP_AUTHORIZATION_FAILED), with
/// its authorized operations when asked for.
async fn describe_each<T: Described>(
    groups: &Rc<Coordinator>,
    access: &super::access::Access,
    ids: Vec<GroupId>,
    with_operations: bool,
    ask: impl Fn(String, oneshot::Sender<T>) -> GroupMsg,
) -> Vec<T> {
    let ask = &ask;
    let asks = ids.into_iter().map(|id| async move {
        let group_id = id.to_string();
        if !access.group(Operation::Describe, &group_id) {
            let code = ResponseError::GroupAuthorizationFailed.code();
            return T::refused(id, code);
        }
        let described = call(groups, &group_id, |reply| ask(group_id.clone(), reply)).await;
        let mut d = described.unwrap_or_else(|| T::refused(id, crate::group::not_available()));
        if with_operations && d.error_code() == 0 {
            d.set_operations(access.operations(ResourceType::Group, &group_id));
        }
        d
    });
    futures::future::join_all(asks).await
}

/// Who sent a membership request: what the coordinator keeps of the
/// client for DescribeGroups (its id, "" without one, and its host).
fn sender(header: &RequestHeader, client: &super::Client, version: i16) -> Sender {
    Sender {
        version,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: client.host.clone(),
    }
}

/// Like [`call`], to one shard's coordinator.
async fn call_shard<R>(
    groups: &Rc<Coordinator>,
    target: usize,
    msg: impl FnOnce(oneshot::Sender<R>) -> GroupMsg,
) -> Option<R> {
    let (tx, rx) = oneshot::channel();
    crate::group::send(groups, target, msg(tx)).await;
    rx.await.ok()
}
