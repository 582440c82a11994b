//! Integration tests: the real server on 127.0.0.1 with a real redb file, real HTTP to real
//! local receivers. One binary, a file per area.

// Test code favours long, explicit scenarios and plain names over these pedantic lints.
#![allow(
    clippy::too_many_lines,
    clippy::similar_names,
    clippy::needless_pass_by_value
)]

mod support;

mod alerts;
mod api_errors;
mod audit;
mod backup;
mod catalog;
mod cli;
mod conditions;
mod delivery;
mod delivery_filter;
mod durability;
mod ed25519;
mod encryption;
mod fairness;
mod fuzz;
mod layering;
mod migrate;
mod mtls;
mod network;
mod oauth;
mod observability;
mod openapi;
mod ordering;
mod postgres;
mod readiness;
mod readme_verifiers;
mod retention;
mod rotation;
mod routines;
mod rule_log;
// Rule versions and drafts (SPEC §14).
mod rule_versions;
mod signatures;
mod store_full;
mod subjects;
mod templates;
mod tls_trust;
mod ui;
mod ui_browser;
mod ui_catalog_users;
mod ui_receiver_auth;
mod ui_rule_form;
mod ui_rule_power;
// Rule versions and drafts in the admin UI (SPEC §14).
mod ui_rule_versions;
mod ui_safety;
mod ui_settings;
mod ui_subjects;
mod ui_times;
mod ui_words;
mod verify_cli;
// Workspaces (SPEC §14).
mod ui_workspace_members;
mod ui_workspaces;
mod workspaces;
mod workspaces_cli;
