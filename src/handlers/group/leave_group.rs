//! LeaveGroup: one member (v0-2) or a batch of members (v3+) leave, and
//! the rest rebalance at once. v5 adds each member's reason (KIP-800),
//! logged as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse, RequestHeader};

use super::{call, client_reason};
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::LeaveGroup,
    min: 0,
    max: 5,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group_id = request.group_id.to_string();
    for m in &request.members {
        if let Some(reason) = client_reason(m.reason.as_ref()) {
            tracing::info!(group = %group_id, member = %m.member_id.as_str(), reason, "member leaves");
        }
    }
    call(groups, &group_id, |reply| GroupMsg::Leave {
        version,
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let mut r = LeaveGroupResponse::default();
        r.error_code = crate::group::not_available();
        r
    })
}
