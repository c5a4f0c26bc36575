//! The deployscope annotation scheme: `deployscope.dev/<key>` on a workload and on its
//! pod template. The template wins (it is what teams edit next to the containers).
//! An empty or blank value counts as unset: it neither sets a field nor hides the
//! workload's value. Values are returned as written; redaction happens when a context
//! is built.

use super::model::{DeployscopeAnnotations, PodView, Workload};
use crate::triage::context::{Annotations, Tier};

/// Every key of the scheme, in the order reports show them.
pub const KEYS: [&str; 9] = [
    "owner",
    "oncall",
    "tier",
    "gitops-repo",
    "gitops-path",
    "runbook",
    "dashboard",
    "depends-on",
    "ignore",
];

/// The annotations of one workload, merged and parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub annotations: Annotations,
    /// `ignore: "true"` (any case, surrounding blanks allowed).
    pub ignored: bool,
    /// The `ignore` value when it is set to something other than true/false (a typo
    /// that `doctor` warns about).
    pub ignore_unrecognised: Option<String>,
    /// Other `deployscope.dev/*` keys that are not part of the scheme.
    pub unknown_keys: Vec<String>,
}

/// Template value when set, else the workload's; blank values are unset.
fn merged<'a>(
    workload: &'a DeployscopeAnnotations,
    template: &'a DeployscopeAnnotations,
    key: &str,
) -> Option<&'a str> {
    let find = |list: &'a DeployscopeAnnotations| {
        list.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    find(template).or_else(|| find(workload))
}

pub fn parse_tier(raw: &str) -> Option<Tier> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "critical" => Some(Tier::Critical),
        "standard" => Some(Tier::Standard),
        "best-effort" => Some(Tier::BestEffort),
        _ => None,
    }
}

/// `depends-on`: a comma list; blanks dropped, duplicates removed, order kept.
pub fn parse_depends_on(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

fn resolve_lists(workload: &DeployscopeAnnotations, template: &DeployscopeAnnotations) -> Resolved {
    let get = |key| merged(workload, template, key).map(str::to_string);
    let tier_raw = get("tier");
    let ignore = merged(workload, template, "ignore");
    let ignored = ignore.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let ignore_unrecognised = ignore
        .filter(|v| !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false"))
        .map(str::to_string);
    let mut unknown_keys: Vec<String> = workload
        .iter()
        .chain(template.iter())
        .map(|(k, _)| k.clone())
        .filter(|k| !KEYS.contains(&k.as_str()))
        .collect();
    unknown_keys.sort();
    unknown_keys.dedup();
    Resolved {
        annotations: Annotations {
            owner: get("owner"),
            oncall: get("oncall"),
            tier: tier_raw.as_deref().and_then(parse_tier),
            tier_raw,
            gitops_repo: get("gitops-repo"),
            gitops_path: get("gitops-path"),
            runbook: get("runbook"),
            dashboard: get("dashboard"),
            depends_on: merged(workload, template, "depends-on")
                .map(parse_depends_on)
                .unwrap_or_default(),
        },
        ignored,
        ignore_unrecognised,
        unknown_keys,
    }
}

pub fn resolve(w: &Workload) -> Resolved {
    resolve_lists(&w.annotations, &w.template_annotations)
}

/// A bare pod carries its own annotations (there is no template above it).
pub fn resolve_pod(p: &PodView) -> Resolved {
    resolve_lists(&p.annotations, &Vec::new())
}

/// True when the workload is hidden by `deployscope.dev/ignore: "true"`.
pub fn is_ignored(w: &Workload) -> bool {
    merged(&w.annotations, &w.template_annotations, "ignore")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Whether a key is set (non-blank) on the workload or its template, for coverage.
pub fn has_key(w: &Workload, key: &str) -> bool {
    merged(&w.annotations, &w.template_annotations, key).is_some()
}
