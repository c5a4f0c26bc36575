//! Redaction of credentials in text that leaves the cluster.
//!
//! Annotation values, event and container messages, Argo CD sync messages: anything
//! Triage copies from the cluster into a work order passes through [`Redactor::redact`]
//! first. Built-in patterns follow the deployscope conventions (CONTRACTS.md); operators
//! add their own in `[redaction] patterns`. A token keeps its well-known prefix
//! (`ghp_[REDACTED]`) so a reader still knows what kind of secret was there, and the
//! rest of the text stays as it was.

use std::borrow::Cow;

use anyhow::Context as _;
use regex::{Captures, Regex, RegexSet};

use crate::config::RedactionConfig;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// One pattern and how its match is rewritten.
#[derive(Debug, Clone)]
struct Rule {
    regex: Regex,
    /// Text kept before `[REDACTED]`: the capture group named `keep`, if the pattern has one.
    keeps_prefix: bool,
    /// Only the capture group named `secret` is replaced, when the pattern has one.
    has_secret_group: bool,
}

/// Built-in patterns. A `keep` group is left in place, the rest of the match is replaced.
const BUILTIN: &[&str] = &[
    // user:password@ in URLs (any scheme).
    r"(?i)\b[a-z][a-z0-9+.\-]*://(?P<secret>[^\s/@:]+:[^\s/@]+)@",
    // GitHub tokens: classic PAT ghp_, OAuth gho_, user-to-server ghu_, server ghs_, refresh ghr_.
    r"\b(?P<keep>gh[pousr]_)[A-Za-z0-9]{20,}",
    r"\b(?P<keep>github_pat_)[A-Za-z0-9_]{20,}",
    r"\b(?P<keep>glpat-)[A-Za-z0-9_\-]{20,}",
    r"\b(?P<keep>xox[abprs]-)[A-Za-z0-9\-]{10,}",
    // AWS access key ids (long-lived AKIA, temporary ASIA).
    r"\b(?P<keep>A(?:KIA|SIA))[0-9A-Z]{16}\b",
    // JWTs: base64url header starting {" , payload, signature.
    r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
    // Query parameters whose name ends in key, token, secret, password or signature.
    r#"(?i)(?P<keep>[?&;][A-Za-z0-9_.\-]*(?:key|token|secret|password|passwd|signature|sig)=)[^&\s#;"'<>()\[\]{},]+"#,
    // Authorization headers copied into messages.
    r"(?i)(?P<keep>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/\-]{8,}=*",
];

/// Replaces credentials in text. Cheap to clone (regexes share their programs).
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Quick "is there anything to do" check over all rules at once.
    any: RegexSet,
}

impl Redactor {
    /// The built-in patterns plus `[redaction] patterns`. An invalid pattern is an error
    /// naming `redaction.patterns[i]`.
    pub fn from_config(config: &RedactionConfig) -> anyhow::Result<Redactor> {
        let mut sources: Vec<&str> = BUILTIN.to_vec();
        for (i, pattern) in config.patterns.iter().enumerate() {
            if pattern.is_empty() {
                anyhow::bail!("redaction.patterns[{i}] is empty");
            }
            let regex = Regex::new(pattern).with_context(|| {
                format!("redaction.patterns[{i}] is not a valid regular expression: {pattern:?}")
            })?;
            if regex.is_match("") {
                anyhow::bail!(
                    "redaction.patterns[{i}] matches the empty string, which would redact everywhere: {pattern:?}"
                );
            }
            sources.push(pattern);
        }
        let rules = sources
            .iter()
            .map(|source| {
                let regex = Regex::new(source)
                    .with_context(|| format!("invalid redaction pattern {source:?}"))?;
                let names: Vec<&str> = regex.capture_names().flatten().collect();
                Ok(Rule {
                    keeps_prefix: names.contains(&"keep"),
                    has_secret_group: names.contains(&"secret"),
                    regex,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let any = RegexSet::new(&sources).context("cannot combine the redaction patterns")?;
        Ok(Redactor { rules, any })
    }

    /// The built-in patterns only.
    pub fn builtin() -> Redactor {
        // The built-in patterns are constants covered by tests; they always compile.
        match Self::from_config(&RedactionConfig::default()) {
            Ok(r) => r,
            Err(e) => unreachable!("built-in redaction patterns must compile: {e:#}"),
        }
    }

    /// `text` with every credential replaced; borrowed when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let matched = self.any.matches(text);
        if !matched.matched_any() {
            return Cow::Borrowed(text);
        }
        let mut out = Cow::Borrowed(text);
        for i in matched.iter() {
            let rule = &self.rules[i];
            let replaced = rule
                .regex
                .replace_all(&out, |caps: &Captures<'_>| rule.replacement(caps));
            if let Cow::Owned(s) = replaced {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// `redact` into an owned string (for optional fields copied into a Context).
    pub fn redact_owned(&self, text: &str) -> String {
        self.redact(text).into_owned()
    }
}

/// Whole documents: every text in a work order or a signal that came from outside
/// (alert annotations and labels, Argo CD messages and URLs, cluster text) redacted in
/// place, before anything is rendered from it. Rendering clips long values, and a
/// token cut in half no longer matches its pattern, so redacting the finished text
/// would be too late.
impl Redactor {
    pub fn work_order(&self, wo: &mut crate::triage::workorder::WorkOrder) {
        for s in &mut wo.series {
            self.opt(&mut s.message);
            self.opt(&mut s.generator_url);
            self.map(&mut s.labels);
        }
        if let Some(d) = wo.argocd.as_mut() {
            self.argocd(d);
        }
        if let Some(ctx) = wo.context.as_mut() {
            self.context(ctx);
        }
        let l = &mut wo.links;
        for u in &mut l.alert_generators {
            self.text(u);
        }
        self.opt(&mut l.argocd_app);
        self.opt(&mut l.silence);
        self.opt(&mut l.runbook);
        self.opt(&mut l.dashboard);
        if let Some(r) = wo.route.as_mut() {
            self.text(&mut r.reason);
        }
    }

    /// A signal as comments quote it.
    pub fn signal(&self, s: &mut crate::signal::Signal) {
        self.opt(&mut s.message);
        self.map(&mut s.labels);
        self.map(&mut s.annotations);
        if let Some(a) = s.alert.as_mut() {
            self.opt(&mut a.generator_url);
            self.map(&mut a.group.common_annotations);
            self.map(&mut a.group.common_labels);
            self.map(&mut a.group.group_labels);
            self.opt(&mut a.group.external_url);
        }
        if let Some(d) = s.argocd.as_mut() {
            self.argocd(d);
        }
    }

    /// Enrichment redacts what it copies; this covers what it composed around it
    /// (notes quote annotation values) and contexts built elsewhere.
    fn context(&self, ctx: &mut crate::triage::context::Context) {
        let a = &mut ctx.annotations;
        for v in [
            &mut a.owner,
            &mut a.oncall,
            &mut a.tier_raw,
            &mut a.gitops_repo,
            &mut a.gitops_path,
            &mut a.runbook,
            &mut a.dashboard,
        ] {
            self.opt(v);
        }
        for v in &mut a.depends_on {
            self.text(v);
        }
        if let Some(h) = ctx.health.as_mut() {
            self.text(&mut h.reason);
        }
        for p in &mut ctx.evidence.pods {
            for c in &mut p.containers {
                self.opt(&mut c.waiting_message);
            }
        }
        for e in &mut ctx.evidence.events {
            self.opt(&mut e.message);
        }
        for c in &mut ctx.evidence.conditions {
            self.opt(&mut c.message);
        }
        for d in &mut ctx.dependencies {
            self.opt(&mut d.reason);
        }
        self.opt(&mut ctx.likely_cause);
        for n in &mut ctx.notes {
            self.text(n);
        }
    }

    fn argocd(&self, d: &mut crate::signal::ArgocdDetail) {
        self.opt(&mut d.health_message);
        self.opt(&mut d.operation_message);
        self.opt(&mut d.argocd_url);
        self.opt(&mut d.destination_server);
        for s in &mut d.sources {
            self.opt(&mut s.repo_url);
        }
        for r in &mut d.sync_result {
            self.opt(&mut r.message);
        }
        for c in &mut d.conditions {
            self.opt(&mut c.message);
        }
        for r in &mut d.resources {
            self.opt(&mut r.health_message);
        }
    }

    fn text(&self, s: &mut String) {
        if let Cow::Owned(r) = self.redact(s) {
            *s = r;
        }
    }

    fn opt(&self, s: &mut Option<String>) {
        if let Some(s) = s.as_mut() {
            self.text(s);
        }
    }

    fn map(&self, m: &mut std::collections::BTreeMap<String, String>) {
        for v in m.values_mut() {
            self.text(v);
        }
    }
}

impl Rule {
    fn replacement(&self, caps: &Captures<'_>) -> String {
        let whole = caps.get(0).map_or("", |m| m.as_str());
        if self.has_secret_group
            && let (Some(all), Some(secret)) = (caps.get(0), caps.name("secret"))
        {
            let start = secret.start() - all.start();
            let end = secret.end() - all.start();
            return format!("{}{REDACTED}{}", &whole[..start], &whole[end..]);
        }
        if self.keeps_prefix
            && let Some(keep) = caps.name("keep")
        {
            return format!("{}{REDACTED}", keep.as_str());
        }
        REDACTED.to_string()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_patterns_compile_and_leave_plain_text_alone() {
        let r = Redactor::builtin();
        let text = "Back-off 40s restarting failed container=main pod=my-pod_argocd";
        assert!(matches!(r.redact(text), Cow::Borrowed(_)));
    }
}
