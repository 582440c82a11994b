//! The one documented configuration: embedded defaults ← TOML file ← `TIDINGS_*` env ← flags.
//!
//! The defaults are `packaging/tidings.toml`, compiled in, so the commented example file and the
//! real defaults cannot drift apart. Every layer is merged as TOML before one typed parse, which
//! lets an unknown key be reported with its full dotted name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::security::crypto::Secret;

/// The commented example config, which doubles as the built-in defaults.
pub const DEFAULTS_TOML: &str = include_str!("../packaging/tidings.toml");

/// The SMTP password's variable: a secret, so never a key of the file.
pub const SMTP_PASSWORD_ENV: &str = "TIDINGS_ALERTS_EMAIL_PASSWORD";

/// Where `serve` looks for a config file when `--config` is not given.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/tidings/tidings.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Production,
    Development,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub mode: Mode,
    pub retry: RetryConfig,
    pub network: NetworkConfig,
    pub limits: LimitsConfig,
    pub logs: LogsConfig,
    pub signing: SigningConfig,
    pub alerts: AlertsConfig,
    pub delivery: DeliveryConfig,
    pub store: StoreConfig,
    pub tls: TlsConfig,
    pub rules: RulesConfig,
    /// Where people reach the admin UI (alert mails link to it); empty: `http(s)://listen`.
    pub public_url: String,
    /// The config file `load` read (its absolute path), or `NO_FILE`: shown on the settings
    /// page, so an admin editing a file can tell whether it is the one in effect.
    #[serde(skip)]
    pub source: String,
}

/// `Config::source` when tidings started without a config file.
pub const NO_FILE: &str = "none: defaults and environment";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    pub max_attempts: u32,
    #[serde(deserialize_with = "duration")]
    pub base_delay: Duration,
    #[serde(deserialize_with = "duration")]
    pub max_delay: Duration,
    pub jitter: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub allow: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_event_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    pub retention_days: u32,
    pub store_bodies: bool,
}

/// How rule changes go live (SPEC §14).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// A draft is published only by another user or API key than the one that saved it,
    /// and a live rule changes only through a draft.
    pub require_review: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    #[serde(deserialize_with = "duration")]
    pub rotation_overlap: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(deserialize_with = "duration")]
    pub disable_after: Duration,
    /// `/readyz` fails once a due delivery has waited this long while no attempt finished.
    #[serde(deserialize_with = "duration")]
    pub dispatcher_stuck_after: Duration,
    /// `/readyz` fails (`deliveries_on_time`) once a due delivery that nothing but a busy
    /// worker pool holds back has waited this long.
    #[serde(deserialize_with = "duration")]
    pub deliveries_delayed_after: Duration,
    /// A rule whose last this many attempts all failed is failing (`tidings:rule.failing`).
    pub failing_after: u32,
    pub email: EmailConfig,
}

/// `[alerts.email]`: alert mail over SMTP; off while `smtp_url` is empty.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://[user[:password]@]host[:port]` (STARTTLS) or `smtps://…` (implicit TLS).
    pub smtp_url: String,
    pub from: String,
    pub to: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub min_interval: Duration,
    /// PEM file of an extra certificate authority to trust for the SMTP server.
    pub ca_file: String,
    /// `TIDINGS_ALERTS_EMAIL_PASSWORD`, which wins over a password in `smtp_url`; never in a
    /// file, never printed.
    #[serde(skip)]
    pub password: Option<Secret>,
}

impl EmailConfig {
    pub fn enabled(&self) -> bool {
        !self.smtp_url.is_empty()
    }

    /// `smtp_url` with any password in it replaced by `***`, for logs and `check-config`.
    pub fn smtp_url_redacted(&self) -> String {
        match url::Url::parse(&self.smtp_url) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.smtp_url.clone(),
        }
    }
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &self.smtp_url_redacted())
            .field("from", &self.from)
            .field("to", &self.to)
            .field("min_interval", &self.min_interval)
            .field("ca_file", &self.ca_file)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How the delivery workers are shared between rules and destinations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Workers that attempts to one destination (host:port) may hold at once, whatever the
    /// rules' `max_concurrency`.
    pub max_workers_per_destination: usize,
    /// Timeouts or connection failures in a row that open a rule's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker holds the rule's deliveries back before one probe goes.
    #[serde(deserialize_with = "duration")]
    pub breaker_cooldown: Duration,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Empty: the embedded redb file. `postgres://…`: PostgreSQL.
    pub url: String,
    #[serde(deserialize_with = "duration")]
    pub lease: Duration,
}

impl StoreConfig {
    /// The PostgreSQL store's settings, or `None` for the embedded one.
    pub fn postgres(&self) -> Option<crate::store::PgOptions> {
        (!self.url.is_empty()).then(|| crate::store::PgOptions {
            url: self.url.clone(),
            lease: self.lease,
        })
    }
}

impl std::fmt::Debug for StoreConfig {
    // The URL may hold the database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &mask_password(&self.url))
            .field("lease", &self.lease)
            .finish()
    }
}

/// A store URL with its password (if any) replaced by `********`, for printing.
pub fn mask_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("********"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for TlsConfig {
    // The key path is not secret, but keep Debug output uniform with other secret-bearing types.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

/// Command-line values, which win over every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub development: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl ConfigError {
    fn invalid(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Embedded defaults only; what tests and `serve` without a file start from.
    pub fn defaults() -> Self {
        Self::load(None, std::iter::empty(), &Overrides::default())
            .expect("embedded defaults are valid")
    }

    /// Builds the effective config from every layer; `env` is usually `std::env::vars()`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut merged: toml::Table = DEFAULTS_TOML
            .parse()
            .map_err(|e| ConfigError::invalid("embedded defaults", format!("{e}")))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let origin = path.display().to_string();
            let table: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::invalid(&origin, e.message()))?;
            merge(&mut merged, table, "", &origin)?;
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("TIDINGS_"))
            .collect();
        let smtp_password = env
            .iter()
            .find(|(k, _)| k == SMTP_PASSWORD_ENV)
            .map(|(_, v)| Secret::new(v.clone()));
        apply_env(&mut merged, &env)?;
        if let Some(listen) = &overrides.listen {
            merged.insert("listen".into(), toml::Value::String(listen.clone()));
        }
        if let Some(dir) = &overrides.data_dir {
            merged.insert(
                "data_dir".into(),
                toml::Value::String(dir.to_string_lossy().into_owned()),
            );
        }
        if overrides.development {
            merged.insert("mode".into(), toml::Value::String("development".into()));
        }
        let mut config: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::invalid("config", one_line(&e)))?;
        config.alerts.email.password = smtp_password;
        config.source = file.map_or_else(
            || NO_FILE.to_owned(),
            // Absolute, so a relative --config still names one file.
            |path| {
                std::fs::canonicalize(path)
                    .unwrap_or_else(|_| path.to_owned())
                    .display()
                    .to_string()
            },
        );
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::invalid(key, why));
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts", "must be at least 1");
        }
        if self.retry.base_delay.is_zero() {
            return bad("retry.base_delay", "must be greater than zero");
        }
        if self.retry.max_delay < self.retry.base_delay {
            return bad(
                "retry.max_delay",
                "must not be shorter than retry.base_delay",
            );
        }
        if self.limits.max_event_bytes < 1024 {
            return bad("limits.max_event_bytes", "must be at least 1024");
        }
        if self.logs.retention_days == 0 {
            return bad("logs.retention_days", "must be at least 1");
        }
        if self.alerts.dispatcher_stuck_after.is_zero() {
            return bad("alerts.dispatcher_stuck_after", "must be greater than zero");
        }
        if self.alerts.deliveries_delayed_after.is_zero() {
            return bad(
                "alerts.deliveries_delayed_after",
                "must be greater than zero",
            );
        }
        if !(1..=crate::delivery::dispatcher::WORKERS)
            .contains(&self.delivery.max_workers_per_destination)
        {
            return bad(
                "delivery.max_workers_per_destination",
                "must be between 1 and 32 (the delivery workers)",
            );
        }
        if self.delivery.breaker_failures == 0 {
            return bad("delivery.breaker_failures", "must be at least 1");
        }
        let url = &self.store.url;
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return bad(
                "store.url",
                "must be empty (the embedded database) or a postgres:// URL",
            );
        }
        if self.store.lease < Duration::from_secs(1) {
            return bad("store.lease", "must be at least 1s");
        }
        if self.delivery.breaker_cooldown.is_zero() {
            return bad("delivery.breaker_cooldown", "must be greater than zero");
        }
        if self.alerts.failing_after == 0 {
            return bad("alerts.failing_after", "must be at least 1");
        }
        self.validate_email()?;
        if !self.public_url.is_empty() {
            let url = url::Url::parse(&self.public_url).ok();
            if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()) {
                return bad(
                    "public_url",
                    "must be an http:// or https:// address such as https://tidings.clinic.example",
                );
            }
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return bad("tls", "set both tls.cert and tls.key, or neither");
        }
        Ok(())
    }

    /// `[alerts.email]`: a usable URL, and a sender and recipients that are addresses.
    fn validate_email(&self) -> Result<(), ConfigError> {
        use crate::alerts::smtp::{SmtpTarget, mailbox};
        let email = &self.alerts.email;
        let invalid = |key: &str, why: String| Err(ConfigError::invalid(key, why));
        if !email.enabled() {
            return Ok(());
        }
        if let Err(why) = SmtpTarget::parse(&email.smtp_url, self.is_development()) {
            return invalid("alerts.email.smtp_url", why);
        }
        if email.from.trim().is_empty() {
            return invalid(
                "alerts.email.from",
                "is needed once smtp_url is set: the sender of alert mail".into(),
            );
        }
        if let Err(why) = mailbox(&email.from) {
            return invalid("alerts.email.from", why);
        }
        for to in &email.to {
            if let Err(why) = mailbox(to) {
                return invalid("alerts.email.to", why);
            }
        }
        if email.min_interval.is_zero() {
            return invalid(
                "alerts.email.min_interval",
                "must be greater than zero".into(),
            );
        }
        Ok(())
    }

    pub fn is_development(&self) -> bool {
        self.mode == Mode::Development
    }

    /// The database file inside the data dir.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("tidings.redb")
    }

    /// Effective settings as TOML, for `check-config` and the settings page.
    pub fn to_toml(&self) -> String {
        let allow: Vec<String> = self.network.allow.iter().map(ToString::to_string).collect();
        let value = toml::toml! {
            listen = (self.listen.to_string())
            data_dir = (self.data_dir.to_string_lossy().into_owned())
            mode = (if self.is_development() { "development" } else { "production" })
            [retry]
            max_attempts = (i64::from(self.retry.max_attempts))
            base_delay = (humantime::format_duration(self.retry.base_delay).to_string())
            max_delay = (humantime::format_duration(self.retry.max_delay).to_string())
            jitter = (self.retry.jitter)
            [network]
            allow = (allow)
            [limits]
            max_event_bytes = (i64::try_from(self.limits.max_event_bytes).unwrap_or(i64::MAX))
            [logs]
            retention_days = (i64::from(self.logs.retention_days))
            store_bodies = (self.logs.store_bodies)
            [signing]
            rotation_overlap = (humantime::format_duration(self.signing.rotation_overlap).to_string())
            [alerts]
            disable_after = (humantime::format_duration(self.alerts.disable_after).to_string())
            dispatcher_stuck_after = (humantime::format_duration(self.alerts.dispatcher_stuck_after).to_string())
            deliveries_delayed_after = (humantime::format_duration(self.alerts.deliveries_delayed_after).to_string())
            failing_after = (i64::from(self.alerts.failing_after))
            [delivery]
            max_workers_per_destination = (i64::try_from(self.delivery.max_workers_per_destination).unwrap_or(i64::MAX))
            breaker_failures = (i64::from(self.delivery.breaker_failures))
            breaker_cooldown = (humantime::format_duration(self.delivery.breaker_cooldown).to_string())
            [store]
            url = (mask_password(&self.store.url))
            lease = (humantime::format_duration(self.store.lease).to_string())
            [tls]
            cert = (self.tls.cert.clone())
            key = (self.tls.key.clone())
            [rules]
            require_review = (self.rules.require_review)
        };
        let mut value = value;
        value.insert(
            "public_url".into(),
            toml::Value::String(self.public_url.clone()),
        );
        let email = &self.alerts.email;
        let email = toml::toml! {
            smtp_url = (email.smtp_url_redacted())
            from = (email.from.clone())
            to = (email.to.clone())
            min_interval = (humantime::format_duration(email.min_interval).to_string())
            ca_file = (email.ca_file.clone())
        };
        if let Some(toml::Value::Table(alerts)) = value.get_mut("alerts") {
            alerts.insert("email".into(), toml::Value::Table(email));
        }
        toml::to_string(&value).unwrap_or_default()
    }
}

/// Overlays `from` onto `into`, refusing keys the defaults do not have, named in full.
fn merge(
    into: &mut toml::Table,
    from: toml::Table,
    prefix: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    for (key, value) in from {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (None, _) => {
                return Err(ConfigError::invalid(
                    origin,
                    format!("unknown key `{dotted}`"),
                ));
            }
            (Some(toml::Value::Table(section)), toml::Value::Table(inner)) => {
                merge(section, inner, &dotted, origin)?;
            }
            (Some(toml::Value::Table(_)), _) => {
                return Err(ConfigError::invalid(
                    origin,
                    format!("`{dotted}` must be a section ([{dotted}])"),
                ));
            }
            (Some(slot), value) => *slot = value,
        }
    }
    Ok(())
}

/// `TIDINGS_<SECTION>_<KEY>` (and `TIDINGS_<SECTION>_<SUBSECTION>_<KEY>`) for every key the
/// defaults have; other variables are ignored so unrelated `TIDINGS_*` settings (such as
/// `TIDINGS_MASTER_KEY`) can live beside them.
fn apply_env(merged: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    if env.is_empty() {
        return Ok(());
    }
    apply_env_to(merged, "TIDINGS", env)
}

fn apply_env_to(
    table: &mut toml::Table,
    prefix: &str,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    for (key, slot) in table.iter_mut() {
        let name = format!("{prefix}_{key}").to_uppercase();
        if let toml::Value::Table(section) = slot {
            apply_env_to(section, &name, env)?;
        } else if let Some((_, raw)) = env.iter().find(|(k, _)| *k == name) {
            *slot = env_value(&name, slot, raw)?;
        }
    }
    Ok(())
}

/// Reads an env string as the same TOML type as the default it replaces.
fn env_value(name: &str, default: &toml::Value, raw: &str) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError::invalid(name, format!("expected {what}, got {raw:?}"));
    Ok(match default {
        toml::Value::Integer(_) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| bad("a whole number"))?)
        }
        toml::Value::Boolean(_) => {
            toml::Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?)
        }
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_owned()),
    })
}

/// toml's full message, which names the key at fault ("… in `retry.base_delay`"), on one line.
fn one_line(e: &toml::de::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({e}); write it like \"500ms\", \"10s\", \"24h\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("tidings-cfg-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let result = Config::load(Some(&path), env, &Overrides::default());
        std::fs::remove_dir_all(dir).ok();
        result
    }

    #[test]
    fn embedded_defaults_match_the_spec() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mode, Mode::Production);
        assert_eq!(c.retry.max_attempts, 5);
        assert_eq!(c.retry.base_delay, Duration::from_secs(10));
        assert_eq!(c.retry.max_delay, Duration::from_secs(3600));
        assert!(c.retry.jitter);
        assert_eq!(c.limits.max_event_bytes, 1_048_576);
        assert_eq!(c.signing.rotation_overlap, Duration::from_secs(86_400));
        assert_eq!(c.alerts.disable_after, Duration::from_secs(5 * 86_400));
        assert_eq!(c.alerts.dispatcher_stuck_after, Duration::from_secs(60));
        assert_eq!(c.logs.retention_days, 30);
    }

    #[test]
    fn the_source_names_the_file_read_or_says_there_was_none() {
        assert_eq!(Config::defaults().source, NO_FILE);
        let dir = std::env::temp_dir().join(format!("tidings-cfg-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("site.toml");
        std::fs::write(&path, "mode = \"development\"\n").unwrap();
        let c = Config::load(Some(&path), std::iter::empty(), &Overrides::default()).unwrap();
        let expected = std::fs::canonicalize(&path).unwrap();
        assert_eq!(c.source, expected.display().to_string());
        assert!(c.to_toml().contains("mode = \"development\""));
        // It is not a key a file may set.
        std::fs::write(&path, "source = \"/elsewhere.toml\"\n").unwrap();
        let err = Config::load(Some(&path), std::iter::empty(), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("unknown key `source`"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_str("[retry]\nmax_atempts = 3\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains("unknown key `retry.max_atempts`"),
            "{err}"
        );
        let err = load_str("colour = 1\n", &[]).unwrap_err();
        assert!(err.to_string().contains("unknown key `colour`"), "{err}");
    }

    #[test]
    fn layers_apply_in_order() {
        let c = load_str(
            "mode = \"development\"\n[retry]\nbase_delay = \"50ms\"\nmax_attempts = 3\n",
            &[
                ("TIDINGS_RETRY_MAX_ATTEMPTS", "7"),
                ("TIDINGS_NETWORK_ALLOW", "10.0.0.0/8, 192.168.1.0/24"),
            ],
        )
        .unwrap();
        assert_eq!(c.retry.base_delay, Duration::from_millis(50));
        assert_eq!(c.retry.max_attempts, 7);
        assert_eq!(c.network.allow.len(), 2);
        assert!(c.is_development());
    }

    #[test]
    fn alert_mail_reads_nested_env_and_keeps_the_password_out_of_sight() {
        let c = load_str(
            "[alerts.email]\nfrom = \"tidings@clinic.example\"\n",
            &[
                (
                    "TIDINGS_ALERTS_EMAIL_SMTP_URL",
                    "smtp://u:urlpass@mail.example.org",
                ),
                (
                    "TIDINGS_ALERTS_EMAIL_TO",
                    "a@clinic.example, b@clinic.example",
                ),
                ("TIDINGS_ALERTS_EMAIL_PASSWORD", "s3cret-pw"),
            ],
        )
        .unwrap();
        assert_eq!(c.alerts.email.to.len(), 2);
        assert_eq!(c.alerts.failing_after, 5);
        assert_eq!(c.alerts.email.min_interval, Duration::from_secs(3600));
        assert_eq!(
            c.alerts.email.password.as_ref().map(Secret::expose),
            Some("s3cret-pw")
        );
        let shown = format!("{c:?}{}", c.to_toml());
        assert!(
            !shown.contains("s3cret-pw") && !shown.contains("urlpass"),
            "{shown}"
        );
        assert!(c.to_toml().contains("smtp://u:***@mail.example.org"));
    }

    #[test]
    fn bad_values_are_explained() {
        let err = load_str("[retry]\nbase_delay = \"soon\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
        let err = load_str("", &[("TIDINGS_RETRY_JITTER", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("TIDINGS_RETRY_JITTER"), "{err}");
        let err = load_str("[tls]\ncert = \"a.pem\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("tls.key"), "{err}");
        let err = load_str(
            "[alerts.email]\nsmtp_url = \"mail.example.org:587\"\nfrom = \"a@b.example\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("alerts.email.smtp_url"), "{err}");
        let err = load_str(
            "[alerts.email]\nsmtp_url = \"smtp://mail.example.org?tls=none\"\nfrom = \"a@b.example\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("alerts.email.smtp_url")
                && err.to_string().contains("production"),
            "{err}"
        );
        let err = load_str(
            "[alerts.email]\nsmtp_url = \"smtps://mail.example.org\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("alerts.email.from"), "{err}");
        let err = load_str("public_url = \"tidings.clinic\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("public_url"), "{err}");
        let err = load_str("[network]\nallow = [\"10.0.0.0/33\"]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
    }
}
