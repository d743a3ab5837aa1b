//! OffsetDelete: drops committed offsets of topics the group no longer
//! consumes.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::ResponseError;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::OffsetDelete,
    min: 0,
    max: 0,
};

/// Needs Delete on the group (GROUP_AUTHORIZATION_FAILED) and Read on
/// each topic (TOPIC_AUTHORIZATION_FAILED), as Kafka checks it.
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    mut request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    if !access.group(Operation::Delete, &group_id) {
        let mut r = OffsetDeleteResponse::default();
        r.error_code = ResponseError::GroupAuthorizationFailed.code();
        return r;
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| access.topic(Operation::Read, t.name.0.as_str()));
    request.topics = allowed;
    let mut response = call(groups, &group_id, |reply| GroupMsg::DeleteOffsets {
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let mut r = OffsetDeleteResponse::default();
        r.error_code = crate::group::not_available();
        r
    });
    response.topics.extend(denied.into_iter().map(|t| {
        let mut rt = OffsetDeleteResponseTopic::default();
        rt.partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut rp = OffsetDeleteResponsePartition::default();
                rp.partition_index = p.partition_index;
                rp.error_code = ResponseError::TopicAuthorizationFailed.code();
                rp
            })
            .collect();
        rt.name = t.name;
        rt
    }));
    response
}
