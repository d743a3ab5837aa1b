//! ConsumerGroupDescribe (KIP-848): consumer protocol groups, each from
//! its coordinator, as `kafka-consumer-groups.sh --describe` shows them:
//! epochs, members, what each owns and is to own.

use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, RequestHeader,
};

use super::describe_each;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ConsumerGroupDescribe,
    min: 0,
    max: 1,
};

/// Each group needs Describe (GROUP_AUTHORIZATION_FAILED).
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let with_operations = request.include_authorized_operations;
    let ids = request.group_ids;
    let mut response = ConsumerGroupDescribeResponse::default();
    response.groups = describe_each(groups, access, ids, with_operations, |group_id, reply| {
        GroupMsg::ConsumerDescribe { group_id, reply }
    })
    .await;
    response
}
