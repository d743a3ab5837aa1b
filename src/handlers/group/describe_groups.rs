//! DescribeGroups: each group from its coordinator.

use std::rc::Rc;

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader,
};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::{Operation, ResourceType};

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
    let asks = request.groups.into_iter().map(|id| async move {
        let group_id = id.to_string();
        if !access.group(Operation::Describe, &group_id) {
            let mut d = DescribedGroup::default();
            d.group_id = id;
            d.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
            return d;
        }
        let mut d = call(groups, &group_id, |reply| GroupMsg::Describe {
            group_id: group_id.clone(),
            reply,
        })
        .await
        .unwrap_or_else(|| {
            let mut d = DescribedGroup::default();
            d.group_id = id;
            d.error_code = crate::group::not_available();
            d
        });
        if with_operations && d.error_code == 0 {
            d.authorized_operations = access.operations(ResourceType::Group, &group_id);
        }
        d
    });
    let mut response = DescribeGroupsResponse::default();
    response.groups = futures::future::join_all(asks).await;
    response
}
