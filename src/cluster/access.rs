//! Access checks for `doctor`: is the API server reachable, and may Triage get, list
//! and watch each kind it watches (SelfSubjectAccessReview, cluster-wide)?

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde::Serialize;

use super::snapshot::Kind;

/// The verbs every watched kind needs.
pub const VERBS: [&str; 3] = ["get", "list", "watch"];

/// The answer for one resource and verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RbacCheck {
    /// API group (`""` for core).
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub allowed: bool,
    /// The authorizer's reason, or the error that prevented the check.
    pub reason: Option<String>,
}

/// `GET /version`: the server's version, or why it could not be reached.
pub async fn api_version(client: &kube::Client) -> Result<String, String> {
    client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .map_err(|e| e.to_string())
}

/// One SelfSubjectAccessReview per kind and verb, cluster-wide (no namespace).
pub async fn rbac(client: &kube::Client, kinds: &[Kind]) -> Vec<RbacCheck> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut out = Vec::new();
    for kind in kinds {
        let (group, _version, resource) = kind.resource();
        for verb in VERBS {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        verb: Some(verb.to_string()),
                        ..ResourceAttributes::default()
                    }),
                    non_resource_attributes: None,
                },
                ..SelfSubjectAccessReview::default()
            };
            let check = match api.create(&PostParams::default(), &review).await {
                Ok(answer) => {
                    let status = answer.status.unwrap_or_default();
                    RbacCheck {
                        group: group.to_string(),
                        resource: resource.to_string(),
                        verb: verb.to_string(),
                        allowed: status.allowed,
                        reason: status
                            .reason
                            .filter(|r| !r.is_empty())
                            .or(status.evaluation_error.filter(|e| !e.is_empty())),
                    }
                }
                Err(e) => RbacCheck {
                    group: group.to_string(),
                    resource: resource.to_string(),
                    verb: verb.to_string(),
                    allowed: false,
                    reason: Some(format!("the access review failed: {e}")),
                },
            };
            out.push(check);
        }
    }
    out
}
