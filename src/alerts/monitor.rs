//! The alerts monitor: one thread, fed by the dispatcher's observations (a bounded channel),
//! that keeps each rule's failing episode (stored, see `domain::alert`), watches readiness,
//! and when something goes wrong or right again makes a system event through intake — stored,
//! catalogued and routed by ordinary rules like any event — and mails the people who asked.
//!
//! Client certificates: a rule's is looked at after each of its attempts and, for rules that
//! send nothing, in a sweep once a `CERT_SWEEP`; one within 14 days of expiry is announced
//! once per certificate (`tidings:rule.cert_expiring`, stored like a failing episode).
//!
//! Loop guard: attempts of deliveries that carry system events are not counted, so a rule on
//! `tidings:*` whose receiver fails never alerts about itself.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::mail::{Mail, Mailer, compose};
use crate::app::intake::{Intake, Recipients};
use crate::delivery::dispatcher::Dispatcher;
use crate::delivery::observer::Observation;
use crate::domain::alert::{CertStep, Outcome, RuleAlertState, Step};
use crate::domain::event::Event;
use crate::domain::ids::{EventId, RuleId, WorkspaceId};
use crate::domain::rule::Rule;
use crate::domain::system::{RuleRef, SystemEvent};
use crate::domain::time::Clock;
use crate::domain::user::UserRole;
use crate::store::{Store, StoreError};

/// How often readiness is looked at (and the longest `stop` waits).
const TICK: Duration = Duration::from_secs(1);

/// After an observation, how long the thread lets more gather before it takes them all: at
/// thousands of attempts a second, waking for each one cost more than the alerts' own work.
/// Failing episodes count in seconds and minutes, so this delay is not seen.
const GATHER: Duration = Duration::from_millis(20);

/// How often every rule's client certificate is looked at (a store read of the rules), for
/// rules with no attempts to look at it after. Expiry is counted in days, so a minute is soon.
const CERT_SWEEP: Duration = Duration::from_secs(60);

/// What the monitor is told to do, fixed at start.
pub struct Settings {
    pub failing_after: u32,
    pub min_interval: Duration,
    /// `alerts.email.to`; admins who opted in are added to it per mail.
    pub mail_to: Vec<String>,
    /// Where people open tidings, without a trailing slash (the mails' links).
    pub ui: String,
}

impl Settings {
    pub fn new(config: &crate::config::Config, ui: String) -> Self {
        Self {
            failing_after: config.alerts.failing_after,
            min_interval: config.alerts.email.min_interval,
            mail_to: config.alerts.email.to.clone(),
            ui,
        }
    }
}

/// What the monitor works with.
pub struct Parts {
    pub store: Store,
    pub intake: Intake,
    pub dispatcher: Dispatcher,
    pub clock: Clock,
    /// The dispatcher's observations.
    pub observations: Receiver<Observation>,
    pub mailer: Option<Arc<dyn Mailer>>,
}

/// A readiness problem under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub since: i64,
    pub detail: String,
}

/// What the monitor knows now, shared with `app::alerts` for `GET /api/v1/alerts`.
#[derive(Default)]
pub struct Known {
    pub rules: HashMap<RuleId, RuleAlertState>,
    /// Rules tidings turned off (whether they still are is read from the rule cache).
    pub deactivated: HashSet<RuleId>,
    pub stalled: Option<Outage>,
    pub write_failed: Option<Outage>,
    /// When each readiness problem was last mailed (by event type).
    mailed: HashMap<&'static str, i64>,
}

/// The running monitor.
pub struct Alerts {
    known: Arc<Mutex<Known>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    mailer: Option<Arc<dyn Mailer>>,
    settings: Arc<Settings>,
    store: Store,
}

struct Monitor {
    store: Store,
    intake: Intake,
    dispatcher: Dispatcher,
    clock: Clock,
    mailer: Option<Arc<dyn Mailer>>,
    settings: Arc<Settings>,
    known: Arc<Mutex<Known>>,
}

impl Alerts {
    /// Loads what alerts remember and starts the thread on the dispatcher's observations.
    pub fn start(parts: Parts, settings: Settings) -> Result<Self, StoreError> {
        let Parts {
            store,
            intake,
            dispatcher,
            clock,
            observations,
            mailer,
        } = parts;
        let mut deactivated = HashSet::new();
        for workspace in store.workspaces()? {
            deactivated.extend(
                store
                    .rules(&workspace.id)?
                    .into_iter()
                    .filter(|r| !r.active && r.status_reason.is_some())
                    .map(|r| r.id),
            );
        }
        let known = Arc::new(Mutex::new(Known {
            rules: store.rule_alert_states()?,
            deactivated,
            ..Known::default()
        }));
        let settings = Arc::new(settings);
        let stop = Arc::new(AtomicBool::new(false));
        let monitor = Monitor {
            store: store.clone(),
            intake,
            dispatcher,
            clock,
            mailer: mailer.clone(),
            settings: Arc::clone(&settings),
            known: Arc::clone(&known),
        };
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("alerts".into())
            .spawn(move || {
                // Readiness once a TICK, however many observations arrive in between.
                let mut next_check = Instant::now();
                let mut next_sweep = Instant::now();
                while !stopping.load(Ordering::Relaxed) {
                    let wait = next_check.saturating_duration_since(Instant::now());
                    match observations.recv_timeout(wait) {
                        Ok(observation) => {
                            monitor.observed(observation);
                            std::thread::sleep(GATHER);
                            for observation in observations.try_iter() {
                                monitor.observed(observation);
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if Instant::now() >= next_check {
                        monitor.check_readiness();
                        next_check = Instant::now() + TICK;
                    }
                    if Instant::now() >= next_sweep {
                        monitor.sweep_certificates();
                        next_sweep = Instant::now() + CERT_SWEEP;
                    }
                }
            })
            .map_err(|e| StoreError::Storage(format!("starting the alerts thread: {e}")))?;
        Ok(Self {
            known,
            stop,
            thread: Mutex::new(Some(thread)),
            mailer,
            settings,
            store,
        })
    }

    /// What is known now (failing episodes, rules turned off, readiness problems).
    pub fn known(&self) -> MutexGuard<'_, Known> {
        lock(&self.known)
    }

    /// The mailer, if `[alerts.email]` is set.
    pub fn mailer(&self) -> Option<&Arc<dyn Mailer>> {
        self.mailer.as_ref()
    }

    /// Everyone a workspace's alert mail goes to: `alerts.email.to` and the workspace's
    /// admins who opted in.
    pub fn recipients(&self, workspace: &WorkspaceId) -> Vec<String> {
        recipients(&self.store, &self.settings.mail_to, Some(workspace))
    }

    pub fn ui(&self) -> &str {
        &self.settings.ui
    }

    /// Stops the thread (within `TICK`) and waits for it. Before the dispatcher stops, so
    /// its shutdown does not read as a stall.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `alerts.email.to` and the opted-in admins of `workspace` (the rule's), or of every
/// workspace (`None`: the dispatcher or the store, which every workspace shares). An admin of
/// one workspace never hears of another's rules.
fn recipients(
    store: &Store,
    configured: &[String],
    workspace: Option<&WorkspaceId>,
) -> Vec<String> {
    let mut to: Vec<String> = configured.to_vec();
    let workspaces = match workspace {
        Some(one) => Ok(vec![one.clone()]),
        None => store
            .workspaces()
            .map(|all| all.into_iter().map(|w| w.id).collect()),
    };
    let admins = workspaces.and_then(|all| {
        let mut admins = Vec::new();
        for ws in all {
            // Only admins get alert mail: a user demoted since opting in no longer does.
            admins.extend(
                store
                    .users(&ws)?
                    .into_iter()
                    .filter(|u| u.role_in(&ws) == Some(UserRole::Admin)),
            );
        }
        Ok(admins)
    });
    match admins {
        Ok(admins) => {
            for address in admins.into_iter().filter_map(|u| u.alert_email) {
                if !to.iter().any(|t| t.eq_ignore_ascii_case(&address)) {
                    to.push(address);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read who opted in to alert mail"),
    }
    to
}

impl Monitor {
    fn observed(&self, observation: Observation) {
        match observation {
            Observation::Attempt {
                test: true | false,
                system_event: true,
                ..
            }
            | Observation::Attempt { test: true, .. }
            | Observation::Deactivated {
                system_event: true, ..
            } => {}
            Observation::Attempt {
                rule_id,
                at,
                succeeded,
                error_kind,
                status_code,
                ..
            } => self.attempted(
                &rule_id,
                Outcome {
                    at,
                    succeeded,
                    error_kind,
                    status_code,
                },
            ),
            Observation::Deactivated {
                rule_id, reason, ..
            } => self.deactivated(&rule_id, reason),
        }
    }

    fn attempted(&self, rule_id: &RuleId, outcome: Outcome) {
        self.count_attempt(rule_id, outcome);
        if let Some(rule) = self.store.cached_rule(rule_id) {
            self.check_certificate(&rule);
        }
    }

    /// The attempt's part in the rule's failing episode.
    fn count_attempt(&self, rule_id: &RuleId, outcome: Outcome) {
        if self.store.cached_rule(rule_id).is_none() {
            // Deleted since: nothing to tell, and nothing left to remember.
            if lock(&self.known).rules.remove(rule_id).is_some() {
                self.remember(rule_id, RuleAlertState::default());
            }
            return;
        }
        let (step, state) = {
            let mut known = lock(&self.known);
            let state = known.rules.entry(rule_id.clone()).or_default();
            let step = state.observe(outcome, self.settings.failing_after);
            (step, state.clone())
        };
        let event = match step {
            Step::Quiet => return,
            Step::Changed => None,
            Step::Failing(episode) => self.rule_ref(rule_id).map(|rule| SystemEvent::RuleFailing {
                rule,
                since: episode.since,
                failed_attempts: episode.failed_attempts,
                last_error_kind: episode.last_error_kind,
                last_status_code: episode.last_status_code,
            }),
            Step::Recovered {
                failed_since,
                recovered_at,
            } => self
                .rule_ref(rule_id)
                .map(|rule| SystemEvent::RuleRecovered {
                    rule,
                    failed_since,
                    recovered_at,
                }),
        };
        // Told first, stored after: a crash in between repeats the event, which its
        // idempotency key then drops, rather than losing it.
        let state = match event {
            Some(event) => self.tell_about_rule(rule_id, &event, state, false),
            None => state,
        };
        self.remember(rule_id, state);
    }

    /// Every rule of every workspace, for those that send nothing.
    fn sweep_certificates(&self) {
        let rules = self.store.workspaces().and_then(|all| {
            let mut rules = Vec::new();
            for workspace in all {
                rules.extend(self.store.rules(&workspace.id)?);
            }
            Ok(rules)
        });
        match rules {
            Ok(rules) => rules.iter().for_each(|r| self.check_certificate(r)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the rules to check their client certificates");
            }
        }
    }

    /// Announces an active rule's client certificate once it is within 14 days of expiry,
    /// and forgets the announcement once the rule presents another certificate (or none).
    fn check_certificate(&self, rule: &Rule) {
        if !rule.active {
            return;
        }
        let mut state = lock(&self.known)
            .rules
            .get(&rule.id)
            .cloned()
            .unwrap_or_default();
        let expires_at = rule.webhook.auth.client_cert_expires_at();
        let state = match state.observe_cert(expires_at, self.clock.now_ms()) {
            CertStep::Quiet => return,
            CertStep::Ended => state,
            CertStep::Expiring { expires_at } => {
                let event = SystemEvent::RuleCertExpiring {
                    rule: RuleRef {
                        id: rule.id.as_str().to_owned(),
                        name: rule.name.clone(),
                    },
                    expires_at,
                };
                // Once per certificate, mailed whatever else was mailed lately.
                self.tell_about_rule(&rule.id, &event, state, true)
            }
        };
        self.remember(&rule.id, state);
    }

    fn deactivated(&self, rule_id: &RuleId, reason: String) {
        let state = {
            let mut known = lock(&self.known);
            known.deactivated.insert(rule_id.clone());
            let state = known.rules.entry(rule_id.clone()).or_default();
            state.deactivated();
            state.clone()
        };
        let state = match self.rule_ref(rule_id) {
            Some(rule) => {
                let event = SystemEvent::RuleDeactivated { rule, reason };
                self.tell_about_rule(rule_id, &event, state, true)
            }
            None => state,
        };
        self.remember(rule_id, state);
    }

    fn rule_ref(&self, id: &RuleId) -> Option<RuleRef> {
        self.store.cached_rule(id).map(|r| RuleRef {
            id: r.id.as_str().to_owned(),
            name: r.name.clone(),
        })
    }

    /// Makes the event in the rule's workspace and mails it (unless a mail about this rule
    /// went out within `min_interval`, and the event is not a deactivation); returns the
    /// state with the mail noted.
    fn tell_about_rule(
        &self,
        rule_id: &RuleId,
        event: &SystemEvent,
        mut state: RuleAlertState,
        always_mail: bool,
    ) -> RuleAlertState {
        let Some(rule) = self.store.cached_rule(rule_id) else {
            return state;
        };
        let key = match event {
            SystemEvent::RuleFailing { since, .. } => {
                format!("{}:{rule_id}:{since}", event.type_name())
            }
            SystemEvent::RuleRecovered { failed_since, .. } => {
                format!("{}:{rule_id}:{failed_since}", event.type_name())
            }
            SystemEvent::RuleCertExpiring { expires_at, .. } => {
                format!("{}:{rule_id}:{expires_at}", event.type_name())
            }
            _ => format!("{}:{rule_id}:{}", event.type_name(), rule.updated_at),
        };
        self.make_event(&rule.workspace_id, event, key);
        let now = self.clock.now_ms();
        let min = i64::try_from(self.settings.min_interval.as_millis()).unwrap_or(i64::MAX);
        if always_mail || state.may_mail(now, min) {
            if self.mail(event, Some(&rule.workspace_id)) {
                state.last_mailed_at = Some(now);
            }
        } else {
            tracing::info!(rule = %rule_id, kind = event.type_name(), "alert mail held back (alerts.email.min_interval)");
        }
        state
    }

    fn remember(&self, rule_id: &RuleId, state: RuleAlertState) {
        let stored = (!state.is_empty()).then_some(state.clone());
        {
            let mut known = lock(&self.known);
            if state.is_empty() {
                known.rules.remove(rule_id);
            } else {
                known.rules.insert(rule_id.clone(), state);
            }
        }
        if let Err(e) = self.store.set_rule_alert_state(rule_id, stored) {
            tracing::error!(rule = %rule_id, error = %e, "could not store the rule's alert state");
        }
    }

    /// Stores and routes a system event through intake, like any event.
    fn make_event(&self, workspace: &WorkspaceId, system: &SystemEvent, key: String) {
        let now = self.clock.now_ms();
        let event = Event {
            id: EventId::generate(now),
            workspace_id: workspace.clone(),
            event_type: system.event_type(),
            occurred_at: now,
            received_at: now,
            data: system.data(),
            test: false,
            subject: None,
            erased: false,
        };
        match self
            .intake
            .accept_blocking(event, Recipients::System, Some(key))
        {
            Ok(accepted) => {
                tracing::warn!(kind = system.type_name(), ?accepted, "alert");
            }
            Err(e) => {
                tracing::error!(kind = system.type_name(), error = %e, "the alert event could not be stored");
            }
        }
    }

    /// Mails an alert to everyone who asked; whether it went out.
    fn mail(&self, event: &SystemEvent, workspace: Option<&WorkspaceId>) -> bool {
        let Some(mailer) = &self.mailer else {
            return false;
        };
        let to = recipients(&self.store, &self.settings.mail_to, workspace);
        if to.is_empty() {
            return false;
        }
        let (subject, body) = compose(event, &self.settings.ui);
        match mailer.send(&Mail { to, subject, body }) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(kind = event.type_name(), error = %e, "the alert mail was not sent");
                false
            }
        }
    }

    /// Readiness problems begin (an event and a mail) and end (the banner goes).
    fn check_readiness(&self) {
        let now = self.clock.now_ms();
        let stalled = (!self.dispatcher.is_healthy())
            .then(|| "due deliveries are waiting and no attempt has finished".to_owned());
        let write_failed = self.store.ping().err().map(|e| e.to_string());
        let began = {
            let mut guard = lock(&self.known);
            let known: &mut Known = &mut guard;
            let mut began = Vec::new();
            for (slot, problem, make) in [
                (
                    &mut known.stalled,
                    stalled,
                    (|since, detail| SystemEvent::DispatcherStalled { since, detail })
                        as fn(i64, String) -> SystemEvent,
                ),
                (&mut known.write_failed, write_failed, |since, detail| {
                    SystemEvent::StoreWriteFailed { since, detail }
                }),
            ] {
                match (slot.is_some(), problem) {
                    (false, Some(detail)) => {
                        *slot = Some(Outage {
                            since: now,
                            detail: detail.clone(),
                        });
                        began.push(make(now, detail));
                    }
                    (true, None) => *slot = None,
                    _ => {}
                }
            }
            began
        };
        let min = i64::try_from(self.settings.min_interval.as_millis()).unwrap_or(i64::MAX);
        for event in began {
            // The dispatcher and the store serve every workspace, so each one hears of it
            // (SPEC §11), through its own rules.
            match self.store.workspaces() {
                Ok(all) => {
                    for workspace in all {
                        let key = format!("{}:{now}", event.type_name());
                        self.make_event(&workspace.id, &event, key);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, kind = event.type_name(), "could not read the workspaces to tell of an outage");
                }
            }
            let kind = event.type_name();
            let due = lock(&self.known)
                .mailed
                .get(kind)
                .is_none_or(|last| now - last >= min);
            if due && self.mail(&event, None) {
                lock(&self.known).mailed.insert(kind, now);
            }
        }
    }
}
