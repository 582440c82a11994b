//! Rule versions and drafts (SPEC §14): save, read and discard a rule's draft, try it the way
//! a live rule is tried (`samples::preview_of`, `samples::send_test_of`), publish it as the
//! next version, list the versions, and restore one. A publish and a restore are audited
//! with the fields they change. With `rules.require_review` a draft is published only by
//! another user or API key than the one that saved it.

use serde_json::{Map, Value};

use super::rules::{
    build_rule, check_template_with_samples, editable_json, ensure_key_pair, load, validate,
};
use super::samples::{self, SampleRequest};
use super::{AppState, blocking};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::delivery::{Attempt, Delivery};
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::domain::rule::{
    Change, Rule, RuleDraft, RuleInput, RuleSpec, RuleVersion, Signing, diff,
};
use crate::error::{AppError, Code};
use crate::store::Publish;

/// A rule's draft with the live rule it would replace, and what it changes.
pub struct DraftView {
    pub live: Rule,
    pub draft: RuleDraft,
    pub changes: Vec<Change>,
}

/// What going from `before` to `after` changes, in the fields an admin sets.
pub fn changes(before: &Rule, after: &Rule) -> Vec<Change> {
    diff(&editable_json(before), &editable_json(after))
}

/// Validates `input` exactly as a rule edit is validated (and its body template against the
/// catalog's samples) and stores it as the rule's draft; nothing live changes. Audited. A
/// masked secret value keeps the live rule's.
pub async fn save_draft(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
    input: RuleInput,
) -> Result<DraftView, AppError> {
    let live = load(state, workspace.clone(), id).await?;
    let spec = validate(state, input, Some(&live))?;
    let base = live.clone();
    save_draft_spec(state, workspace, actor, live, base, spec).await
}

/// Stores a validated spec as the draft of `live`. `base` is what the spec was validated
/// against (the live rule, or the draft it edits): a masked secret value keeps its value.
pub async fn save_draft_spec(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    live: Rule,
    base: Rule,
    spec: RuleSpec,
) -> Result<DraftView, AppError> {
    let rule = build_rule(state, spec, Some(base), workspace);
    check_template_with_samples(state, &rule).await?;
    let draft = RuleDraft {
        rule_id: live.id.clone(),
        workspace_id: workspace.clone(),
        base_version: live.version,
        saved_at: state.clock.now_ms(),
        saved_by: actor.clone(),
        rule,
    };
    let changes = changes(&live, &draft.rule);
    let (before, after) = halves(&changes);
    let audit = AuditEntry::new(
        workspace,
        actor,
        "rule.draft.save",
        "rule",
        live.id.as_str(),
    )
    .before(before)
    .after(after)
    .detail(format!("a draft against version {}", live.version));
    let draft = state.store.save_rule_draft(draft, audit).await?;
    Ok(DraftView {
        live,
        draft,
        changes,
    })
}

/// A rule's draft; 404 when the rule has none.
pub async fn draft(
    state: &AppState,
    workspace: &WorkspaceId,
    id: RuleId,
) -> Result<DraftView, AppError> {
    let (live, draft) = draft_if_any(state, workspace, id).await?;
    let draft = draft.ok_or_else(|| {
        AppError::new(
            Code::NotFound,
            format!("rule {} has no draft; save one with PUT first", live.id),
        )
    })?;
    let changes = changes(&live, &draft.rule);
    Ok(DraftView {
        live,
        draft,
        changes,
    })
}

/// A workspace's rule, with its draft if it has one.
pub async fn draft_if_any(
    state: &AppState,
    workspace: &WorkspaceId,
    id: RuleId,
) -> Result<(Rule, Option<RuleDraft>), AppError> {
    let live = load(state, workspace.clone(), id).await?;
    let store = state.store.clone();
    let rule_id = live.id.clone();
    let draft = blocking(move || store.rule_draft(&rule_id)).await?;
    Ok((live, draft))
}

/// Discards a rule's draft (404 without one), audited.
pub async fn discard_draft(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<(), AppError> {
    let live = load(state, workspace.clone(), id).await?;
    let audit = AuditEntry::new(
        workspace,
        actor,
        "rule.draft.discard",
        "rule",
        live.id.as_str(),
    );
    state
        .store
        .delete_rule_draft(workspace.clone(), live.id, audit)
        .await?;
    Ok(())
}

/// What a preview of the draft shows: the live preview, made from the draft.
pub async fn preview_draft(
    state: &AppState,
    workspace: &WorkspaceId,
    id: RuleId,
    req: SampleRequest,
) -> Result<Value, AppError> {
    let view = draft(state, workspace, id).await?;
    let rule = onto_live(state, &view.live, view.draft.rule);
    samples::preview_of(state, rule, req).await
}

/// A test send of the draft: one request now, logged as a test delivery of the rule.
pub async fn test_draft(
    state: &AppState,
    workspace: &WorkspaceId,
    id: RuleId,
    req: SampleRequest,
) -> Result<(Delivery, Attempt), AppError> {
    let view = draft(state, workspace, id).await?;
    let rule = onto_live(state, &view.live, view.draft.rule);
    samples::send_test_of(state, rule, req).await
}

/// Makes the draft live as the rule's next version, atomically (404 without a draft; 409
/// when `rules.require_review` is on and `actor` saved it, or when it was saved again
/// meanwhile). Audited with the fields it changes.
pub async fn publish_draft(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<RuleVersion, AppError> {
    let DraftView { live, draft, .. } = draft(state, workspace, id).await?;
    if state.config.rules.require_review && draft.saved_by.same_writer(&actor) {
        return Err(AppError::conflict(format!(
            "rules.require_review is on: the draft of rule {} was saved by {}, so another user or API key must publish it",
            live.id,
            actor_name(&draft.saved_by)
        )));
    }
    let detail = format!(
        "publishes the draft saved by {} against version {}",
        actor_name(&draft.saved_by),
        draft.base_version
    );
    let rule = onto_live(state, &live, draft.rule);
    publish(
        state,
        workspace,
        actor,
        &live,
        rule,
        "rule.publish",
        detail,
        Some(draft.saved_at),
    )
    .await
}

/// A rule's versions, newest first.
pub async fn versions(
    state: &AppState,
    workspace: &WorkspaceId,
    id: RuleId,
) -> Result<Vec<RuleVersion>, AppError> {
    let live = load(state, workspace.clone(), id).await?;
    let store = state.store.clone();
    let mut versions = blocking(move || store.rule_versions(&live.id)).await?;
    versions.reverse();
    Ok(versions)
}

/// Publishes a copy of version `n` as the rule's next version (404 for a version it does not
/// have), audited with the fields it changes back.
pub async fn restore(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
    n: u32,
) -> Result<RuleVersion, AppError> {
    let live = load(state, workspace.clone(), id).await?;
    let store = state.store.clone();
    let rule_id = live.id.clone();
    let old = blocking(move || store.rule_versions(&rule_id))
        .await?
        .into_iter()
        .find(|v| v.version == n)
        .ok_or_else(|| {
            AppError::new(
                Code::NotFound,
                format!("rule {} has no version {n}", live.id),
            )
        })?;
    let rule = onto_live(state, &live, old.rule);
    let detail = format!("restores version {n}");
    publish(
        state,
        workspace,
        actor,
        &live,
        rule,
        "rule.restore",
        detail,
        None,
    )
    .await
}

// The arguments are the one publish: what it replaces, with what, and how it is audited.
#[allow(clippy::too_many_arguments)]
async fn publish(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    live: &Rule,
    rule: Rule,
    action: &str,
    detail: String,
    from_draft: Option<i64>,
) -> Result<RuleVersion, AppError> {
    let (before, after) = halves(&changes(live, &rule));
    let audit = AuditEntry::new(workspace, actor.clone(), action, "rule", live.id.as_str())
        .before(before)
        .after(after)
        .detail(detail);
    let publish = Publish {
        rule,
        by: actor,
        expect_existing: true,
        from_draft,
    };
    Ok(state.store.publish_rule(publish, audit).await?)
}

/// The content of `content` (a draft, an old version) on the live rule's identity: its id,
/// creation, what it signs with now (a rotation since is kept) and its version, updated now.
fn onto_live(state: &AppState, live: &Rule, content: Rule) -> Rule {
    let now = state.clock.now_ms();
    let mut signing_keys = live.signing_keys.clone();
    if content.webhook.signing == Signing::Ed25519 {
        ensure_key_pair(
            &mut signing_keys,
            content.signing_keys.first(),
            &state.master_key,
            now,
        );
    }
    let status_reason = if content.active {
        None
    } else {
        live.status_reason.clone()
    };
    Rule {
        id: live.id.clone(),
        workspace_id: live.workspace_id.clone(),
        created_at: live.created_at,
        updated_at: now,
        signing_secrets: live.signing_secrets.clone(),
        signing_keys,
        status_reason,
        version: live.version,
        ..content
    }
}

/// A diff as the audit log's before and after: each changed field's dotted path with its
/// value on that side.
fn halves(changes: &[Change]) -> (Value, Value) {
    let mut before = Map::new();
    let mut after = Map::new();
    for c in changes {
        before.insert(c.path.clone(), c.before.clone());
        after.insert(c.path.clone(), c.after.clone());
    }
    (Value::Object(before), Value::Object(after))
}

/// How an actor is named in a message.
pub fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::ApiKey { name, .. } => format!("API key {name}"),
        Actor::User { name, .. } => format!("user {name}"),
        Actor::Cli => "the command line".to_owned(),
        Actor::System => "tidings".to_owned(),
    }
}
