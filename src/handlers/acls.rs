//! DescribeAcls (API 29), CreateAcls (API 30) and DeleteAcls (API 31), as
//! Kafka's AclApis serves them: Describe on the cluster to list, Alter on
//! the cluster to change; SECURITY_DISABLED without an authorizer. Changes
//! go through `AdminOp::AlterAcls` (topics.toml on one node, the quorum in
//! a cluster). v0 (literal patterns only) comes through the version bridge.

use std::rc::Rc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::security::acl::{AclBinding, AclFilter, WireAcl, ACLS_PER_REQUEST_MAX};
use crate::security::Authorizer;
use crate::shard::{AdminOp, Shard};

pub const DESCRIBE: ApiSpec = ApiSpec {
    key: ApiKey::DescribeAcls,
    min: 0,
    max: 3,
};

pub const CREATE: ApiSpec = ApiSpec {
    key: ApiKey::CreateAcls,
    min: 0,
    max: 3,
};

pub const DELETE: ApiSpec = ApiSpec {
    key: ApiKey::DeleteAcls,
    min: 0,
    max: 3,
};

/// An error code and its message.
type Refusal = (i16, String);

/// Why the whole request is refused before any ACL is looked at.
fn gate(shard: &Shard, access: &Access, op: crate::security::acl::Operation) -> Option<Refusal> {
    if shard.config.authorizer == Authorizer::None {
        return Some((
            ResponseError::SecurityDisabled.code(),
            "No Authorizer is configured.".into(),
        ));
    }
    if !access.cluster(op) {
        return Some((
            ResponseError::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.".into(),
        ));
    }
    None
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn describe(
    shard: &Shard,
    access: &Access,
    _header: &RequestHeader,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    use crate::security::acl::Operation;
    let mut response = DescribeAclsResponse::default();
    if let Some((code, message)) = gate(shard, access, Operation::Describe) {
        response.error_code = code;
        response.error_message = Some(StrBytes::from_string(message));
        return response;
    }
    let filter = AclFilter::from_wire(
        WireAcl {
            resource_type: request.resource_type_filter,
            name: "",
            pattern_type: request.pattern_type_filter,
            principal: "",
            host: "",
            operation: request.operation,
            permission: request.permission_type,
        },
        request.resource_name_filter.as_deref(),
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
    );
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            response.error_code = ResponseError::InvalidRequest.code();
            response.error_message = Some(StrBytes::from_string(e.to_string()));
            return response;
        }
    };
    let topics = shard.topics();
    // The set iterates by pattern, so equal patterns are neighbours.
    for acl in topics.acls.matching(&filter) {
        let p = &acl.pattern;
        let same = response
            .resources
            .last()
            .is_some_and(|r: &DescribeAclsResource| {
                r.resource_type == p.resource_type.code()
                    && r.pattern_type == p.pattern_type.code()
                    && r.resource_name.as_str() == p.name
            });
        if !same {
            let mut r = DescribeAclsResource::default();
            r.resource_type = p.resource_type.code();
            r.resource_name = text(&p.name);
            r.pattern_type = p.pattern_type.code();
            response.resources.push(r);
        }
        let mut d = AclDescription::default();
        d.principal = text(&acl.entry.principal);
        d.host = text(&acl.entry.host);
        d.operation = acl.entry.operation.code();
        d.permission_type = acl.entry.permission.code();
        response
            .resources
            .last_mut()
            .expect("pushed above")
            .acls
            .push(d);
    }
    response
}

pub async fn create(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    use crate::security::acl::Operation;
    let refused = gate(shard, access, Operation::Alter).or_else(|| {
        (request.creations.len() > ACLS_PER_REQUEST_MAX).then(|| {
            (
                ResponseError::InvalidRequest.code(),
                format!("at most {ACLS_PER_REQUEST_MAX} ACLs per request"),
            )
        })
    });
    let checked: Vec<Result<AclBinding, Refusal>> = request
        .creations
        .iter()
        .map(|c| {
            if let Some(r) = &refused {
                return Err(r.clone());
            }
            AclBinding::from_wire(WireAcl {
                resource_type: c.resource_type,
                name: c.resource_name.as_str(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.as_str(),
                host: c.host.as_str(),
                operation: c.operation,
                permission: c.permission_type,
            })
            .map_err(|e| (ResponseError::InvalidRequest.code(), e.to_string()))
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let mut failed = None;
    if !valid.is_empty() {
        let done = shard
            .admin(AdminOp::AlterAcls {
                create: valid,
                delete: Vec::new(),
            })
            .await;
        if done.error != 0 {
            failed = Some((done.error, done.message.unwrap_or_default()));
        }
    }
    let mut response = CreateAclsResponse::default();
    response.results = checked
        .into_iter()
        .map(|c| {
            let mut r = AclCreationResult::default();
            if let Some((code, message)) = c.err().or_else(|| failed.clone()) {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
            }
            r
        })
        .collect();
    response
}

pub async fn delete(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    use crate::security::acl::Operation;
    let refused = gate(shard, access, Operation::Alter).or_else(|| {
        (request.filters.len() > ACLS_PER_REQUEST_MAX).then(|| {
            (
                ResponseError::InvalidRequest.code(),
                format!("at most {ACLS_PER_REQUEST_MAX} filters per request"),
            )
        })
    });
    let topics = shard.topics();
    let matched: Vec<Result<Vec<AclBinding>, Refusal>> = request
        .filters
        .iter()
        .map(|f| {
            if let Some(r) = &refused {
                return Err(r.clone());
            }
            let filter = AclFilter::from_wire(
                WireAcl {
                    resource_type: f.resource_type_filter,
                    name: "",
                    pattern_type: f.pattern_type_filter,
                    principal: "",
                    host: "",
                    operation: f.operation,
                    permission: f.permission_type,
                },
                f.resource_name_filter.as_deref(),
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
            )
            .map_err(|e| (ResponseError::InvalidRequest.code(), e.to_string()))?;
            Ok(topics.acls.matching(&filter).collect())
        })
        .collect();
    let mut doomed: Vec<AclBinding> = matched
        .iter()
        .filter_map(|m| m.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    doomed.sort();
    doomed.dedup();
    let mut failed = None;
    if !doomed.is_empty() {
        let done = shard
            .admin(AdminOp::AlterAcls {
                create: Vec::new(),
                delete: doomed,
            })
            .await;
        if done.error != 0 {
            failed = Some((done.error, done.message.unwrap_or_default()));
        }
    }
    let mut response = DeleteAclsResponse::default();
    response.filter_results = matched
        .into_iter()
        .map(|m| {
            let mut r = DeleteAclsFilterResult::default();
            match m.and_then(|acls| failed.clone().map_or(Ok(acls), Err)) {
                Err((code, message)) => {
                    r.error_code = code;
                    r.error_message = Some(StrBytes::from_string(message));
                }
                Ok(acls) => r.matching_acls = acls.iter().map(matching_acl).collect(),
            }
            r
        })
        .collect();
    response
}

fn matching_acl(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    let mut m = DeleteAclsMatchingAcl::default();
    m.resource_type = acl.pattern.resource_type.code();
    m.resource_name = text(&acl.pattern.name);
    m.pattern_type = acl.pattern.pattern_type.code();
    m.principal = text(&acl.entry.principal);
    m.host = text(&acl.entry.host);
    m.operation = acl.entry.operation.code();
    m.permission_type = acl.entry.permission.code();
    m
}
