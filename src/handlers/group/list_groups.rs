//! ListGroups: every shard's coordinator lists its groups (v4: filtered
//! by state; v5: by group type, KIP-848: "classic" or "consumer").

use std::rc::Rc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
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
    // type (classic or consumer) is among them.
    let types = &request.types_filter;
    let typed = |g: &ListedGroup| {
        types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case(&g.group_type))
    };
    let all = access.cluster(Operation::Describe);
    for listed in futures::future::join_all(asks).await {
        match listed {
            Some(listed) => {
                response.groups.extend(listed.into_iter().filter(|g| {
                    typed(g) && (all || access.group(Operation::Describe, &g.group_id))
                }))
            }
            None => response.error_code = crate::group::not_available(),
        }
    }
    response
}
