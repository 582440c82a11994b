//! Rule use cases: list, create, replace, patch, delete, reveal and rotate the signing
//! secret. Every change is stored with its audit entry in one write; a body template is
//! checked against the catalog's samples before it is saved.

use serde_json::{Map, Value, json};

use super::{AppState, blocking};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::catalog::{Entry, types_to_check};
use crate::domain::event::EventType;
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::domain::payload::{self, Context};
use crate::domain::rule::{
    FieldError, MASK, PayloadFormat, ReceiverAuth, Rule, RuleInput, RuleSpec, SecretValue, Signing,
    SigningSecret,
};
use crate::domain::time::to_rfc3339;
use crate::error::AppError;
use crate::security::crypto::{MasterKey, new_signing_secret};
use crate::security::keypair;
use crate::store::{Publish, StoreError};

/// The fields an admin sets, as `RuleInput` reads them back (secret values masked): the
/// audit log's before/after, the base a PATCH merges into, and the edit form's values.
pub fn editable_json(rule: &Rule) -> Value {
    let w = &rule.webhook;
    let secret_headers: Map<String, Value> = w
        .secret_headers
        .keys()
        .map(|k| (k.clone(), Value::String(MASK.into())))
        .collect();
    json!({
        "name": rule.name,
        "description": rule.description,
        "active": rule.active,
        "max_concurrency": rule.max_concurrency,
        "trigger": rule.trigger,
        "condition": rule.condition,
        "webhook": {
            "url": w.url,
            "method": w.method,
            "content_type": w.content_type,
            "headers": w.headers,
            "secret_headers": secret_headers,
            "signing": w.signing,
            "payload_format": w.payload_format,
            "body_template": w.body_template,
            "tls_verify": w.tls_verify,
            "timeout_ms": w.timeout_ms,
            "auth": w.auth.shown(),
        },
        "log": rule.log,
        "ordering_key": rule.ordering_key,
    })
}

/// The workspace's rules, newest first.
pub async fn list(state: &AppState, workspace: WorkspaceId) -> Result<Vec<Rule>, AppError> {
    let store = state.store.clone();
    let mut rules = blocking(move || store.rules(&workspace)).await?;
    rules.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(rules)
}

/// A page of the workspace's rules, newest first: the `limit` created before the cursor
/// rule, and the cursor of the next page (None on the last one).
pub async fn page(
    state: &AppState,
    workspace: WorkspaceId,
    before: Option<RuleId>,
    limit: usize,
) -> Result<(Vec<Rule>, Option<RuleId>), AppError> {
    let mut rules = list(state, workspace).await?;
    if let Some(cursor) = &before {
        rules.retain(|r| r.id < *cursor);
    }
    let more = rules.len() > limit;
    rules.truncate(limit);
    let next = more.then(|| rules.last().map(|r| r.id.clone())).flatten();
    Ok((rules, next))
}

/// Since when each failing rule has failed (its first failed attempt after its last success).
pub async fn failing_since(
    state: &AppState,
) -> Result<std::collections::HashMap<RuleId, i64>, AppError> {
    let store = state.store.clone();
    blocking(move || store.rules_failing_since()).await
}

/// A rule's name for display, from memory; `(deleted rule)` once it is gone.
pub fn name(state: &AppState, id: &RuleId) -> String {
    state
        .store
        .cached_rule(id)
        .map_or_else(|| "(deleted rule)".to_owned(), |r| r.name.clone())
}

pub async fn load(state: &AppState, workspace: WorkspaceId, id: RuleId) -> Result<Rule, AppError> {
    let store = state.store.clone();
    blocking(move || store.rule(&workspace, &id)).await
}

/// Checks `input` against the network policy (and, for an edit, the rule it replaces).
pub fn validate(
    state: &AppState,
    input: RuleInput,
    existing: Option<&Rule>,
) -> Result<RuleSpec, AppError> {
    let spec = input
        .validate(&state.policy, existing)
        .map_err(|e| AppError::validation(e.to_string()))?;
    check_credentials(state, &spec, existing).map_err(|e| AppError::validation(e.to_string()))?;
    Ok(spec)
}

/// The checks of receiver credentials that need the clock: a new or changed client
/// certificate must not have expired. An unchanged one is not judged again, so an admin can
/// still edit or turn off a rule whose certificate ran out (its page says so).
pub fn check_credentials(
    state: &AppState,
    spec: &RuleSpec,
    existing: Option<&Rule>,
) -> Result<(), FieldError> {
    let ReceiverAuth::Mtls {
        client_cert,
        client_cert_expires_at,
        ..
    } = &spec.webhook.auth
    else {
        return Ok(());
    };
    let unchanged = existing.is_some_and(|r| {
        matches!(&r.webhook.auth, ReceiverAuth::Mtls { client_cert: stored, .. } if stored == client_cert)
    });
    if !unchanged && *client_cert_expires_at <= state.clock.now_ms() {
        return Err(FieldError::new(
            "webhook.auth.client_cert",
            format!(
                "expired on {}: ask the receiver's administrator for a renewed certificate",
                to_rfc3339(*client_cert_expires_at)
            ),
        ));
    }
    Ok(())
}

/// Stores a new rule from a validated spec, with its audit entry.
pub async fn create(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    spec: RuleSpec,
) -> Result<Rule, AppError> {
    let rule = build_rule(state, spec, None, workspace);
    check_template_with_samples(state, &rule).await?;
    let audit = AuditEntry::new(
        workspace,
        actor.clone(),
        "rule.create",
        "rule",
        rule.id.as_str(),
    )
    .after(editable_json(&rule));
    let publish = Publish {
        rule,
        by: actor,
        expect_existing: false,
        from_draft: None,
    };
    Ok(state.store.publish_rule(publish, audit).await?.rule)
}

/// The check a save makes of a body template against the catalog's samples, on its own and
/// saving nothing: lets a form show a template that fails its samples together with the
/// other fields' errors, in one answer.
pub async fn check_template(
    state: &AppState,
    workspace: &WorkspaceId,
    spec: RuleSpec,
    existing: Option<Rule>,
) -> Result<(), AppError> {
    let rule = build_rule(state, spec, existing, workspace);
    check_template_with_samples(state, &rule).await
}

/// Applies a validated spec to a stored rule as its next version, audited as an update,
/// activation or deactivation. With `rules.require_review` a live rule changes only through
/// a draft: refused with 409.
pub async fn update(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    existing: Rule,
    spec: RuleSpec,
) -> Result<Rule, AppError> {
    if state.config.rules.require_review {
        return Err(AppError::conflict(format!(
            "rules.require_review is on: a live rule changes only through a draft; save the change with PUT /api/v1/rules/{}/draft and have another user or API key publish it",
            existing.id
        )));
    }
    let before = editable_json(&existing);
    let was_active = existing.active;
    let rule = build_rule(state, spec, Some(existing), workspace);
    check_template_with_samples(state, &rule).await?;
    let action = match (was_active, rule.active) {
        (false, true) => "rule.activate",
        (true, false) => "rule.deactivate",
        _ => "rule.update",
    };
    let audit = AuditEntry::new(workspace, actor.clone(), action, "rule", rule.id.as_str())
        .before(before)
        .after(editable_json(&rule));
    let publish = Publish {
        rule,
        by: actor,
        expect_existing: true,
        from_draft: None,
    };
    Ok(state.store.publish_rule(publish, audit).await?.rule)
}

/// A JSON merge patch (RFC 7396) over a rule's editable fields, as the input it makes.
pub fn merged_input(existing: &Rule, changes: &Value) -> Result<RuleInput, AppError> {
    if !changes.is_object() {
        return Err(AppError::validation(
            "a PATCH body must be a JSON object of the fields to change",
        ));
    }
    let mut merged = editable_json(existing);
    // Another auth type shares no field with the stored one: start it from nothing, so
    // `{"auth": {"type": "none"}}` does not inherit the certificate it replaces.
    let new_type = changes["webhook"]["auth"]["type"].as_str();
    if new_type.is_some_and(|t| merged["webhook"]["auth"]["type"].as_str() != Some(t)) {
        merged["webhook"]["auth"] = json!({});
    }
    json_patch::merge(&mut merged, changes);
    serde_path_to_error::deserialize(merged).map_err(|e| AppError::invalid_json_at(&e))
}

/// Deletes a rule (its delivery history stays), audited with what it was.
pub async fn delete(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<(), AppError> {
    let rule = load(state, workspace.clone(), id).await?;
    let audit = AuditEntry::new(workspace, actor, "rule.delete", "rule", rule.id.as_str())
        .before(editable_json(&rule));
    state
        .store
        .delete_rule(workspace.clone(), rule.id, audit)
        .await?;
    Ok(())
}

/// What a rule's receivers verify with: its HMAC secret (secret, so its viewing is
/// audited) or, for ed25519, its public key (which anyone may see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    Secret(String),
    PublicKey(String),
}

/// The current signing secret in plain text, or the current public key of an ed25519 rule;
/// the viewing of a secret is audited before it is returned.
pub async fn reveal_secret(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<Verifier, AppError> {
    let rule = load(state, workspace.clone(), id).await?;
    if rule.webhook.signing == Signing::Ed25519 {
        return current_public_key(&rule).map(Verifier::PublicKey);
    }
    let current = rule.signing_secrets.first().ok_or_else(|| {
        AppError::internal(anyhow::anyhow!("rule {} has no signing secret", rule.id))
    })?;
    let plain = state
        .master_key
        .open(&current.sealed)
        .map_err(AppError::internal)?;
    // Seeing a secret is recorded before it is shown.
    let audit = AuditEntry::new(
        workspace,
        actor,
        "rule.secret.view",
        "rule",
        rule.id.as_str(),
    );
    state.store.audit(audit).await?;
    Ok(Verifier::Secret(plain.expose().to_owned()))
}

fn current_public_key(rule: &Rule) -> Result<String, AppError> {
    rule.signing_keys
        .first()
        .and_then(|k| k.public_key.clone())
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("rule {} has no key pair", rule.id)))
}

/// Replaces what the rule signs with (its secret, or for ed25519 its key pair); the old one
/// keeps signing through `signing.rotation_overlap`. Returns the new secret in plain text,
/// or the new public key.
pub async fn rotate_secret(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<Verifier, AppError> {
    let mut rule = load(state, workspace.clone(), id).await?;
    let now = state.clock.now_ms();
    let overlap =
        i64::try_from(state.config.signing.rotation_overlap.as_millis()).unwrap_or(i64::MAX / 2);
    let ed25519 = rule.webhook.signing == Signing::Ed25519;
    let (list, fresh) = if ed25519 {
        (
            &mut rule.signing_keys,
            fresh_key_pair(&state.master_key, now),
        )
    } else {
        (
            &mut rule.signing_secrets,
            fresh_secret(&state.master_key, now),
        )
    };
    retire_current(list, now, overlap);
    list.insert(0, fresh);
    let verifier = if ed25519 {
        Verifier::PublicKey(current_public_key(&rule)?)
    } else {
        let sealed = &rule.signing_secrets[0].sealed;
        let plain = state.master_key.open(sealed).map_err(AppError::internal)?;
        Verifier::Secret(plain.expose().to_owned())
    };
    rule.updated_at = now;
    let what = if ed25519 { "key pair" } else { "secret" };
    let detail = format!(
        "new {what} ends in {}; the previous one signs until {}",
        rule.secret_hint(),
        to_rfc3339(now + overlap)
    );
    let audit = AuditEntry::new(
        workspace,
        actor,
        "rule.secret.rotate",
        "rule",
        rule.id.as_str(),
    )
    .detail(detail);
    state.store.save_rule(rule, true, audit).await?;
    Ok(verifier)
}

/// Only the secret (or key pair) being replaced keeps signing through the overlap; any older
/// one from an earlier rotation stops now, so receivers never have to track more than two.
fn retire_current(list: &mut Vec<SigningSecret>, now: i64, overlap: i64) {
    list.truncate(1);
    for old in list.iter_mut() {
        old.expires_at.get_or_insert(now + overlap);
    }
    list.retain(|s| s.expires_at.is_none_or(|at| at > now));
}

/// Applies a validated spec onto a new or existing rule, sealing new secret header values.
pub(super) fn build_rule(
    state: &AppState,
    spec: RuleSpec,
    existing: Option<Rule>,
    workspace: &WorkspaceId,
) -> Rule {
    let now = state.clock.now_ms();
    let key = &state.master_key;
    let webhook = spec.webhook.map_secrets(|_, value| match value {
        SecretValue::Keep(sealed) => sealed,
        SecretValue::New(plain) => key.seal(&plain),
    });
    let (id, created_at, signing_secrets, mut signing_keys, status_reason, version) = match existing
    {
        Some(r) => {
            // Re-activating a rule clears the reason tidings turned it off.
            let reason = if spec.active { None } else { r.status_reason };
            (
                r.id,
                r.created_at,
                r.signing_secrets,
                r.signing_keys,
                reason,
                r.version,
            )
        }
        None => (
            RuleId::generate(now),
            now,
            vec![fresh_secret(key, now)],
            Vec::new(),
            None,
            0,
        ),
    };
    if webhook.signing == Signing::Ed25519 {
        ensure_key_pair(&mut signing_keys, None, key, now);
    }
    Rule {
        id,
        workspace_id: workspace.clone(),
        name: spec.name,
        description: spec.description,
        active: spec.active,
        max_concurrency: spec.max_concurrency,
        trigger: spec.trigger,
        condition: spec.condition,
        webhook,
        signing_secrets,
        signing_keys,
        created_at,
        updated_at: now,
        status_reason,
        log: spec.log,
        ordering_key: spec.ordering_key,
        version,
    }
}

/// A rule gets its key pair when it first signs with ed25519 (or when the last one it had
/// has expired), so a receiver is given a public key only for a rule that uses it. `made`
/// is a pair made for this rule already (a draft's), taken before a new one is made.
pub(super) fn ensure_key_pair(
    keys: &mut Vec<SigningSecret>,
    made: Option<&SigningSecret>,
    key: &MasterKey,
    now: i64,
) {
    let live = |k: &SigningSecret| k.expires_at.is_none_or(|at| at > now);
    if !keys.iter().any(live) {
        let pair = made
            .filter(|k| live(k))
            .cloned()
            .unwrap_or_else(|| fresh_key_pair(key, now));
        keys.insert(0, pair);
    }
}

fn fresh_secret(key: &MasterKey, now: i64) -> SigningSecret {
    let secret = new_signing_secret();
    let plain = secret.expose();
    SigningSecret {
        sealed: key.seal(plain),
        hint: plain[plain.len() - 4..].to_owned(),
        public_key: None,
        created_at: now,
        expires_at: None,
    }
}

fn fresh_key_pair(key: &MasterKey, now: i64) -> SigningSecret {
    let (private, public) = keypair::generate();
    SigningSecret {
        sealed: key.seal(private.expose()),
        hint: public[public.len() - 4..].to_owned(),
        public_key: Some(public),
        created_at: now,
        expires_at: None,
    }
}

/// On save, a body template is rendered against the catalog sample of every event type the
/// rule can see (see `types_to_check`), so a template that cannot render, or renders invalid
/// JSON for a JSON content type, is refused before any real event meets it.
pub(super) async fn check_template_with_samples(
    state: &AppState,
    rule: &Rule,
) -> Result<(), AppError> {
    if rule.webhook.payload_format != PayloadFormat::Template {
        return Ok(());
    }
    let store = state.store.clone();
    let (workspace, trigger) = (rule.workspace_id.clone(), rule.trigger.clone());
    let (workspace_name, samples) = blocking(move || {
        // One read of the workspace's catalog serves both the names and the samples.
        let stored = store.event_types(&workspace)?;
        let known: Vec<EventType> = stored.iter().map(|(t, _)| t.clone()).collect();
        let samples: Vec<Entry> = types_to_check(&trigger, &known)
            .into_iter()
            .map(|t| {
                let row = stored.iter().find(|(name, _)| *name == t).map(|(_, r)| r);
                Entry::new(t, row)
            })
            .collect();
        Ok::<_, StoreError>((store.workspace_name(&workspace)?, samples))
    })
    .await?;
    // A type with no source has only a placeholder sample: checking against it would refuse
    // every template that reads a field. Such types are checked once declared or seen.
    for entry in samples.into_iter().filter(|e| !e.sources.is_empty()) {
        let data = super::samples::sample_data(state, rule, &entry);
        let event = super::samples::test_event(state, rule, entry.name.clone(), data);
        let ctx = Context {
            rule,
            workspace_name: &workspace_name,
        };
        payload::body(&event, &ctx).map_err(|e| {
            AppError::validation(format!(
                "webhook.body_template: rendering it with the sample {} event failed: {e}",
                entry.name
            ))
        })?;
    }
    Ok(())
}
