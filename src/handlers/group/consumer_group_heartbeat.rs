//! ConsumerGroupHeartbeat (KIP-848, the consumer group protocol): a
//! member's only request, which joins it, keeps it, hands it its
//! assignment and takes its leave (`group::consumer_protocol`). v1 members
//! bring their own member id; v0 ones are given one.

use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, RequestHeader,
};

use super::{call, sender};
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::{ApiSpec, Client};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ConsumerGroupHeartbeat,
    min: 0,
    max: 1,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    header: &RequestHeader,
    client: &Client,
    version: i16,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id.to_string();
    let sender = sender(header, client, version);
    call(groups, &group_id, |reply| GroupMsg::ConsumerHeartbeat {
        sender,
        request,
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let mut refused = ConsumerGroupHeartbeatResponse::default();
        refused.error_code = crate::group::not_available();
        refused
    })
}
