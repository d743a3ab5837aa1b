//! DescribeShareGroupOffsets (KIP-932): each share group's partitions'
//! start offsets, from its coordinator, as `kafka-share-groups.sh
//! --describe` and Admin's `listShareGroupOffsets` show them.

use std::rc::Rc;

use kafka_protocol::messages::describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup as Described;
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, RequestHeader,
};
use kafka_protocol::ResponseError;

use super::call;
use crate::group::{Coordinator, GroupMsg};
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeShareGroupOffsets,
    min: 0,
    max: 0,
};

/// Each group needs Describe (GROUP_AUTHORIZATION_FAILED); a topic the
/// principal may not Describe is left out.
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let asks = request.groups.into_iter().map(|g| async move {
        let group_id = g.group_id.to_string();
        let refused = |code: i16| {
            let mut d = Described::default();
            d.group_id = g.group_id.clone();
            d.error_code = code;
            d
        };
        if !access.group(Operation::Describe, &group_id) {
            return refused(ResponseError::GroupAuthorizationFailed.code());
        }
        let topics = g.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.topic_name.to_string(), t.partitions.clone()))
                .collect()
        });
        let answer = call(groups, &group_id, |reply| GroupMsg::ShareOffsets {
            group_id: group_id.clone(),
            topics,
            reply,
        });
        let mut described = answer
            .await
            .unwrap_or_else(|| refused(crate::group::not_available()));
        described
            .topics
            .retain(|t| access.topic(Operation::Describe, &t.topic_name));
        described
    });
    let mut response = DescribeShareGroupOffsetsResponse::default();
    response.groups = futures::future::join_all(asks).await;
    response
}
