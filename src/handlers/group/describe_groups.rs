//! DescribeGroups: each group from its coordinator.

use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::describe_each;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeGroups,
    min: 0,
    max: 6,
};

/// Each group needs Describe (GROUP_AUTHORIZATION_FAILED). A group that
/// does not exist is Dead; from v6 (KIP-1043) it also answers
/// GROUP_ID_NOT_FOUND with a message, as Kafka 4.0 does.
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    version: i16,
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
    if version >= 6 {
        for group in &mut response.groups {
            if group.error_code == 0 && group.group_state.as_str() == DEAD {
                group.error_code = ResponseError::GroupIdNotFound.code();
                group.error_message = Some(StrBytes::from_string(format!(
                    "Group {} not found.",
                    group.group_id.as_str()
                )));
            }
        }
    }
    response
}

/// The state of a group that is gone (or never was).
const DEAD: &str = "Dead";
