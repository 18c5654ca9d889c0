//! SMTP delivery for the service's mail (invitations, security notices), with lettre.
//!
//! `smtp_url` follows lettre's URL form: `smtps://user:pass@host:465` (implicit TLS),
//! `smtp://host:587?tls=required` (STARTTLS, refused without it), or `smtp://127.0.0.1:2525`
//! (plain: only for a relay on the same machine).

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use strongroom_service::{Mail, MailError, Mailer};

/// Sends mail through one SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where it sends, without credentials, for the log.
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for `smtp_url`, sending as `from` ("Name <address>" or an address).
    pub fn new(smtp_url: &str, from: &str) -> anyhow::Result<SmtpMailer> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .context("mail.smtp_url is not a valid SMTP URL (smtp://, smtps://)")?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("mail.from {from:?} is not an email address"))?;
        Ok(SmtpMailer {
            transport,
            from,
            server: describe(smtp_url),
        })
    }

    /// The server, without credentials.
    pub fn server(&self) -> &str {
        &self.server
    }
}

/// The URL without a user or password.
fn describe(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => "(unparsable URL)".into(),
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(
        &'a self,
        mail: &'a Mail,
    ) -> Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>> {
        Box::pin(async move {
            let to: Mailbox = mail
                .to
                .parse()
                .map_err(|e| MailError::Permanent(format!("bad recipient address: {e}")))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.subject.as_str())
                .header(ContentType::TEXT_PLAIN)
                .body(mail.body.clone())
                .map_err(|e| MailError::Permanent(format!("cannot build the message: {e}")))?;
            match self.transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(MailError::Permanent(format!(
                    "the mail server refused: {e}"
                ))),
                Err(e) => Err(MailError::Transient(format!(
                    "cannot deliver through {}: {e}",
                    self.server
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_server_name_has_no_credentials() {
        assert_eq!(
            describe("smtps://user:secret@mail.example.com:465"),
            "smtps://mail.example.com:465"
        );
        assert_eq!(describe("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let e = SmtpMailer::new("smtp://127.0.0.1:2525", "not an address").unwrap_err();
        assert!(format!("{e:#}").contains("mail.from"), "{e:#}");
    }
}
