//! Decisions → forge operations. Pure: the processor and the scheduler write what this
//! returns into the outbox, in the same transaction as the decision.
//!
//! Text is rendered now, at decision time, so the outbox holds exactly what will be
//! sent and a retry sends the same thing. Operations never name the issue number: the
//! worker resolves it from the work order when it runs, because a create queued just
//! before may not have been performed yet.

use serde::{Deserialize, Serialize};

use crate::config::LabelsConfig;
use crate::forge::{CloseReason, IssueDraft, IssueState, LabelSpec, RepoRef};
use crate::render::{self, CommentEvent, PlainRenderer, Renderer};
use crate::signal::Signal;
use crate::triage::lifecycle::{CommentReason, Decision, Rules};
use crate::triage::workorder::WorkOrder;

/// One forge operation as stored in the outbox (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Create the work order's issue. `supersedes`: the number of the closed issue the
    /// new one follows, which a retried create must not adopt as its own.
    Create {
        /// Chosen by `forge::routing` when the decision was taken.
        repo: RepoRef,
        draft: IssueDraft,
        labels: Vec<LabelSpec>,
        supersedes: Option<u64>,
    },
    Comment {
        body: String,
    },
    SetState {
        state: IssueState,
        reason: Option<CloseReason>,
    },
    AddLabels {
        labels: Vec<String>,
    },
    RemoveLabels {
        labels: Vec<String>,
    },
}

impl Operation {
    /// Stable lower-case name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Create { .. } => "create",
            Operation::Comment { .. } => "comment",
            Operation::SetState { .. } => "set_state",
            Operation::AddLabels { .. } => "add_labels",
            Operation::RemoveLabels { .. } => "remove_labels",
        }
    }
}

/// What `plan` needs besides the decisions.
pub struct PlanContext<'a> {
    /// The work order after the decisions were applied.
    pub work_order: &'a WorkOrder,
    /// The signal that caused the decisions (`None` for scheduler ticks).
    pub trigger: Option<&'a Signal>,
    pub rules: &'a Rules,
    pub labels: &'a LabelsConfig,
    pub renderer: &'a dyn Renderer,
    /// The issue number of the work order's previous (closed) issue, if any.
    pub previous_issue: Option<u64>,
    /// Where a new issue goes.
    pub repo: &'a RepoRef,
    /// A human muted the issue (`triage/mute`): state and label changes still happen,
    /// comments do not.
    pub muted: bool,
    /// A human reopened the issue: it is not closed automatically, and the recovered
    /// comment does not say it will be.
    pub held_open: bool,
}

/// The forge operations for `decisions`, in the order they must be performed.
pub fn plan(decisions: &[Decision], cx: &PlanContext<'_>) -> Vec<Operation> {
    let wo = cx.work_order;
    let mut ops = Vec::new();
    let push_comment = |ops: &mut Vec<Operation>, event: &CommentEvent| {
        if !cx.muted {
            ops.push(comment(cx, event));
        }
    };
    for decision in decisions {
        match decision {
            Decision::Open { .. } => {
                let labels = render::labels(wo, cx.labels);
                let draft = draft(cx, labels.clone());
                // Shared labels get their colours and descriptions made once. The key
                // label is unique to this work order: the forge makes it with the issue
                // (GitHub creates unknown labels on create, the Gitea client resolves
                // them), which saves a paced mutation per issue — GitHub allows 500 an
                // hour.
                let shared: Vec<String> = labels
                    .iter()
                    .filter(|l| **l != wo.key_label)
                    .cloned()
                    .collect();
                ops.push(Operation::Create {
                    repo: cx.repo.clone(),
                    labels: render::label_specs(&shared, cx.labels),
                    draft,
                    supersedes: cx.previous_issue,
                });
            }
            Decision::Reopen => {
                ops.push(Operation::SetState {
                    state: IssueState::Open,
                    reason: None,
                });
                push_comment(
                    &mut ops,
                    &CommentEvent::Reopened {
                        closed_at: wo.closed_at,
                    },
                );
            }
            Decision::Comment {
                reason,
                occurrences,
                since_last,
            } => {
                let event = match (reason, cx.trigger) {
                    (CommentReason::Repeat, Some(signal)) => CommentEvent::Repeat {
                        signal: Box::new(signal.clone()),
                        occurrences: *occurrences,
                        since_last: *since_last,
                    },
                    (_, signal) => CommentEvent::Relapse {
                        signal: signal.map(|s| Box::new(s.clone())),
                        occurrences: *occurrences,
                    },
                };
                push_comment(&mut ops, &event);
            }
            Decision::RouteChange { from, to } => {
                let old = render::route_labels(from, cx.labels);
                let new = render::route_labels(to, cx.labels);
                let remove: Vec<String> =
                    old.iter().filter(|l| !new.contains(l)).cloned().collect();
                let add: Vec<String> = new.iter().filter(|l| !old.contains(l)).cloned().collect();
                if !remove.is_empty() {
                    ops.push(Operation::RemoveLabels { labels: remove });
                }
                if !add.is_empty() {
                    ops.push(Operation::AddLabels { labels: add });
                }
                push_comment(
                    &mut ops,
                    &CommentEvent::RouteChange {
                        from: from.clone(),
                        to: to.clone(),
                    },
                );
            }
            Decision::Resolve => {
                let closes_at = wo
                    .resolved_at
                    .filter(|_| cx.rules.auto_close && !cx.held_open)
                    .and_then(|r| r.checked_add(cx.rules.close_after).ok());
                push_comment(&mut ops, &CommentEvent::Recovered { closes_at });
            }
            Decision::Close => {
                push_comment(&mut ops, &CommentEvent::Closed);
                ops.push(Operation::SetState {
                    state: IssueState::Closed,
                    reason: Some(CloseReason::Completed),
                });
            }
            Decision::Wait { .. }
            | Decision::Throttle { .. }
            | Decision::Suppress
            | Decision::Record
            | Decision::Ignore { .. }
            | Decision::HumanClose
            | Decision::HumanReopen
            | Decision::Mute { .. } => {}
        }
    }
    ops
}

/// A failing template must not hold up a work order: fall back to the plain renderer
/// and say so in the logs.
fn draft(cx: &PlanContext<'_>, labels: Vec<String>) -> IssueDraft {
    match render::issue_draft(cx.renderer, cx.work_order, labels.clone()) {
        Ok(d) => d,
        Err(err) => {
            tracing::error!(key = %cx.work_order.key, error = %format!("{err:#}"), "rendering the issue failed; using the plain renderer");
            render::issue_draft(&PlainRenderer, cx.work_order, labels).unwrap_or_else(|e| {
                IssueDraft {
                    title: cx.work_order.key.clone(),
                    body: format!(
                        "Rendering failed: {e}\n\n{}",
                        crate::forge::key_marker(&cx.work_order.key)
                    ),
                    labels: Vec::new(),
                }
            })
        }
    }
}

fn comment(cx: &PlanContext<'_>, event: &CommentEvent) -> Operation {
    let body = render::comment_body(cx.renderer, cx.work_order, event).unwrap_or_else(|err| {
        tracing::error!(key = %cx.work_order.key, error = %format!("{err:#}"), "rendering a comment failed; using the plain renderer");
        render::comment_body(&PlainRenderer, cx.work_order, event)
            .unwrap_or_else(|e| format!("Triage: {} (rendering failed: {e})", event.name()))
    });
    Operation::Comment { body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinksConfig;
    use crate::triage::context::{HealthStatus, Tier};
    use crate::triage::correlate::WorkOrderKey;
    use crate::triage::lifecycle::State;
    use crate::triage::route::{Action, Priority, Route};

    fn route(action: Action, p: Priority) -> Route {
        Route {
            action,
            priority: Some(p),
            status: HealthStatus::Red,
            tier: Tier::Critical,
            reason: "r".into(),
        }
    }

    fn wo() -> WorkOrder {
        let mut state = State::new();
        state.route = Some(route(Action::Escalate, Priority::P0));
        let key = WorkOrderKey::from_stored("prod/pets/deployment/store-front");
        WorkOrder::build(
            &key,
            &key.label("triage/"),
            &state,
            None,
            None,
            &LinksConfig::default(),
        )
    }

    struct Broken;
    impl Renderer for Broken {
        fn title(&self, _: &WorkOrder) -> anyhow::Result<String> {
            anyhow::bail!("template error: undefined variable")
        }
        fn body(&self, _: &WorkOrder) -> anyhow::Result<String> {
            anyhow::bail!("template error")
        }
        fn comment(&self, _: &WorkOrder, _: &CommentEvent) -> anyhow::Result<String> {
            anyhow::bail!("template error")
        }
    }

    fn plan_with(
        decisions: &[Decision],
        renderer: &dyn Renderer,
        previous: Option<u64>,
    ) -> Vec<Operation> {
        let wo = wo();
        let repo = RepoRef::parse("local/work-orders").unwrap();
        plan(
            decisions,
            &PlanContext {
                repo: &repo,
                work_order: &wo,
                trigger: None,
                rules: &Rules::default(),
                labels: &LabelsConfig::default(),
                renderer,
                previous_issue: previous,
                muted: false,
                held_open: false,
            },
        )
    }

    #[test]
    fn each_decision_maps_to_its_operations() {
        let ops = plan_with(
            &[Decision::Open {
                follows_previous: true,
            }],
            &PlainRenderer,
            Some(7),
        );
        let [
            Operation::Create {
                repo,
                draft,
                labels,
                supersedes,
            },
        ] = &ops[..]
        else {
            panic!("{ops:?}")
        };
        assert_eq!(*supersedes, Some(7));
        assert!(
            draft.labels.iter().any(|l| l.starts_with("triage/")),
            "{:?}",
            draft.labels
        );
        assert!(
            labels.iter().all(|l| !l.name.starts_with("triage/")),
            "the key label is made with the issue, not ahead of it: {labels:?}"
        );
        assert_eq!(repo.to_string(), "local/work-orders");
        assert!(draft.labels.contains(&"priority/P0".to_string()));
        assert_eq!(labels.len() + 1, draft.labels.len());

        let ops = plan_with(&[Decision::Reopen], &PlainRenderer, None);
        assert_eq!(
            ops.iter().map(Operation::kind).collect::<Vec<_>>(),
            ["set_state", "comment"]
        );

        let ops = plan_with(
            &[Decision::RouteChange {
                from: route(Action::Warn, Priority::P1),
                to: route(Action::Escalate, Priority::P0),
            }],
            &PlainRenderer,
            None,
        );
        assert_eq!(
            ops[..2],
            [
                Operation::RemoveLabels {
                    labels: vec!["priority/P1".into(), "action/warn".into()]
                },
                Operation::AddLabels {
                    labels: vec!["priority/P0".into(), "action/escalate".into()]
                },
            ]
        );
        assert_eq!(ops[2].kind(), "comment");

        let ops = plan_with(&[Decision::Close], &PlainRenderer, None);
        assert_eq!(
            ops.iter().map(Operation::kind).collect::<Vec<_>>(),
            ["comment", "set_state"]
        );
        assert!(matches!(
            ops[1],
            Operation::SetState {
                state: IssueState::Closed,
                reason: Some(CloseReason::Completed)
            }
        ));

        for quiet in [
            Decision::Suppress,
            Decision::Record,
            Decision::Throttle {
                reason: crate::triage::lifecycle::ThrottleReason::Interval,
            },
            Decision::Ignore {
                reason: crate::triage::lifecycle::IgnoreReason::Duplicate,
            },
        ] {
            assert!(
                plan_with(std::slice::from_ref(&quiet), &PlainRenderer, None).is_empty(),
                "{quiet:?}"
            );
        }
    }

    #[test]
    fn a_broken_renderer_falls_back_to_plain_text() {
        let ops = plan_with(
            &[
                Decision::Open {
                    follows_previous: false,
                },
                Decision::Resolve,
            ],
            &Broken,
            None,
        );
        let Operation::Create { draft, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(draft.title, "[P0] prod/pets/deployment/store-front");
        assert_eq!(
            crate::forge::parse_key_marker(&draft.body),
            Some("prod/pets/deployment/store-front")
        );
        let Operation::Comment { body } = &ops[1] else {
            panic!()
        };
        assert!(body.contains("**Recovered.**"));
    }

    #[test]
    fn operations_round_trip_through_json() {
        let ops = plan_with(
            &[
                Decision::Open {
                    follows_previous: false,
                },
                Decision::Close,
            ],
            &PlainRenderer,
            None,
        );
        let json = serde_json::to_string(&ops).unwrap();
        let back: Vec<Operation> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ops);
    }
}
