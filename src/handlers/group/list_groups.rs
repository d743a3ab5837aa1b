//! ListGroups: every shard's coordinator lists its groups (v4: filtered
//! by state; v5: by group type, KIP-848, where every group here is a
//! "classic" one).

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse, RequestHeader};

use super::call_shard;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ListGroups,
    min: 0,
    max: 5,
};

/// The group type of every group this broker coordinates (the classic
/// protocol; KIP-848's "consumer" groups are not served).
const CLASSIC: &str = "classic";

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    _version: i16,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let asks = (0..groups.shard().count).map(|target| {
        let states = states.clone();
        call_shard(groups, target, move |reply| GroupMsg::List {
            states,
            reply,
        })
    });
    let mut response = ListGroupsResponse::default();
    // Kafka parses the types case-insensitively and lists a group whose
    // type is among them; a filter without "classic" leaves nothing here.
    if !request.types_filter.is_empty()
        && !request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(CLASSIC))
    {
        return response;
    }
    for listed in futures::future::join_all(asks).await {
        match listed {
            Some(listed) => response.groups.extend(listed),
            None => response.error_code = crate::group::not_available(),
        }
    }
    response
}
