//! Alert mail over SMTP (lettre, over the same rustls and ring as the HTTP transport): where
//! `alerts.email.smtp_url` points and how securely, and the `Mailer` that sends through it.
//!
//! `smtp://` starts in the clear and upgrades with STARTTLS: required in production unless
//! the server is on loopback (a local relay), where it is used when offered. `smtps://` is
//! TLS from the first byte. `?tls=none` sends in the clear, which production refuses for any
//! host but loopback: the mail names rules and the credentials would cross the network.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport as _};

use super::mail::{Mail, MailError, Mailer};
use crate::config::EmailConfig;

/// How long one SMTP conversation may take before the mail counts as not sent.
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS, and refuse to send without it.
    StartTlsRequired,
    /// STARTTLS when the server offers it (loopback, or development).
    StartTlsIfOffered,
    /// TLS from the start (`smtps://`).
    Implicit,
    /// No TLS (`?tls=none`; loopback or development only).
    Plain,
}

/// A checked `smtp_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    password: Option<String>,
}

impl SmtpTarget {
    /// Reads `smtp_url`; the message says what is wrong with it (the caller names the key).
    pub fn parse(smtp_url: &str, development: bool) -> Result<Self, String> {
        let url = url::Url::parse(smtp_url).map_err(|e| {
            format!("cannot read {smtp_url:?} as a URL ({e}); write it like smtp://mail.example.org:587 or smtps://mail.example.org:465")
        })?;
        let implicit = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "the scheme must be smtp:// (STARTTLS) or smtps:// (implicit TLS), not {other}://"
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let loopback = is_loopback(&host);
        let mut plain = false;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "none") => plain = true,
                _ => {
                    return Err(format!(
                        "unknown option {key}={value} (the only one is tls=none, to send without TLS to a local relay)"
                    ));
                }
            }
        }
        if url.path() != "" && url.path() != "/" {
            return Err("the URL must not have a path".into());
        }
        let security = match (implicit, plain) {
            (true, true) => return Err("smtps:// is TLS; it cannot also be tls=none".into()),
            (true, false) => Security::Implicit,
            (false, true) if !development && !loopback => {
                return Err(format!(
                    "mail to {host} without TLS (tls=none) is refused in production: the credentials and the mail would cross the network readable; use STARTTLS (smtp://) or smtps://, or a relay on this machine"
                ));
            }
            (false, true) => Security::Plain,
            (false, false) if development || loopback => Security::StartTlsIfOffered,
            (false, false) => Security::StartTlsRequired,
        };
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or_else(|| "the user or password is not valid percent-encoding".to_owned())
        };
        let user = (!url.username().is_empty())
            .then(|| decode(url.username()))
            .transpose()?;
        let password = url.password().map(decode).transpose()?;
        Ok(Self {
            host,
            port: url.port().unwrap_or(if implicit { 465 } else { 587 }),
            security,
            user,
            password,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Reads an address as `alerts.email.from`/`to` and the account page take it.
pub fn mailbox(address: &str) -> Result<Mailbox, String> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{address:?} is not an email address ({e})"))
}

/// Sends through one SMTP server, a new connection per mail (alerts are rare).
pub struct SmtpMailer {
    transport: SmtpTransport,
    from: Mailbox,
}

impl SmtpMailer {
    /// The mailer `[alerts.email]` describes (already validated by `Config`); an unreadable
    /// `ca_file` is an error naming it.
    pub fn new(config: &EmailConfig, development: bool) -> Result<Self, String> {
        let target = SmtpTarget::parse(&config.smtp_url, development)
            .map_err(|e| format!("alerts.email.smtp_url: {e}"))?;
        let from = mailbox(&config.from).map_err(|e| format!("alerts.email.from: {e}"))?;
        let mut tls = TlsParameters::builder(target.host.clone());
        if !config.ca_file.is_empty() {
            let pem = std::fs::read(&config.ca_file).map_err(|e| {
                format!("alerts.email.ca_file: cannot read {}: {e}", config.ca_file)
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                format!(
                    "alerts.email.ca_file: {} holds no PEM certificate: {e}",
                    config.ca_file
                )
            })?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| format!("alerts.email: TLS settings: {e}"))?;
        let mode = match target.security {
            Security::StartTlsRequired => Tls::Required(tls),
            Security::StartTlsIfOffered => Tls::Opportunistic(tls),
            Security::Implicit => Tls::Wrapper(tls),
            Security::Plain => Tls::None,
        };
        let mut builder = SmtpTransport::builder_dangerous(target.host.clone())
            .port(target.port)
            .tls(mode)
            .timeout(Some(TIMEOUT));
        let password = config
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .or(target.password.clone());
        if let Some(user) = &target.user {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let mut message = lettre::Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone());
        for to in &mail.to {
            message = message.to(mailbox(to).map_err(MailError)?);
        }
        let message = message
            .body(mail.body.clone())
            .map_err(|e| MailError(format!("the mail could not be built: {e}")))?;
        self.transport
            .send(&message)
            .map(|_| ())
            .map_err(|e| MailError(format!("the SMTP server did not take the mail: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_ports_and_tls() {
        let t = SmtpTarget::parse("smtp://mail.example.org", false).unwrap();
        assert_eq!((t.port, t.security), (587, Security::StartTlsRequired));
        let t = SmtpTarget::parse("smtps://mail.example.org", false).unwrap();
        assert_eq!((t.port, t.security), (465, Security::Implicit));
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525", false).unwrap();
        assert_eq!((t.port, t.security), (2525, Security::StartTlsIfOffered));
        let t = SmtpTarget::parse("smtp://mail.example.org:25", true).unwrap();
        assert_eq!(t.security, Security::StartTlsIfOffered);
        let t = SmtpTarget::parse("smtp://localhost:25?tls=none", false).unwrap();
        assert_eq!(t.security, Security::Plain);
    }

    #[test]
    fn credentials_come_from_the_url_decoded() {
        let t = SmtpTarget::parse(
            "smtps://alerts%40clinic.example:p%40ss@mail.example.org",
            false,
        )
        .unwrap();
        assert_eq!(t.user.as_deref(), Some("alerts@clinic.example"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("mail.example.org", "as a URL"),
            ("http://mail.example.org", "smtp://"),
            ("smtp://mail.example.org?tls=none", "refused in production"),
            ("smtps://127.0.0.1?tls=none", "cannot also be"),
            ("smtp://mail.example.org?starttls=no", "unknown option"),
            ("smtp://mail.example.org/inbox", "path"),
        ] {
            let err = SmtpTarget::parse(url, false).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert!(mailbox("Clinic alerts <alerts@clinic.example>").is_ok());
        assert!(mailbox("not an address").is_err());
    }
}
