//! Mail through a real SMTP server (the sink `scripts/mailsink.sh` starts): invitations with
//! single-use links, and security notices for a new device, a password change, MFA changes, a
//! recovery code used, and an account lockout.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

const STRONG: &str = "a long and unusual passphrase 7";

async fn invite(
    srv: &TestServer,
    key: &str,
    org: &str,
    email: &str,
    role: &str,
) -> reqwest::Response {
    srv.req(
        Method::POST,
        &format!("/api/v1/orgs/{org}/invitations"),
        Some(key),
    )
    .json(&json!({"email": email, "role": role}))
    .send()
    .await
    .unwrap()
}

async fn accept(srv: &TestServer, token: &str, password: &str) -> reqwest::Response {
    srv.client
        .post(srv.url("/api/v1/invitations/accept"))
        .json(&json!({"token": token, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Signs in with a browser that has never been here (no device cookie).
async fn sign_in_fresh(srv: &TestServer, email: &str, password: &str) -> reqwest::Response {
    srv.client
        .post(srv.url("/api/v1/auth/login"))
        .header("user-agent", "FreshBrowser/1.0")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// The `name=value` of the cookie `name` a response sets.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

both_backends! {
    async fn an_invitation_link_makes_a_member_once(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let (boot, _) = owner(&srv);
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let email = unique_email("invitee");
        let inv = expect_json(invite(&srv, key, org, &email, "editor").await, StatusCode::CREATED).await;
        assert_eq!(inv["status"], "pending");
        assert_eq!(inv["role"], "editor");
        assert!(inv.get("token").is_none() && !inv.to_string().contains("/invite#"), "the inviter never sees the link: {inv}");

        let mail = wait_for_mail(&email, "invited to acme").await;
        assert!(mail.body.contains("as editor"), "{}", mail.body);
        let token = invite_token(&mail);
        assert!(token.len() >= 40, "{token}");

        // A tampered token is unknown; a weak password is refused and leaves the link usable.
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
        expect_problem(accept(&srv, &tampered, STRONG).await, StatusCode::NOT_FOUND, "not_found").await;
        let weak = expect_problem(accept(&srv, &token, "password1234").await, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
        assert!(weak["detail"].as_str().unwrap().len() > 10);

        let done = expect_json(accept(&srv, &token, STRONG).await, StatusCode::OK).await;
        assert_eq!(done["org_id"], org);
        assert_eq!(done["created_account"], true);
        // The link works once.
        expect_problem(accept(&srv, &token, STRONG).await, StatusCode::NOT_FOUND, "not_found").await;

        let web = sign_in(&srv, &email, STRONG).await;
        let me = get_json(web.req(&srv, Method::GET, "/api/v1/me")).await;
        assert_eq!(me["role"], "editor");
        let list = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/invitations"), Some(key))).await;
        assert_eq!(list["items"][0]["status"], "accepted");
        // A member cannot be invited again.
        expect_problem(invite(&srv, key, org, &email, "viewer").await, StatusCode::CONFLICT, "conflict").await;
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit"), Some(key))).await;
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert!(actions.contains(&"member.invite") && actions.contains(&"member.join"), "{actions:?}");
    }

    async fn withdrawn_and_expired_invitations_stop_working(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let (boot, _) = owner(&srv);
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());

        let withdrawn = unique_email("withdrawn");
        let inv = expect_json(invite(&srv, key, org, &withdrawn, "viewer").await, StatusCode::CREATED).await;
        let token = invite_token(&wait_for_mail(&withdrawn, "invited").await);
        let res = srv.req(Method::DELETE, &format!("/api/v1/invitations/{}", inv["id"].as_str().unwrap()), Some(key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        expect_problem(accept(&srv, &token, STRONG).await, StatusCode::NOT_FOUND, "not_found").await;

        let late = unique_email("late");
        let inv = expect_json(invite(&srv, key, org, &late, "viewer").await, StatusCode::CREATED).await;
        let token = invite_token(&wait_for_mail(&late, "invited").await);
        let mut conn = srv.db_conn().await;
        sqlx::query("UPDATE invitations SET expires_at = 1 WHERE id = $1").bind(inv["id"].as_str().unwrap()).execute(&mut conn).await.unwrap();
        expect_problem(accept(&srv, &token, STRONG).await, StatusCode::NOT_FOUND, "not_found").await;
        let list = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/invitations"), Some(key))).await;
        let statuses: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, vec!["expired", "revoked"]);
        // Neither became an account.
        expect_problem(sign_in_fresh(&srv, &late, STRONG).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    async fn concurrent_accepts_of_one_link_make_one_member(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let (boot, _) = owner(&srv);
        let email = unique_email("race");
        expect_json(invite(&srv, &boot.api_key, &boot.org_id, &email, "viewer").await, StatusCode::CREATED).await;
        let token = invite_token(&wait_for_mail(&email, "invited").await);
        let attempts = (0..6).map(|_| accept(&srv, &token, STRONG));
        let results = futures_util::future::join_all(attempts).await;
        let ok = results.iter().filter(|r| r.status() == StatusCode::OK).count();
        assert_eq!(ok, 1, "{:?}", results.iter().map(|r| r.status()).collect::<Vec<_>>());
    }

    async fn an_existing_account_accepts_with_its_own_password(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let (boot, _) = owner(&srv);
        let email = unique_email("existing");
        // An account in another organization, with a password.
        let other = srv.bootstrap("someone@example.com", "theirs");
        add_member(&srv, &other.org_id, &email, "viewer", Some(STRONG));
        expect_json(invite(&srv, &boot.api_key, &boot.org_id, &email, "contributor").await, StatusCode::CREATED).await;
        let token = invite_token(&wait_for_mail(&email, "invited").await);
        // Someone holding the link but not the password gets nowhere, and the link survives.
        expect_problem(accept(&srv, &token, "not their password at all").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let done = expect_json(accept(&srv, &token, STRONG).await, StatusCode::OK).await;
        assert_eq!(done["created_account"], false);
        // Both organizations now; sign in to the new one by naming it.
        let res = srv.client.post(srv.url("/api/v1/auth/login")).json(&json!({"email": email, "password": STRONG, "org_id": boot.org_id})).send().await.unwrap();
        let body = expect_json(res, StatusCode::OK).await;
        assert_eq!(body["org_id"], boot.org_id.as_str());
    }

    async fn invitations_are_refused_without_mail(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let p = expect_problem(invite(&srv, &boot.api_key, &boot.org_id, "x@example.com", "viewer").await, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        assert!(p["detail"].as_str().unwrap().contains("smtp_url"), "{p}");
        let list = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/invitations", boot.org_id), Some(&boot.api_key))).await;
        assert_eq!(list["items"], json!([]));
    }

    async fn inviting_is_limited_by_role(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let (boot, _) = owner(&srv);
        let org = boot.org_id.as_str();
        let (_, editor) = srv.create_key(org, "editor");
        let (_, admin) = srv.create_key(org, "admin");
        expect_problem(invite(&srv, &editor, org, &unique_email("e"), "viewer").await, StatusCode::FORBIDDEN, "forbidden").await;
        expect_problem(invite(&srv, &admin, org, &unique_email("a"), "owner").await, StatusCode::FORBIDDEN, "forbidden").await;
        expect_problem(invite(&srv, &admin, org, "not an email", "viewer").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        expect_problem(invite(&srv, &admin, org, &unique_email("r"), "nonsense").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        expect_json(invite(&srv, &admin, org, &unique_email("ok"), "editor").await, StatusCode::CREATED).await;
    }

    async fn security_notices_reach_the_user(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let (boot, _) = owner(&srv);
        let email = unique_email("noticed");
        expect_json(invite(&srv, &boot.api_key, &boot.org_id, &email, "viewer").await, StatusCode::CREATED).await;
        let token = invite_token(&wait_for_mail(&email, "invited").await);
        expect_json(accept(&srv, &token, STRONG).await, StatusCode::OK).await;

        // The first sign-in ever is no news; it leaves a device cookie.
        let first = sign_in_fresh(&srv, &email, STRONG).await;
        let device = set_cookie(&first, "__Host-strongroom_device").expect("a device cookie");
        assert!(device.len() > 40);
        let first: Value = expect_json(first, StatusCode::OK).await;
        assert!(first["csrf_token"].is_string());
        // The same browser again: still nothing.
        let again = srv.client.post(srv.url("/api/v1/auth/login")).header("cookie", &device).json(&json!({"email": email, "password": STRONG})).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert!(set_cookie(&again, "__Host-strongroom_device").is_none());
        // A browser never seen before: a notice, with where from and which browser.
        expect_json(sign_in_fresh(&srv, &email, STRONG).await, StatusCode::OK).await;
        let notice = wait_for_mail(&email, "New sign-in").await;
        assert!(notice.body.contains("127.0.0.1") && notice.body.contains("FreshBrowser/1.0"), "{}", notice.body);
        let new_sign_ins = mail_to(&email).iter().filter(|m| m.subject.contains("New sign-in")).count();
        assert_eq!(new_sign_ins, 1);

        // A password change.
        let web = sign_in(&srv, &email, STRONG).await;
        let res = web.send(&srv, Method::POST, "/api/v1/me/password").json(&json!({"current_password": STRONG, "new_password": "another long passphrase 8"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        wait_for_mail(&email, "password was changed").await;

        // Two-factor on and off, with codes from an independent TOTP implementation.
        let web = sign_in(&srv, &email, "another long passphrase 8").await;
        let enrol = expect_json(web.send(&srv, Method::POST, "/api/v1/me/mfa/totp").send().await.unwrap(), StatusCode::OK).await;
        let code = oathtool(enrol["secret"].as_str().unwrap());
        let res = web.send(&srv, Method::POST, "/api/v1/me/mfa/totp/confirm").json(&json!({"code": code})).send().await.unwrap();
        let confirmed = expect_json(res, StatusCode::OK).await;
        wait_for_mail(&email, "Two-factor authentication is on").await;

        // A sign-in with a recovery code instead of the authenticator: a notice, from where.
        let recovery = confirmed["recovery_codes"][0].as_str().expect("recovery codes are shown once").to_owned();
        let with_code = json!({"email": email, "password": "another long passphrase 8", "recovery_code": recovery});
        let res = srv.client.post(srv.url("/api/v1/auth/login")).json(&with_code).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let used = wait_for_mail(&email, "recovery code was used").await;
        assert!(used.body.contains("cannot be used again") && used.body.contains("127.0.0.1"), "{}", used.body);
        // A code that does not work sends nothing: the same code again is refused.
        let res = srv.client.post(srv.url("/api/v1/auth/login")).json(&with_code).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

        let res = web.send(&srv, Method::POST, "/api/v1/me/mfa/totp/disable").json(&json!({"password": "another long passphrase 8"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        wait_for_mail(&email, "turned off").await;
        let recovery_notices = mail_to(&email).iter().filter(|m| m.subject.contains("recovery code was used")).count();
        assert_eq!(recovery_notices, 1, "one notice per recovery code used");
    }

    async fn a_lockout_is_told_to_the_user_once(b: Backend) {
        // Guesses from eight addresses, solving every captcha, until the account reaches its
        // hourly limit of 100 failed checks: the user gets one notice, and still signs in from
        // an address they used before.
        let (url, _) = mail_sink();
        let Some(srv) = TestServer::start_with(b, |s| {
            let mailer = strongroom::mail::SmtpMailer::new(&url, "Strongroom <noreply@strongroom.test>").unwrap();
            s.instance.service.mailer = Some(std::sync::Arc::new(mailer));
            s.instance.service.captcha_bits = 4;
            s.instance.service.failure_delay = std::time::Duration::ZERO;
        }).await else { return };
        let (boot, _) = owner(&srv);
        let email = unique_email("locked");
        add_member(&srv, &boot.org_id, &email, "viewer", Some(STRONG));
        let usual = from(&srv, 9);
        assert_eq!(attempt_solving(&srv, &usual, &email, STRONG).await, StatusCode::OK);

        let attackers: Vec<reqwest::Client> = (20..28).map(|o| from(&srv, o)).collect();
        let mut checked = 0;
        let mut refused = 0;
        for round in 0..20 {
            for (i, client) in attackers.iter().enumerate() {
                match attempt_solving(&srv, client, &email, &format!("guess {round} {i}")).await {
                    StatusCode::UNAUTHORIZED => checked += 1,
                    StatusCode::TOO_MANY_REQUESTS => refused += 1,
                    other => panic!("a guess was answered {other}"),
                }
            }
        }
        assert_eq!(checked, 100, "the account limit: 100 checked guesses an hour ({refused} refused)");
        let notice = wait_for_mail(&email, "Many failed sign-ins").await;
        assert!(notice.body.contains("paused for up to an hour"), "{}", notice.body);
        // The owner of the account still gets in from their usual address; a new one is refused.
        assert_eq!(attempt_solving(&srv, &usual, &email, STRONG).await, StatusCode::OK);
        assert_eq!(attempt_solving(&srv, &from(&srv, 40), &email, STRONG).await, StatusCode::TOO_MANY_REQUESTS);
        // One notice for the lockout, however many guesses came after it.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let lockouts = mail_to(&email).iter().filter(|m| m.subject.contains("Many failed sign-ins")).count();
        assert_eq!(lockouts, 1);
    }

    async fn undeliverable_mail_stays_queued_for_retry(b: Backend) {
        // A mail server that does not answer: the invitation is still accepted (the message is
        // in the durable queue), and the job waits for its next attempt with the reason.
        let Some(srv) = TestServer::start_with(b, |s| {
            let mailer = strongroom::mail::SmtpMailer::new("smtp://127.0.0.1:1", "noreply@strongroom.test").unwrap();
            s.instance.service.mailer = Some(std::sync::Arc::new(mailer));
        }).await else { return };
        let (boot, _) = owner(&srv);
        expect_json(invite(&srv, &boot.api_key, &boot.org_id, &unique_email("queued"), "viewer").await, StatusCode::CREATED).await;
        let mut conn = srv.db_conn().await;
        let mut row = None;
        for _ in 0..100 {
            let r: (String, i64, Option<String>) = sqlx::query_as("SELECT status, attempts, last_error FROM jobs WHERE kind = 'mail'")
                .fetch_one(&mut conn).await.unwrap();
            if r.1 >= 1 && r.0 == "queued" {
                row = Some(r);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (status, attempts, error) = row.expect("the failed attempt is recorded");
        assert_eq!((status.as_str(), attempts), ("queued", 1));
        // The reason (it names the mail server) is recorded, sealed in the row.
        let error = error.unwrap_or_default();
        assert!(error.starts_with("sr1:") && !error.contains("127.0.0.1"), "{error}");
        // The payload (address, link) is sealed in the database.
        let payload: Vec<u8> = sqlx::query_scalar("SELECT payload FROM jobs").fetch_one(&mut conn).await.unwrap();
        assert!(!contains(&payload, b"queued-") && !contains(&payload, b"/invite#"));
    }
}

/// A client whose requests come from 127.0.0.`last_octet`.
fn from(srv: &TestServer, last_octet: u8) -> reqwest::Client {
    strongroom_testkit::https_client_builder(&srv.cert)
        .local_address(std::net::IpAddr::from([127, 0, 0, last_octet]))
        .build()
        .unwrap()
}

/// One sign-in attempt from `client`; when asked for a captcha, solves it and tries again.
async fn attempt_solving(
    srv: &TestServer,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> StatusCode {
    let login = |captcha: Option<String>| {
        let mut body = json!({"email": email, "password": password});
        if let Some(c) = captcha {
            body["captcha"] = json!(c);
        }
        client
            .post(srv.url("/api/v1/auth/login"))
            .json(&body)
            .send()
    };
    let res = login(None).await.unwrap();
    if res.status() != StatusCode::PRECONDITION_REQUIRED {
        return res.status();
    }
    let problem: Value = res.json().await.unwrap();
    let challenge = problem["challenge"]
        .as_str()
        .expect("a 428 carries the challenge");
    let bits: u32 = challenge.split('.').nth(3).unwrap().parse().unwrap();
    let solution = format!(
        "{challenge}:{}",
        strongroom_crypto::pow::solve(challenge, bits)
    );
    login(Some(solution)).await.unwrap().status()
}

/// The current TOTP code from `oathtool`, an implementation independent of ours.
fn oathtool(secret: &str) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool is installed by scripts/test.sh");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
