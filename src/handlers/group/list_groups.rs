//! ListGroups: every shard's coordinator lists its groups (v4: filtered
//! by state; v5: by group type, KIP-848, where every group here is a
//! "classic" one).

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse, RequestHeader};

use super::call_shard;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ListGroups,
    min: 0,
    max: 5,
};

/// The group type of every group this broker coordinates (the classic
/// protocol; KIP-848's "consumer" groups are not served).
const CLASSIC: &str = "classic";

/// Describe on the cluster lists every group; else only the groups the
/// principal may Describe, as Kafka filters them.
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
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
    let all = access.cluster(Operation::Describe);
    for listed in futures::future::join_all(asks).await {
        match listed {
            Some(listed) => response.groups.extend(
                listed
                    .into_iter()
                    .filter(|g| all || access.group(Operation::Describe, &g.group_id)),
            ),
            None => response.error_code = crate::group::not_available(),
        }
    }
    response
}
