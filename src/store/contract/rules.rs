//! Contract cases for `RuleStore`: saving, replacing and deleting rules, the cache that
//! ingest and attempts read, workspace isolation, deactivation and failing clocks.

use super::{
    START, assert_conflict, assert_not_found, audit, audit_actions, block_on, event_type,
    eventually, other_workspace, routine, rule,
};
use crate::domain::audit::Actor;
use crate::domain::ids::RuleId;
use crate::domain::time::Clock;
use crate::store::Store;

pub fn rules_save_replace_and_delete(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let new = rule(&ws, "first", &["patient.*"]);
    let saved = block_on(store.save_rule(new.clone(), false, audit(&ws, "rule.create"))).unwrap();
    assert_eq!(saved.id, new.id);
    assert_eq!(store.rule(&ws, &new.id).unwrap().name, "first");
    assert_eq!(store.rules(&ws).unwrap().len(), 1);
    assert_eq!(store.cached_rule(&new.id).unwrap().name, "first");

    // Creating an id that exists is a conflict, and changes nothing.
    let mut again = new.clone();
    again.name = "clobbered".into();
    assert_conflict(block_on(store.save_rule(again, false, audit(&ws, "x"))));
    assert_eq!(store.rule(&ws, &new.id).unwrap().name, "first");

    // Replacing one that exists; the cache follows before the write returns.
    let mut renamed = new.clone();
    renamed.name = "renamed".into();
    block_on(store.save_rule(renamed, true, audit(&ws, "rule.update"))).unwrap();
    assert_eq!(store.rule(&ws, &new.id).unwrap().name, "renamed");
    assert_eq!(store.cached_rule(&new.id).unwrap().name, "renamed");

    // Updating a rule that is gone (a concurrent delete) is not found, and does not create it.
    let ghost = rule(&ws, "ghost", &["a"]);
    assert_not_found(
        block_on(store.save_rule(ghost.clone(), true, audit(&ws, "x"))),
        "rule",
    );
    assert_not_found(store.rule(&ws, &ghost.id), "rule");

    let removed =
        block_on(store.delete_rule(ws.clone(), new.id.clone(), audit(&ws, "rule.delete"))).unwrap();
    assert_eq!(removed.name, "renamed");
    assert_not_found(store.rule(&ws, &new.id), "rule");
    assert!(store.cached_rule(&new.id).is_none());
    assert!(store.rules(&ws).unwrap().is_empty());
    assert_not_found(
        block_on(store.delete_rule(ws.clone(), new.id.clone(), audit(&ws, "x"))),
        "rule",
    );
    // Each successful write recorded its audit entry in the same step; refused ones none.
    let mut actions = audit_actions(store, &ws);
    actions.sort();
    assert_eq!(actions, ["rule.create", "rule.delete", "rule.update"]);
}

pub fn rules_cache_matches_active_rules_and_lists_routines(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    let wide = rule(&ws, "wide", &["patient.*"]);
    let exact = rule(&ws, "exact", &["patient.admitted"]);
    let unrelated = rule(&ws, "unrelated", &["invoice.paid"]);
    let mut inactive = rule(&ws, "inactive", &["patient.admitted"]);
    inactive.active = false;
    let elsewhere = rule(&other, "elsewhere", &["patient.admitted"]);
    let hourly = routine(&ws, "hourly");
    let mut paused = routine(&ws, "paused");
    paused.active = false;
    for r in [
        &wide, &exact, &unrelated, &inactive, &elsewhere, &hourly, &paused,
    ] {
        block_on(store.save_rule(r.clone(), false, audit(&r.workspace_id, "rule.create"))).unwrap();
    }
    let matched: Vec<RuleId> = store
        .matching_rules(&ws, &event_type("patient.admitted"))
        .iter()
        .map(|r| r.id.clone())
        .collect();
    let mut expected = vec![wide.id.clone(), exact.id.clone()];
    expected.sort();
    assert_eq!(matched, expected, "active rules of the workspace, by id");
    assert!(
        store
            .matching_rules(&ws, &event_type("routine:fired"))
            .is_empty(),
        "routines take no ingested events"
    );
    let routines: Vec<RuleId> = store.routines().iter().map(|r| r.id.clone()).collect();
    assert_eq!(routines, [hourly.id]);
    assert!(
        store.cached_rule(&inactive.id).is_some(),
        "inactive rules are cached too"
    );
    assert_eq!(store.rules(&ws).unwrap().len(), 6);
}

pub fn rules_of_another_workspace_are_not_found(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    let theirs = rule(&other, "theirs", &["a"]);
    block_on(store.save_rule(theirs.clone(), false, audit(&other, "rule.create"))).unwrap();
    assert_not_found(store.rule(&ws, &theirs.id), "rule");
    assert!(store.rules(&ws).unwrap().is_empty());
    assert_not_found(
        block_on(store.delete_rule(ws.clone(), theirs.id.clone(), audit(&ws, "x"))),
        "rule",
    );
    assert_eq!(store.rule(&other, &theirs.id).unwrap().name, "theirs");
    assert_eq!(store.rules(&other).unwrap().len(), 1);
    assert!(audit_actions(store, &ws).is_empty());
}

pub fn rules_deactivate_and_keep_failing_clocks(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "dying", &["a"]);
    block_on(store.save_rule(r.clone(), false, audit(&ws, "rule.create"))).unwrap();
    clock.set(START + 5_000);
    store
        .deactivate_rule(&r.id, "the receiver answered 410 Gone".into())
        .unwrap();
    let stored = store.rule(&ws, &r.id).unwrap();
    assert!(!stored.active);
    assert_eq!(
        stored.status_reason.as_deref(),
        Some("the receiver answered 410 Gone")
    );
    assert_eq!(
        stored.updated_at,
        START + 5_000,
        "stamped by the store's clock"
    );
    assert!(!store.cached_rule(&r.id).unwrap().active);
    assert!(store.matching_rules(&ws, &event_type("a")).is_empty());
    let (log, _) = store.audit_log(&ws, None, 10).unwrap();
    let entry = log
        .iter()
        .find(|e| e.action == "rule.deactivate")
        .expect("an audit entry");
    assert_eq!(entry.actor, Actor::System);
    assert_eq!(entry.target_id, r.id.as_str());
    assert_eq!(
        entry.detail.as_deref(),
        Some("the receiver answered 410 Gone")
    );
    store
        .deactivate_rule(&RuleId::generate(START), "no such rule".into())
        .unwrap();

    assert!(store.rules_failing_since().unwrap().is_empty());
    store.set_rule_failing_since(&r.id, Some(START - 60_000));
    eventually("the failing clock to start", || {
        store.rules_failing_since().unwrap().get(&r.id) == Some(&(START - 60_000))
    });
    store.set_rule_failing_since(&r.id, None);
    eventually("the failing clock to clear", || {
        store.rules_failing_since().unwrap().is_empty()
    });
}

/// Everything a rule signs and authenticates with comes back exactly as saved: ed25519 key
/// pairs (sealed private half, public half in clear, overlap times) beside the HMAC secrets,
/// and `webhook.auth` (an mTLS certificate in clear, its key sealed, the expiry).
/// The sealed strings are opaque to the store: it neither opens nor re-seals them.
pub fn rules_keep_signing_keys_and_receiver_credentials_as_given(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let key = crate::security::crypto::MasterKey::from_bytes(&[9; 32]);
    let mut new = rule(&ws, "signed", &["member:*"]);
    new.webhook.signing = crate::domain::rule::Signing::Ed25519;
    let pair = |public: &str, expires_at| crate::domain::rule::SigningSecret {
        sealed: key.seal("whsk_private"),
        hint: public[public.len() - 4..].to_owned(),
        public_key: Some(public.to_owned()),
        created_at: START,
        expires_at,
    };
    new.signing_keys = vec![
        pair("whpk_new-public-key", None),
        pair("whpk_old-public-key", Some(START + 1000)),
    ];
    new.webhook.auth = crate::domain::rule::ReceiverAuth::Mtls {
        client_cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".into(),
        client_key: key.seal("-----BEGIN PRIVATE KEY-----"),
        client_cert_expires_at: START + 86_400_000,
    };
    block_on(store.save_rule(new.clone(), false, audit(&ws, "rule.create"))).unwrap();
    for got in [
        store.rule(&ws, &new.id).unwrap(),
        (*store.cached_rule(&new.id).unwrap()).clone(),
    ] {
        assert_eq!(got.webhook.signing, new.webhook.signing);
        assert_eq!(got.signing_keys.len(), 2);
        for (got, want) in got.signing_keys.iter().zip(&new.signing_keys) {
            assert_eq!(got.sealed, want.sealed);
            assert_eq!(got.public_key, want.public_key);
            assert_eq!(
                (got.created_at, got.expires_at),
                (want.created_at, want.expires_at)
            );
        }
        assert_eq!(
            key.open(&got.signing_keys[0].sealed).unwrap().expose(),
            "whsk_private"
        );
    }
}

pub fn rules_alert_states_are_stored_and_forgotten(store: &Store, _clock: &Clock) {
    use crate::domain::alert::{CertExpiring, Episode, RuleAlertState};
    use crate::domain::delivery::ErrorKind;
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "flaky", &["a"]);
    let other = rule(&ws, "quiet", &["b"]);
    assert!(store.rule_alert_states().unwrap().is_empty());
    let state = RuleAlertState {
        episode: Some(Episode {
            since: START - 60_000,
            failed_attempts: 3,
            last_error_kind: Some(ErrorKind::Timeout),
            last_status_code: None,
            alerted_at: Some(START - 1_000),
        }),
        last_mailed_at: Some(START - 1_000),
        cert_expiring: Some(CertExpiring {
            expires_at: START + 86_400_000,
            alerted_at: START - 1_000,
        }),
    };
    // Durable once the call returns: no `eventually` here.
    store
        .set_rule_alert_state(&r.id, Some(state.clone()))
        .unwrap();
    store
        .set_rule_alert_state(&other.id, Some(RuleAlertState::default()))
        .unwrap();
    let states = store.rule_alert_states().unwrap();
    assert_eq!(states.get(&r.id), Some(&state));
    assert_eq!(states.len(), 2);
    let recovered = RuleAlertState {
        episode: None,
        ..state
    };
    store
        .set_rule_alert_state(&r.id, Some(recovered.clone()))
        .unwrap();
    assert_eq!(
        store.rule_alert_states().unwrap().get(&r.id),
        Some(&recovered)
    );
    store.set_rule_alert_state(&other.id, None).unwrap();
    store.set_rule_alert_state(&other.id, None).unwrap();
    let states = store.rule_alert_states().unwrap();
    assert_eq!(states.len(), 1, "forgetting twice is harmless");
    assert!(states.contains_key(&r.id));
}
