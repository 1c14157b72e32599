//! Step 6: the stored draft and its review state machine.
//!
//! ```text
//! pending_review ──approve──▶ approved
//!        │ ──reject───▶ rejected ──(inputs change)──▶ regenerated as pending_review
//!        └──edit────▶ edited
//! ```
//! Approved and edited drafts are never overwritten by generation; a pending draft whose
//! input hash is unchanged is not regenerated. Every step is appended to `audit`.

use serde::{Deserialize, Serialize};

use crate::error::{CopyError, Result};
use crate::plan::Plan;
use crate::product::CopyRequest;
use crate::validate::Report;
use crate::writer::{CandidateStats, CopyWriter, Source, Variant, Written};

/// The audit trail keeps this many most recent steps (a draft must fit one DynamoDB item).
pub const MAX_AUDIT: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingReview,
    Approved,
    Rejected,
    Edited,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::PendingReview,
        Status::Approved,
        Status::Rejected,
        Status::Edited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingReview => "pending_review",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Edited => "edited",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                CopyError::Invalid(format!(
                    "unknown status {s:?}; expected one of pending_review, approved, rejected, edited"
                ))
            })
    }

    /// A human decided: generation must leave the draft alone.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Approved | Status::Edited)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at: i64,
    /// generated, regenerated, approved, rejected, edited.
    pub action: String,
    /// Who did it, as authenticated (an IAM ARN, a console user, `local-token`), or the
    /// process that generated it.
    pub actor: String,
    /// The name the reviewer gave, when it is not the authenticated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub product_id: String,
    pub channel: crate::Channel,
    pub locale: crate::Locale,
    pub status: Status,
    /// What the shop would publish: the best variant, or the reviewer's edit.
    pub text: String,
    pub source: Source,
    pub fallback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The report for `text`.
    pub validation: Report,
    pub variants: Vec<Variant>,
    pub plan: Plan,
    pub request: CopyRequest,
    pub input_hash: String,
    pub prompt_version: String,
    pub model: Option<String>,
    pub stats: CandidateStats,
    pub created_at: i64,
    pub updated_at: i64,
    pub audit: Vec<AuditEntry>,
}

impl Draft {
    /// A new pending draft from the pipeline's output; `previous` (a rejected or stale
    /// pending draft) hands over its audit trail.
    pub fn from_written(
        req: &CopyRequest,
        written: Written,
        previous: Option<&Draft>,
        actor: &str,
        now_ms: i64,
    ) -> Self {
        let best = written.variants.first().cloned();
        let (text, source, validation) = match best {
            Some(v) => (v.text, v.source, v.validation),
            None => (
                String::new(),
                Source::Fallback,
                Report {
                    passed: false,
                    chars: 0,
                    max_chars: req.max_chars(),
                    violations: Vec::new(),
                },
            ),
        };
        let mut audit = previous.map(|p| p.audit.clone()).unwrap_or_default();
        push_audit(
            &mut audit,
            AuditEntry {
                at: now_ms,
                action: if previous.is_some() {
                    "regenerated"
                } else {
                    "generated"
                }
                .into(),
                actor: actor.into(),
                reviewer: None,
                status: Status::PendingReview,
                text: Some(text.clone()),
                note: written.fallback_reason.clone(),
            },
        );
        Self {
            product_id: req.product.id.clone(),
            channel: req.channel,
            locale: req.locale,
            status: Status::PendingReview,
            fallback: source == Source::Fallback,
            text,
            source,
            fallback_reason: written.fallback_reason,
            validation,
            variants: written.variants,
            plan: written.plan,
            request: req.clone(),
            input_hash: req.input_hash(),
            prompt_version: crate::PROMPT_VERSION.into(),
            model: written.model,
            stats: written.stats,
            created_at: previous.map_or(now_ms, |p| p.created_at),
            updated_at: now_ms,
            audit,
        }
    }
}

fn push_audit(audit: &mut Vec<AuditEntry>, entry: AuditEntry) {
    audit.push(entry);
    if audit.len() > MAX_AUDIT {
        let drop = audit.len() - MAX_AUDIT;
        audit.drain(..drop);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
    Edit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub decision: Decision,
    /// The new text (edit only).
    #[serde(default)]
    pub text: Option<String>,
    /// A display name for the audit trail; the authenticated caller is recorded either way.
    #[serde(default)]
    pub reviewer: Option<String>,
    /// Approve another variant than the first (0-based; approve only).
    #[serde(default)]
    pub variant: Option<usize>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Applies a review by `actor` (the authenticated caller) to a pending draft. An edit is
/// validated like generated copy and refused with its report when it breaks a rule.
pub fn apply_review(
    draft: &mut Draft,
    review: &Review,
    writer: &CopyWriter,
    now_ms: i64,
    actor: &str,
) -> Result<()> {
    let reviewer = review.reviewer.as_deref().map(str::trim);
    if reviewer
        .is_some_and(|r| r.is_empty() || r.chars().count() > 128 || r.chars().any(char::is_control))
    {
        return Err(CopyError::Invalid(
            "reviewer must be 1-128 characters without control characters".into(),
        ));
    }
    if review
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > 1000)
    {
        return Err(CopyError::Invalid(
            "note is longer than 1000 characters".into(),
        ));
    }
    if draft.status != Status::PendingReview {
        return Err(CopyError::Conflict(format!(
            "the draft is {}; only pending_review drafts can be reviewed",
            draft.status.as_str()
        )));
    }
    let (status, action, text) = match review.decision {
        Decision::Approve => {
            if review.text.is_some() {
                return Err(CopyError::Invalid(
                    "approve takes no text; use decision \"edit\" to change it".into(),
                ));
            }
            if let Some(i) = review.variant {
                let v = draft.variants.get(i).cloned().ok_or_else(|| {
                    CopyError::Invalid(format!(
                        "variant {i} does not exist; the draft has {}",
                        draft.variants.len()
                    ))
                })?;
                draft.text = v.text;
                draft.source = v.source;
                draft.validation = v.validation;
            }
            (Status::Approved, "approved", None)
        }
        Decision::Reject => {
            if review.text.is_some() || review.variant.is_some() {
                return Err(CopyError::Invalid("reject takes no text or variant".into()));
            }
            (Status::Rejected, "rejected", None)
        }
        Decision::Edit => {
            let text = review
                .text
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| CopyError::Invalid("edit needs a non-empty text".into()))?;
            if review.variant.is_some() {
                return Err(CopyError::Invalid("edit takes no variant".into()));
            }
            let report = writer.validate(&draft.request, text);
            if !report.passed {
                return Err(CopyError::Rejected(Box::new(report)));
            }
            draft.text = text.to_owned();
            draft.validation = report;
            (Status::Edited, "edited", Some(text.to_owned()))
        }
    };
    draft.status = status;
    draft.updated_at = now_ms;
    push_audit(
        &mut draft.audit,
        AuditEntry {
            at: now_ms,
            action: action.into(),
            actor: actor.to_owned(),
            reviewer: reviewer.filter(|r| *r != actor).map(str::to_owned),
            status,
            text,
            note: review.note.clone(),
        },
    );
    Ok(())
}

/// What generation should do about the draft stored under a request's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// No draft yet.
    Missing,
    /// Pending or rejected, written from other inputs: regenerate.
    Stale,
    /// Written from these inputs and still pending or rejected: leave it.
    Current,
    /// Approved or edited by a human: never overwritten.
    Final,
}

pub fn freshness(existing: Option<&Draft>, input_hash: &str) -> Freshness {
    match existing {
        None => Freshness::Missing,
        Some(d) if d.status.is_final() => Freshness::Final,
        Some(d) if d.input_hash == input_hash => Freshness::Current,
        Some(_) => Freshness::Stale,
    }
}
