//! ShareGroupDescribe (KIP-932): share groups, each from its coordinator,
//! as `kafka-share-groups.sh --describe` shows them.

use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, RequestHeader, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
};

use super::describe_each;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ShareGroupDescribe,
    min: 1,
    max: 1,
};

/// Each group needs Describe (GROUP_AUTHORIZATION_FAILED).
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let with_operations = request.include_authorized_operations;
    let mut response = ShareGroupDescribeResponse::default();
    response.groups = describe_each(
        groups,
        access,
        request.group_ids,
        with_operations,
        |group_id, reply| GroupMsg::ShareDescribe { group_id, reply },
    )
    .await;
    response
}
