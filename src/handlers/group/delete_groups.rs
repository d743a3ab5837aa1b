//! DeleteGroups: empty groups only; their offsets go with them.

use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, RequestHeader};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DeleteGroups,
    min: 0,
    max: 2,
};

/// Each group needs Delete (GROUP_AUTHORIZATION_FAILED).
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let asks = request.groups_names.into_iter().map(|id| async move {
        let group_id = id.to_string();
        let error = if access.group(Operation::Delete, &group_id) {
            call(groups, &group_id, |reply| GroupMsg::Delete {
                group_id: group_id.clone(),
                reply,
            })
            .await
            .unwrap_or_else(crate::group::not_available)
        } else {
            kafka_protocol::ResponseError::GroupAuthorizationFailed.code()
        };
        let mut r = DeletableGroupResult::default();
        r.group_id = id;
        r.error_code = error;
        r
    });
    let mut response = DeleteGroupsResponse::default();
    response.results = futures::future::join_all(asks).await;
    response
}
