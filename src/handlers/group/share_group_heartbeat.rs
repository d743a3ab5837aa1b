//! ShareGroupHeartbeat (KIP-932): a share group member's only request to
//! its coordinator, which joins it, keeps it, hands it its partitions and
//! takes its leave (`group::share_protocol`).

use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, RequestHeader, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};

use super::{call, sender};
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::{ApiSpec, Client};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ShareGroupHeartbeat,
    min: 1,
    max: 1,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    header: &RequestHeader,
    client: &Client,
    version: i16,
    request: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let group_id = request.group_id.to_string();
    let sender = sender(header, client, version);
    call(groups, &group_id, |reply| GroupMsg::ShareHeartbeat {
        sender,
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let mut refused = ShareGroupHeartbeatResponse::default();
        refused.error_code = crate::group::not_available();
        refused
    })
}
