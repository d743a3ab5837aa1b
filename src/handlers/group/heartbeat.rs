//! Heartbeat: keeps a member's session; tells it about rebalances.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse, RequestHeader};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::Heartbeat,
    min: 0,
    max: 4,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    _version: i16,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    call(groups, &group_id, |reply| GroupMsg::Heartbeat {
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let mut r = HeartbeatResponse::default();
        r.error_code = crate::group::not_available();
        r
    })
}
