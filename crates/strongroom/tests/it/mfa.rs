//! Two-factor authentication over HTTPS, with codes from an independent implementation
//! (`oathtool`, Debian package): enrolment, confirmation, login with a code or a recovery code,
//! replay refusal, separate limits for codes, disabling, and the organization's require_mfa.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

/// The TOTP code `oathtool` computes for `secret` at `unix` seconds.
fn oathtool(secret: &str, unix: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", &format!("--now=@{unix}"), secret])
        .output()
        .expect("oathtool is needed for these tests (apt-get install oathtool; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Web {
    cookie: String,
    csrf: String,
}

async fn login_body(srv: &TestServer, body: Value) -> reqwest::Response {
    srv.client
        .post(srv.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn sign_in(srv: &TestServer, body: Value) -> Web {
    let res = login_body(srv, body).await;
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let v = expect_json(res, StatusCode::OK).await;
    Web {
        cookie: cookie.unwrap(),
        csrf: v["csrf_token"].as_str().unwrap().to_owned(),
    }
}

impl Web {
    fn send(&self, srv: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        srv.client
            .request(method, srv.url(path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
    }
}

/// Enrols and confirms TOTP for the signed-in user; returns (secret, recovery codes, step used).
async fn enable(srv: &TestServer, web: &Web) -> (String, Vec<String>) {
    let e = expect_json(
        web.send(srv, Method::POST, "/api/v1/me/mfa/totp")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let secret = e["secret"].as_str().unwrap().to_owned();
    let code = oathtool(&secret, now());
    let done = expect_json(
        web.send(srv, Method::POST, "/api/v1/me/mfa/totp/confirm")
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let codes = done["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

fn owner(srv: &TestServer) -> (Value, String) {
    let v = srv.bootstrap_owner_json();
    let pw = v["password"].as_str().unwrap().to_owned();
    (v, pw)
}

both_backends! {
    async fn totp_enrolment_login_replay_and_recovery(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let creds = json!({"email": "owner@example.com", "password": pw});
        let web = sign_in(&srv, creds.clone()).await;
        let e = expect_json(web.send(&srv, Method::POST, "/api/v1/me/mfa/totp").send().await.unwrap(), StatusCode::OK).await;
        let secret = e["secret"].as_str().unwrap().to_owned();
        assert_eq!(secret.len(), 32, "160-bit secret in base32");
        let uri = e["otpauth_uri"].as_str().unwrap();
        assert!(uri.starts_with("otpauth://totp/Strongroom:owner%40example.com?"), "{uri}");
        assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=Strongroom") && uri.contains("digits=6") && uri.contains("period=30"), "{uri}");
        assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
        // Not active until confirmed: signing in still needs only the password.
        assert_eq!(login_body(&srv, creds.clone()).await.status(), StatusCode::OK);
        let res = web.send(&srv, Method::POST, "/api/v1/me/mfa/totp/confirm").json(&json!({"code": "000000"})).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 422, "a wrong code does not activate");
        let t = now();
        let code = oathtool(&secret, t);
        let done = expect_json(web.send(&srv, Method::POST, "/api/v1/me/mfa/totp/confirm").json(&json!({"code": code})).send().await.unwrap(), StatusCode::OK).await;
        let recovery: Vec<String> = done["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        assert_eq!(recovery.len(), 10);
        // The secret is stored encrypted, the recovery codes hashed.
        let mut conn = srv.db_conn().await;
        use sqlx::Row;
        let enc: Vec<u8> = sqlx::query("SELECT secret_enc FROM user_totp").fetch_one(&mut conn).await.unwrap().try_get("secret_enc").unwrap();
        assert!(!contains(&enc, secret.as_bytes()));
        // Now the password alone is not enough.
        expect_problem(login_body(&srv, creds.clone()).await, StatusCode::UNAUTHORIZED, "mfa_required").await;
        // The confirming code was used: replaying it fails; the next step's code works once.
        let mut with_code = creds.clone();
        with_code["totp"] = json!(code);
        expect_problem(login_body(&srv, with_code).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let next = oathtool(&secret, t + 30);
        let mut with_next = creds.clone();
        with_next["totp"] = json!(next);
        assert_eq!(login_body(&srv, with_next.clone()).await.status(), StatusCode::OK);
        expect_problem(login_body(&srv, with_next).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        // A recovery code works once, in any spelling.
        let mut with_recovery = creds.clone();
        with_recovery["recovery_code"] = json!(recovery[3].to_lowercase().replace('-', " "));
        assert_eq!(login_body(&srv, with_recovery.clone()).await.status(), StatusCode::OK);
        expect_problem(login_body(&srv, with_recovery).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        // Admins see who has two-factor authentication.
        let key = srv.create_key(boot["org_id"].as_str().unwrap(), "admin").1;
        let members = expect_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/members", boot["org_id"].as_str().unwrap()), Some(&key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(members["items"][0]["email"], "owner@example.com");
        assert_eq!(members["items"][0]["mfa_enabled"], true);
        // Disabling needs the password.
        let res = web.send(&srv, Method::POST, "/api/v1/me/mfa/totp/disable").json(&json!({"password": "not it"})).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let res = web.send(&srv, Method::POST, "/api/v1/me/mfa/totp/disable").json(&json!({"password": pw})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(login_body(&srv, creds).await.status(), StatusCode::OK);
        let log = expect_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", boot["org_id"].as_str().unwrap()), Some(&key)).send().await.unwrap(), StatusCode::OK).await;
        let actions: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        for a in ["mfa.enrol_start", "mfa.enable", "mfa.disable"] {
            assert!(actions.contains(&a), "{a} missing: {actions:?}");
        }
    }

    async fn wrong_codes_have_their_own_small_limit(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (_, pw) = owner(&srv);
        let creds = json!({"email": "owner@example.com", "password": pw});
        let web = sign_in(&srv, creds.clone()).await;
        let (secret, _) = enable(&srv, &web).await;
        for _ in 0..5 {
            let mut wrong = creds.clone();
            wrong["totp"] = json!("123456");
            let res = login_body(&srv, wrong).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        // Even the right code is refused now: six digits do not get unlimited tries.
        let mut right = creds.clone();
        right["totp"] = json!(oathtool(&secret, now() + 30));
        let res = login_body(&srv, right).await;
        assert!(res.headers().contains_key("retry-after"));
        expect_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }

    async fn required_mfa_confines_members_to_enrolment(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let org = boot["org_id"].as_str().unwrap().to_owned();
        let owner_key = boot["api_key"].as_str().unwrap().to_owned();
        let admin_key = srv.create_key(&org, "admin").1;
        let patch = |key: &str, body: Value| srv.req(Method::PATCH, &format!("/api/v1/orgs/{org}"), Some(key)).json(&body).send();
        expect_problem(patch(&admin_key, json!({"require_mfa": true})).await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;
        let other = srv.bootstrap("rival@example.com", "rival");
        let res = srv.req(Method::PATCH, &format!("/api/v1/orgs/{}", other.org_id), Some(&owner_key)).json(&json!({"require_mfa": true})).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let v = expect_json(patch(&owner_key, json!({"require_mfa": true})).await.unwrap(), StatusCode::OK).await;
        assert_eq!(v["require_mfa"], true);
        // The owner has no second factor yet: their own key is confined too (the API like the UI).
        let spaces = format!("/api/v1/orgs/{org}/spaces");
        expect_problem(srv.req(Method::GET, &spaces, Some(&owner_key)).send().await.unwrap(), StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
        assert_eq!(srv.req(Method::GET, "/api/v1/me", Some(&owner_key)).send().await.unwrap().status(), StatusCode::OK);
        // A service key (no person behind it) is not affected.
        assert_eq!(srv.req(Method::GET, &spaces, Some(&admin_key)).send().await.unwrap().status(), StatusCode::OK);
        // Signing in works, but only enrolment is open until it is done.
        let web = sign_in(&srv, json!({"email": "owner@example.com", "password": pw})).await;
        expect_problem(web.send(&srv, Method::GET, &spaces).send().await.unwrap(), StatusCode::FORBIDDEN, "mfa_enrolment_required").await;
        enable(&srv, &web).await;
        assert_eq!(web.send(&srv, Method::GET, &spaces).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(srv.req(Method::GET, &spaces, Some(&owner_key)).send().await.unwrap().status(), StatusCode::OK);
    }
}
