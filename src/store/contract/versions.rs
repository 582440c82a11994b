//! Contract cases for `RuleVersionStore` (SPEC §14): publishing numbers versions and keeps
//! each; a rule stored before versions starts its history with what it was; a draft is
//! stored, replaced, published or discarded; and both go with their rule.

use super::{START, assert_conflict, assert_not_found, audit, audit_actions, block_on, rule};
use crate::domain::audit::Actor;
use crate::domain::rule::RuleDraft;
use crate::domain::time::Clock;
use crate::store::{Publish, Store};

fn publish(
    rule: crate::domain::rule::Rule,
    expect_existing: bool,
    from_draft: Option<i64>,
) -> Publish {
    Publish {
        rule,
        by: Actor::Cli,
        expect_existing,
        from_draft,
    }
}

// One story from create to delete: each step's state is what the next one starts from.
#[allow(clippy::too_many_lines)]
pub fn rule_versions_are_numbered_kept_and_go_with_the_rule(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let first = rule(&ws, "first", &["patient.*"]);
    let v1 = block_on(store.publish_rule(
        publish(first.clone(), false, None),
        audit(&ws, "rule.create"),
    ))
    .unwrap();
    assert_eq!((v1.version, v1.rule.version), (1, 1));
    assert_eq!(store.rule(&ws, &first.id).unwrap().version, 1);
    assert_eq!(store.cached_rule(&first.id).unwrap().version, 1);
    // Creating it again is a conflict; updating a rule that is not there is not found.
    assert_conflict(block_on(
        store.publish_rule(publish(first.clone(), false, None), audit(&ws, "x")),
    ));
    let ghost = rule(&ws, "ghost", &["a"]);
    assert_not_found(
        block_on(store.publish_rule(publish(ghost.clone(), true, None), audit(&ws, "x"))),
        "rule",
    );
    assert!(store.rule_versions(&ghost.id).unwrap().is_empty());

    let mut second = first.clone();
    second.name = "second".into();
    second.updated_at = START + 1000;
    let v2 = block_on(store.publish_rule(publish(second, true, None), audit(&ws, "rule.update")))
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.published_at, START + 1000);
    let versions = store.rule_versions(&first.id).unwrap();
    let seen: Vec<(u32, String)> = versions
        .iter()
        .map(|v| (v.version, v.rule.name.clone()))
        .collect();
    assert_eq!(seen, [(1, "first".to_owned()), (2, "second".to_owned())]);
    assert_eq!(store.cached_rule(&first.id).unwrap().name, "second");

    // A draft: stored and replaced without touching the live rule.
    let mut content = store.rule(&ws, &first.id).unwrap();
    content.name = "drafted".into();
    let draft = |saved_at: i64, rule: crate::domain::rule::Rule| RuleDraft {
        rule_id: first.id.clone(),
        workspace_id: ws.clone(),
        base_version: 2,
        saved_at,
        saved_by: Actor::Cli,
        rule,
    };
    block_on(store.save_rule_draft(
        draft(START + 2000, content.clone()),
        audit(&ws, "rule.draft.save"),
    ))
    .unwrap();
    block_on(store.save_rule_draft(
        draft(START + 3000, content.clone()),
        audit(&ws, "rule.draft.save"),
    ))
    .unwrap();
    assert_eq!(
        store.rule_draft(&first.id).unwrap().unwrap().saved_at,
        START + 3000
    );
    assert_eq!(store.rule(&ws, &first.id).unwrap().name, "second");
    // Not for a rule that is not there, nor into another workspace.
    let mut stray = draft(START, content.clone());
    stray.rule_id = ghost.id.clone();
    assert_not_found(
        block_on(store.save_rule_draft(stray, audit(&ws, "x"))),
        "rule",
    );
    let mut elsewhere = draft(START, content.clone());
    elsewhere.workspace_id = super::other_workspace();
    assert_not_found(
        block_on(store.save_rule_draft(elsewhere, audit(&ws, "x"))),
        "rule",
    );

    // Publishing a draft that was saved again since is a conflict and changes nothing.
    assert_conflict(block_on(store.publish_rule(
        publish(content.clone(), true, Some(START + 2000)),
        audit(&ws, "x"),
    )));
    assert_eq!(store.rule(&ws, &first.id).unwrap().version, 2);
    assert!(store.rule_draft(&first.id).unwrap().is_some());
    let v3 = block_on(store.publish_rule(
        publish(content.clone(), true, Some(START + 3000)),
        audit(&ws, "rule.publish"),
    ))
    .unwrap();
    assert_eq!((v3.version, v3.rule.name.as_str()), (3, "drafted"));
    assert!(
        store.rule_draft(&first.id).unwrap().is_none(),
        "published with the draft gone"
    );
    assert_conflict(block_on(store.publish_rule(
        publish(content.clone(), true, Some(START + 3000)),
        audit(&ws, "x"),
    )));
    assert_eq!(store.rule_versions(&first.id).unwrap().len(), 3);

    // Discarding: the draft only, and not found without one.
    block_on(store.save_rule_draft(
        draft(START + 4000, content.clone()),
        audit(&ws, "rule.draft.save"),
    ))
    .unwrap();
    assert_not_found(
        block_on(store.delete_rule_draft(
            super::other_workspace(),
            first.id.clone(),
            audit(&ws, "x"),
        )),
        "draft",
    );
    block_on(store.delete_rule_draft(
        ws.clone(),
        first.id.clone(),
        audit(&ws, "rule.draft.discard"),
    ))
    .unwrap();
    assert!(store.rule_draft(&first.id).unwrap().is_none());
    assert_not_found(
        block_on(store.delete_rule_draft(ws.clone(), first.id.clone(), audit(&ws, "x"))),
        "draft",
    );

    // A rule stored before versions (saved, version 0) starts its history with what it was.
    let legacy = rule(&ws, "legacy", &["a"]);
    block_on(store.save_rule(legacy.clone(), false, audit(&ws, "rule.create"))).unwrap();
    assert!(store.rule_versions(&legacy.id).unwrap().is_empty());
    let mut changed = legacy.clone();
    changed.name = "legacy changed".into();
    let v = block_on(store.publish_rule(publish(changed, true, None), audit(&ws, "rule.update")))
        .unwrap();
    assert_eq!(v.version, 2);
    let history = store.rule_versions(&legacy.id).unwrap();
    let seen: Vec<(u32, String, Actor)> = history
        .iter()
        .map(|v| (v.version, v.rule.name.clone(), v.published_by.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "legacy".to_owned(), Actor::System),
            (2, "legacy changed".to_owned(), Actor::Cli)
        ]
    );

    // Deleting a rule deletes its versions and draft.
    block_on(store.save_rule_draft(draft(START + 5000, content), audit(&ws, "rule.draft.save")))
        .unwrap();
    block_on(store.delete_rule(ws.clone(), first.id.clone(), audit(&ws, "rule.delete"))).unwrap();
    assert!(store.rule_versions(&first.id).unwrap().is_empty());
    assert!(store.rule_draft(&first.id).unwrap().is_none());
    assert_eq!(
        store.rule_versions(&legacy.id).unwrap().len(),
        2,
        "other rules keep theirs"
    );

    let actions = audit_actions(store, &ws);
    for action in [
        "rule.publish",
        "rule.draft.save",
        "rule.draft.discard",
        "rule.update",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    assert!(
        !actions.iter().any(|a| a == "x"),
        "refused writes record nothing: {actions:?}"
    );
}
