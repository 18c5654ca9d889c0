//! One refusal test per class of privilege escalation found by the audit of the first release:
//! space-limited credentials acting on the organization, taking over another member's key,
//! unthrottled password checks behind a session, invitations outliving their inviter, and names
//! that display as something they are not. Each test drives the attack end to end over HTTPS and
//! checks that nothing changed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

async fn post(srv: &TestServer, key: &str, path: &str, body: Value) -> reqwest::Response {
    srv.req(Method::POST, path, Some(key))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A key made by `owner` through the API, limited to `space`, with `role`.
async fn limited_key(srv: &TestServer, owner: &str, org: &str, role: &str, space: &str) -> String {
    let res = post(
        srv,
        owner,
        &format!("/api/v1/orgs/{org}/api-keys"),
        json!({"name": "limited", "role": role, "spaces": [space]}),
    )
    .await;
    expect_json(res, StatusCode::CREATED).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

both_backends! {
    async fn a_space_limited_key_never_acts_on_the_organization(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(owner, org, "site").await;
        let admin = limited_key(&srv, owner, org, "admin", &space).await;
        let owner_limited = limited_key(&srv, owner, org, "owner", &space).await;
        let member = add_member(&srv, org, &unique_email("member"), "viewer", None);
        // The attack: invite an outside admin, who then reads every space.
        let outsider = unique_email("outsider");
        let res = post(&srv, &admin, &format!("/api/v1/orgs/{org}/invitations"), json!({"email": outsider, "role": "admin"})).await;
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let attempts = [
            srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(&admin)),
            srv.req(Method::PATCH, &format!("/api/v1/orgs/{org}/members/{member}"), Some(&admin)).json(&json!({"role": "admin"})),
            srv.req(Method::DELETE, &format!("/api/v1/orgs/{org}/members/{member}"), Some(&admin)),
            srv.req(Method::POST, &format!("/api/v1/orgs/{org}/roles"), Some(&admin)).json(&json!({"name": "sneaky", "permissions": ["asset:read"]})),
            srv.req(Method::GET, &format!("/api/v1/orgs/{org}/invitations"), Some(&admin)),
            srv.req(Method::POST, &format!("/api/v1/spaces/{space}/grants"), Some(&admin)).json(&json!({"user_id": member, "role": "editor"})),
            srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit"), Some(&admin)),
            // An owner key limited to one space cannot lock its owner out with require_mfa.
            srv.req(Method::PATCH, &format!("/api/v1/orgs/{org}"), Some(&owner_limited)).json(&json!({"require_mfa": true})),
        ];
        for req in attempts {
            expect_problem(req.send().await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;
        }
        // Nothing changed: no invitation, no mail, the member's role, no role, MFA not required.
        let invitations = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/invitations"), Some(owner))).await;
        assert_eq!(invitations["items"], json!([]));
        assert!(mail_to(&outsider).is_empty());
        let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(owner))).await;
        let m = members["items"].as_array().unwrap().iter().find(|m| m["user_id"] == member.as_str()).unwrap().clone();
        assert_eq!(m["role"], "viewer", "{m}");
        let roles = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/roles"), Some(owner))).await;
        assert!(!roles.to_string().contains("sneaky"));
        let me = get_json(srv.req(Method::GET, "/api/v1/me", Some(owner))).await;
        assert_eq!(me["role"], "owner");
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/spaces"), Some(owner)).json(&json!({"name": "still works"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "the owner was not locked out");
        // Within its space, the limited admin still works.
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=ok.txt"), Some(&admin)).body("ok").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    async fn nobody_but_its_owner_rotates_a_key(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let admin_email = unique_email("admin");
        add_member(&srv, org, &admin_email, "admin", Some(PASSWORD));
        let admin = sign_in(&srv, &admin_email, PASSWORD).await;
        let keys = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/api-keys"), Some(owner))).await;
        let owner_key_id = keys["items"].as_array().unwrap().iter().find(|k| k["role"] == "owner").unwrap()["id"].as_str().unwrap().to_owned();
        // The attack: rotate the owner's key from an admin's session (re-authenticated, even).
        let res = admin.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": PASSWORD})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = admin.send(&srv, Method::POST, &format!("/api/v1/api-keys/{owner_key_id}/rotate")).send().await.unwrap();
        let problem = expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        assert!(problem.to_string().contains("not your own"), "{problem}");
        assert!(problem.get("api_key").is_none());
        // A service key with apikey:manage is no owner either.
        let (_, service_admin) = srv.create_key(org, "admin");
        let res = srv.req(Method::POST, &format!("/api/v1/api-keys/{owner_key_id}/rotate"), Some(&service_admin)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Nothing rotated: the owner's secret works, no rotation was recorded.
        let me = get_json(srv.req(Method::GET, "/api/v1/me", Some(owner))).await;
        assert_eq!(me["role"], "owner");
        let keys = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/api-keys"), Some(owner))).await;
        let k = keys["items"].as_array().unwrap().iter().find(|k| k["id"] == owner_key_id.as_str()).unwrap().clone();
        assert!(k["previous_valid_until"].is_null(), "{k}");
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit"), Some(owner))).await;
        assert!(!audit.to_string().contains("apikey.rotate"));
        // The admin may still revoke it (taking power away is always allowed)...
        let (victim_id, victim) = {
            let v = expect_json(srv.req(Method::POST, &format!("/api/v1/orgs/{org}/api-keys"), Some(owner)).json(&json!({"name": "v", "role": "viewer"})).send().await.unwrap(), StatusCode::CREATED).await;
            (v["id"].as_str().unwrap().to_owned(), v["api_key"].as_str().unwrap().to_owned())
        };
        let res = admin.send(&srv, Method::DELETE, &format!("/api/v1/api-keys/{victim_id}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(status(srv.req(Method::GET, "/api/v1/me", Some(&victim))).await, StatusCode::UNAUTHORIZED);
        // ...and the owner rotates their own.
        let res = srv.req(Method::POST, &format!("/api/v1/api-keys/{owner_key_id}/rotate"), Some(owner)).json(&json!({"grace_secs": 0})).send().await.unwrap();
        let rotated = expect_json(res, StatusCode::OK).await;
        let new = rotated["api_key"].as_str().unwrap();
        assert_eq!(get_json(srv.req(Method::GET, "/api/v1/me", Some(new))).await["role"], "owner");
    }

    async fn rotating_an_admin_level_key_from_a_session_needs_a_recent_sign_in(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, password) = owner(&srv);
        let org = boot.org_id.as_str();
        let web = sign_in(&srv, "owner@example.com", &password).await;
        // Made while the sign-in is fresh.
        let made = expect_json(web.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/api-keys")).json(&json!({"name": "ops", "role": "admin"})).send().await.unwrap(), StatusCode::CREATED).await;
        let id = made["id"].as_str().unwrap();
        // Age the re-authentication past its window, in the database.
        let mut db = srv.db_conn().await;
        sqlx::query("UPDATE sessions SET reauth_at = 0").execute(&mut db).await.unwrap();
        let res = web.send(&srv, Method::POST, &format!("/api/v1/api-keys/{id}/rotate")).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "reauthentication_required").await;
        let res = web.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": password})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = web.send(&srv, Method::POST, &format!("/api/v1/api-keys/{id}/rotate")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    async fn password_checks_behind_a_session_share_the_sign_in_limits(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();
        for (path, field) in [("/api/v1/me/password", "current_password"), ("/api/v1/me/mfa/totp/disable", "password"), ("/api/v1/auth/reauth", "password")] {
            let email = unique_email("victim");
            add_member(&srv, org, &email, "viewer", Some(PASSWORD));
            let web = sign_in(&srv, &email, PASSWORD).await;
            // The attack: a stolen session guesses the password 40 times.
            let mut statuses = Vec::new();
            for i in 0..40 {
                let mut body = json!({field: format!("guess number {i} of many")});
                if path == "/api/v1/me/password" {
                    body["new_password"] = json!("an entirely new passphrase 99");
                }
                let res = web.send(&srv, Method::POST, path).json(&body).send().await.unwrap();
                statuses.push(res.status().as_u16());
                if res.status() != StatusCode::UNAUTHORIZED {
                    break;
                }
            }
            // A captcha is demanded after a few failures, as on the login form.
            assert!(statuses.len() <= 5, "{path}: {statuses:?}");
            assert_eq!(statuses.last(), Some(&428), "{path}: {statuses:?}");
            // The counters are the sign-in's: the login form now wants a captcha too.
            let res = login(&srv, &email, PASSWORD).await;
            expect_problem(res, StatusCode::PRECONDITION_REQUIRED, "captcha_required").await;
        }
    }

    async fn an_invitation_does_not_outlive_its_inviter(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(owner, org, "secret").await;
        let asset = srv.upload(owner, &space, "plan.txt", b"the plan".to_vec()).await["id"].as_str().unwrap().to_owned();
        // An admin invites an accomplice as admin, then is removed.
        let admin_email = unique_email("admin");
        let admin = add_member(&srv, org, &admin_email, "admin", Some(PASSWORD));
        let web = sign_in(&srv, &admin_email, PASSWORD).await;
        let res = web.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": PASSWORD})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let accomplice = unique_email("accomplice");
        let res = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/invitations")).json(&json!({"email": accomplice, "role": "admin"})).send().await.unwrap();
        let inv = expect_json(res, StatusCode::CREATED).await;
        let token = invite_token(&wait_for_mail(&accomplice, "invit").await);
        let res = srv.req(Method::DELETE, &format!("/api/v1/orgs/{org}/members/{admin}"), Some(owner)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        // The invitation went with them...
        let list = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/invitations"), Some(owner))).await;
        let row = list["items"].as_array().unwrap().iter().find(|i| i["id"] == inv["id"]).unwrap().clone();
        assert_eq!(row["status"], "revoked", "{row}");
        // ...so the link is dead, and no account reads the space.
        let res = srv.client.post(srv.url("/api/v1/invitations/accept")).json(&json!({"token": token, "password": "the accomplice's passphrase 1"})).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = login(&srv, &accomplice, "the accomplice's passphrase 1").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(download(&srv, owner, &asset).await, b"the plan");
    }

    async fn an_invitation_is_checked_again_when_accepted(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let admin_email = unique_email("admin");
        let admin = add_member(&srv, org, &admin_email, "admin", Some(PASSWORD));
        let web = sign_in(&srv, &admin_email, PASSWORD).await;
        let res = web.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": PASSWORD})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let invited = unique_email("invited");
        let res = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/invitations")).json(&json!({"email": invited, "role": "admin"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let token = invite_token(&wait_for_mail(&invited, "invit").await);
        // The inviter is demoted before the link is used: they could no longer hand out admin.
        let res = srv.req(Method::PATCH, &format!("/api/v1/orgs/{org}/members/{admin}"), Some(owner)).json(&json!({"role": "viewer"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = srv.client.post(srv.url("/api/v1/invitations/accept")).json(&json!({"token": token, "password": "the invited passphrase 12"})).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(owner))).await;
        assert!(!members.to_string().contains(&invited), "{members}");
        // An invitation whose inviter still may grant the role works as before.
        let ok = unique_email("welcome");
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/invitations"), Some(owner)).json(&json!({"email": ok, "role": "viewer"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let token = invite_token(&wait_for_mail(&ok, "invit").await);
        let res = srv.client.post(srv.url("/api/v1/invitations/accept")).json(&json!({"token": token, "password": "the welcome passphrase 12"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    async fn names_with_bidi_or_invisible_characters_are_refused(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(owner, org, "site").await;
        let spoof = "invoice\u{202E}txt.exe";
        let encoded: String = percent_encode(spoof);
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename={encoded}"), Some(owner)).body("MZ").send().await.unwrap();
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        for (path, body) in [
            (format!("/api/v1/orgs/{org}/spaces"), json!({"name": "site\u{200B}"})),
            (format!("/api/v1/orgs/{org}/api-keys"), json!({"name": "key\u{2066}x", "role": "viewer"})),
            (format!("/api/v1/orgs/{org}/roles"), json!({"name": "role\u{FEFF}", "permissions": ["asset:read"]})),
        ] {
            let res = post(&srv, owner, &path, body).await;
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        }
        // Nothing was stored.
        let assets = get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/assets"), Some(owner))).await;
        assert_eq!(assets["items"], json!([]));
        let spaces = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/spaces"), Some(owner))).await;
        assert_eq!(spaces["items"].as_array().unwrap().len(), 1);
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
