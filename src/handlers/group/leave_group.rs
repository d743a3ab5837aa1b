//! LeaveGroup: one member (v0-2) or a batch of members (v3+) leave, and
//! the rest rebalance at once.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse, RequestHeader};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::LeaveGroup,
    min: 0,
    max: 4,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    version: i16,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group_id = request.group_id.to_string();
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
