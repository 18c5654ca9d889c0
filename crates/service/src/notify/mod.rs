//! Mail: invitations and security notices, sent through the job queue so a slow or unreachable
//! mail server never holds up a request and a message survives a restart.
//!
//! The service composes plain-text messages; a [`Mailer`] (SMTP, configured by the operator)
//! delivers them. With no mailer configured, notices are skipped (and logged once at startup)
//! and invitations are refused, since their link could not reach anyone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use strongroom_domain::{Email, OrgId, UserId};
use strongroom_store::Tx;

use crate::Result;
use crate::ctx::Ctx;
use crate::jobs::queue::{Job, JobFailure, JobQueue};

/// Attempts before a message is given up: about 1.4 hours of retries with backoff.
pub(crate) const MAIL_ATTEMPTS: u32 = 10;

/// One plain-text message: the payload of a mail job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The body, plain text.
    pub body: String,
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server may accept it later (connection refused, 4xx).
    #[error("{0}")]
    Transient(String),
    /// The server will never accept it (5xx, a malformed address).
    #[error("{0}")]
    Permanent(String),
}

/// Delivers mail. Implemented over SMTP by the binary; tests use a real SMTP sink.
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends one message.
    fn send<'a>(
        &'a self,
        mail: &'a Mail,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<(), MailError>> + Send + 'a>>;
}

/// A security notice to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// A sign-in from a browser the user has not used before.
    NewDevice,
    /// The password was changed.
    PasswordChanged,
    /// Two-factor authentication was turned on.
    MfaEnabled,
    /// Two-factor authentication was turned off.
    MfaDisabled,
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// Too many wrong passwords: sign-in is paused for an hour.
    AccountThrottled,
}

impl Notice {
    fn subject(self) -> &'static str {
        match self {
            Notice::NewDevice => "New sign-in to your Strongroom account",
            Notice::PasswordChanged => "Your Strongroom password was changed",
            Notice::MfaEnabled => "Two-factor authentication is on for your Strongroom account",
            Notice::MfaDisabled => {
                "Two-factor authentication was turned off for your Strongroom account"
            }
            Notice::RecoveryCodeUsed => "A recovery code was used to sign in to Strongroom",
            Notice::AccountThrottled => "Many failed sign-ins to your Strongroom account",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Notice::NewDevice => {
                "Someone signed in to your account from a browser or device it has not been used from before."
            }
            Notice::PasswordChanged => {
                "The password of your account was changed, and your other sessions were signed out."
            }
            Notice::MfaEnabled => "Two-factor authentication was turned on for your account.",
            Notice::MfaDisabled => "Two-factor authentication was turned off for your account.",
            Notice::RecoveryCodeUsed => {
                "One of your recovery codes was used to sign in. It cannot be used again."
            }
            Notice::AccountThrottled => {
                "There have been many failed attempts to sign in to your account, so password sign-ins are paused for up to an hour. Known addresses can still sign in."
            }
        }
    }
}

/// Details that make a notice useful: when and from where.
pub(crate) struct NoticeContext<'a> {
    pub(crate) ip: &'a str,
    pub(crate) user_agent: Option<&'a str>,
}

fn notice_body(notice: Notice, at: &str, ctx: &NoticeContext<'_>) -> String {
    let mut body = format!("{}\n\nWhen: {at}\n", notice.what());
    if !ctx.ip.is_empty() {
        body.push_str(&format!("From address: {}\n", ctx.ip));
    }
    if let Some(ua) = ctx.user_agent.filter(|u| !u.is_empty()) {
        // A header value from the client: keep it on one line and short.
        let ua: String = ua.chars().filter(|c| !c.is_control()).take(200).collect();
        body.push_str(&format!("Browser: {ua}\n"));
    }
    body.push_str(
        "\nIf this was you, there is nothing to do. If it was not, change your password now, \
         review your sessions and your two-factor settings, and tell your organization's \
         administrator.\n",
    );
    body
}

/// Composes mail and queues it; cheap to clone.
#[derive(Clone)]
pub(crate) struct Notify {
    ctx: Arc<Ctx>,
    queue: JobQueue,
}

impl Notify {
    pub(crate) fn new(ctx: Arc<Ctx>, queue: JobQueue) -> Notify {
        Notify { ctx, queue }
    }

    /// Whether mail can be sent at all.
    pub fn mail_configured(&self) -> bool {
        self.ctx.config.mailer.is_some()
    }

    /// Queues a message in the caller's transaction.
    pub(crate) async fn queue_mail(
        &self,
        tx: &mut Tx,
        org_id: Option<&OrgId>,
        mail: Mail,
    ) -> Result<()> {
        self.queue.enqueue(tx, org_id, Job::Mail(mail)).await?;
        Ok(())
    }

    /// Queues a security notice to a user, in the caller's transaction. Without a mailer the
    /// notice is skipped: the event is in the audit trail either way.
    pub(crate) async fn queue_notice(
        &self,
        tx: &mut Tx,
        org_id: Option<&OrgId>,
        user_id: &UserId,
        notice: Notice,
        ctx: NoticeContext<'_>,
    ) -> Result<()> {
        if !self.mail_configured() {
            return Ok(());
        }
        let Some(email) = self.ctx.store.user_email(user_id).await? else {
            return Ok(());
        };
        let at = self.ctx.clock.now().rfc3339();
        self.queue_mail(
            tx,
            org_id,
            Mail {
                to: email.as_str().to_owned(),
                subject: notice.subject().to_owned(),
                body: notice_body(notice, &at, &ctx),
            },
        )
        .await
    }

    /// The invitation message with its single-use link.
    pub(crate) fn invitation_mail(
        &self,
        to: &Email,
        org_name: &str,
        role: &str,
        link: &str,
        expires: &str,
    ) -> Mail {
        Mail {
            to: to.as_str().to_owned(),
            subject: format!("You are invited to {org_name} on Strongroom"),
            body: format!(
                "You have been invited to join {org_name} on Strongroom as {role}.\n\n\
                 Accept the invitation here (the link works once, until {expires}):\n\n{link}\n\n\
                 If you did not expect this invitation, ignore this message: nothing happens \
                 unless the link is used.\n"
            ),
        }
    }

    /// The mail job's handler.
    pub(crate) async fn deliver_mail(&self, mail: &Mail) -> std::result::Result<(), JobFailure> {
        let Some(mailer) = &self.ctx.config.mailer else {
            return Err(JobFailure::Retry(
                "mail is not configured on this node ([mail] smtp_url)".into(),
            ));
        };
        mailer.send(mail).await.map_err(|e| match e {
            MailError::Transient(m) => JobFailure::Retry(m),
            MailError::Permanent(m) => JobFailure::Permanent(m),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_say_when_and_where_on_clean_lines() {
        let body = notice_body(
            Notice::NewDevice,
            "2026-11-22T10:00:00Z",
            &NoticeContext {
                ip: "203.0.113.7",
                user_agent: Some("Evil\r\nBcc: victim@example.com"),
            },
        );
        assert!(body.contains("2026-11-22T10:00:00Z"));
        assert!(body.contains("From address: 203.0.113.7"));
        assert!(body.contains("Browser: EvilBcc: victim@example.com\n"));
        assert!(!body.contains("\r"));
    }
}
