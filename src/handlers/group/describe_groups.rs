//! DescribeGroups: each group from its coordinator.

use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader,
};

use super::describe_each;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeGroups,
    min: 0,
    max: 5,
};

/// Each group needs Describe (GROUP_AUTHORIZATION_FAILED).
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    // v3+ may ask for each group's authorized operations.
    let with_operations = request.include_authorized_operations;
    let mut response = DescribeGroupsResponse::default();
    response.groups = describe_each(
        groups,
        access,
        request.groups,
        with_operations,
        |group_id, reply| GroupMsg::Describe { group_id, reply },
    )
    .await;
    response
}
