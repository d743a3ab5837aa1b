//! ConsumerGroupDescribe (KIP-848): consumer protocol groups, each from
//! its coordinator, as `kafka-consumer-groups.sh --describe` shows them:
//! epochs, members, what each owns and is to own.

use std::rc::Rc;

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, RequestHeader,
};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::{Operation, ResourceType};

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
    let asks = request.group_ids.into_iter().map(|id| async move {
        let group_id = id.to_string();
        if !access.group(Operation::Describe, &group_id) {
            let mut d = DescribedGroup::default();
            d.group_id = id;
            d.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
            return d;
        }
        let mut d = call(groups, &group_id, |reply| GroupMsg::ConsumerDescribe {
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
    let mut response = ConsumerGroupDescribeResponse::default();
    response.groups = futures::future::join_all(asks).await;
    response
}
