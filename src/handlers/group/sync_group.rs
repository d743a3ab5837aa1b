//! SyncGroup: the leader's assignment in, each member's share out.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, RequestHeader, SyncGroupRequest, SyncGroupResponse};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::SyncGroup,
    min: 0,
    max: 5,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    version: i16,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let group_id = request.group_id.to_string();
    call(groups, &group_id, |reply| GroupMsg::Sync {
        version,
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let mut r = SyncGroupResponse::default();
        r.error_code = crate::group::not_available();
        r
    })
}
