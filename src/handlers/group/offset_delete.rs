//! OffsetDelete: drops committed offsets of topics the group no longer
//! consumes.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::OffsetDelete,
    min: 0,
    max: 0,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    _version: i16,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    call(groups, &group_id, |reply| GroupMsg::DeleteOffsets {
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let mut r = OffsetDeleteResponse::default();
        r.error_code = crate::group::not_available();
        r
    })
}
