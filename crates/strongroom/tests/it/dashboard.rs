//! The dashboard's server side: the shell and its files under a strict Content-Security-Policy,
//! conditional requests, no path outside the embedded set; and the API routes the dashboard
//! added (what the caller may do, their organizations, the audit chain's verification, the
//! session timeouts of the security policy). The page itself is driven in a real browser by
//! `scripts/browser-tests.sh` (browser/dashboard.test.mjs).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

both_backends! {
    async fn the_shell_and_its_files_are_served_under_a_strict_policy(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        for path in ["/", "/invite"] {
            let res = srv.req(Method::GET, path, None).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
            let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
            for part in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"] {
                assert!(csp.contains(part), "{part} missing from {csp}");
            }
            for never in ["unsafe-inline", "unsafe-eval", "http:", "https:", "*"] {
                assert!(!csp.contains(never), "{never} in {csp}");
            }
            let html = res.text().await.unwrap();
            assert!(html.contains(r#"<script type="module" src="/ui/js/app.js"></script>"#));
            assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");
        }
        // Every file the shell and the modules name is served with its type, revalidated by ETag.
        for (path, ty) in [("/ui/app.css", "text/css"), ("/ui/js/app.js", "text/javascript"), ("/ui/js/pow.js", "text/javascript"), ("/ui/favicon.svg", "image/svg+xml")] {
            let res = srv.req(Method::GET, path, None).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert!(res.headers()["content-type"].to_str().unwrap().starts_with(ty), "{path}");
            assert_eq!(res.headers()["cache-control"], "no-cache");
            let etag = res.headers()["etag"].to_str().unwrap().to_owned();
            let again = srv.req(Method::GET, path, None).header("if-none-match", &etag).send().await.unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert!(again.bytes().await.unwrap().is_empty());
        }
        // Nothing outside the embedded set: not a source file, not a traversal, not the shell twice.
        for path in ["/ui/js/nope.js", "/ui/../Cargo.toml", "/ui/%2e%2e/Cargo.toml", "/ui/index.html", "/ui/", "/ui/js/"] {
            let res = srv.req(Method::GET, path, None).send().await.unwrap();
            expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        }
    }

    async fn me_says_what_the_caller_may_do_and_where(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{}/spaces", boot.org_id), Some(&boot.api_key)).json(&json!({"name": "granted"})).send().await.unwrap();
        let space = expect_json(res, StatusCode::CREATED).await;
        let space_id = space["id"].as_str().unwrap();
        // A second organization for the same person.
        let other = srv.bootstrap("owner@example.com", "second org");

        let web = sign_in(&srv, "owner@example.com", &pw).await;
        let mine = expect_json(web.req(&srv, Method::GET, "/api/v1/me/orgs").send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(mine["email"], "owner@example.com");
        assert_eq!(mine["mfa_enabled"], false);
        let orgs = mine["orgs"].as_array().unwrap();
        assert_eq!(orgs.len(), 2, "{mine}");
        let current: Vec<&str> = orgs.iter().filter(|o| o["current"] == true).map(|o| o["org_id"].as_str().unwrap()).collect();
        assert_eq!(current, [boot.org_id.as_str()]);
        assert!(orgs.iter().any(|o| o["org_id"] == other.org_id.as_str() && o["name"] == "second org" && o["role"] == "owner"));
        // An API key is not a person: it has no organizations to switch between.
        expect_problem(srv.req(Method::GET, "/api/v1/me/orgs", Some(&boot.api_key)).send().await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;

        let me = expect_json(web.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap(), StatusCode::OK).await;
        assert!(me["permissions"].as_array().unwrap().iter().any(|p| p == "org:manage"), "{me}");

        // A viewer: reads, never writes.
        add_member(&srv, &boot.org_id, "viewer@example.com", "viewer", Some(PASSWORD));
        let viewer = sign_in(&srv, "viewer@example.com", PASSWORD).await;
        let me = expect_json(viewer.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap(), StatusCode::OK).await;
        let perms: Vec<&str> = me["permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert!(perms.contains(&"asset:read") && !perms.contains(&"asset:create") && !perms.contains(&"asset:delete"), "{perms:?}");

        // A collaborator: nothing organization-wide, a contributor in the one granted space.
        let collaborator = add_member(&srv, &boot.org_id, "collab@example.com", "collaborator", Some(PASSWORD));
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space_id}/grants"), Some(&boot.api_key))
            .json(&json!({"user_id": collaborator, "role": "contributor"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let collab = sign_in(&srv, "collab@example.com", PASSWORD).await;
        let me = expect_json(collab.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap(), StatusCode::OK).await;
        assert!(!me["permissions"].as_array().unwrap().iter().any(|p| p == "asset:create"), "{me}");
        let here: Vec<&str> = me["space_permissions"][space_id].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert!(here.contains(&"asset:create") && here.contains(&"asset:read"), "{me}");
        assert_eq!(me["space_permissions"].as_object().unwrap().len(), 1);
        // What /me says is what the server does: the grant opens uploads in that space only.
        let up = collab.send(&srv, Method::POST, &format!("/api/v1/spaces/{space_id}/assets?filename=a.txt")).header("content-type", "text/plain").body("hello").send().await.unwrap();
        assert_eq!(up.status(), StatusCode::CREATED);
    }

    async fn the_audit_chain_is_verified_on_request_and_a_tampered_event_is_named(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let path = format!("/api/v1/orgs/{}/audit/verify", boot.org_id);
        for name in ["a", "b", "c"] {
            let res = srv.req(Method::POST, &format!("/api/v1/orgs/{}/spaces", boot.org_id), Some(&boot.api_key)).json(&json!({"name": name})).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let ok = get_json(srv.req(Method::GET, &path, Some(&boot.api_key))).await;
        assert_eq!(ok["intact"], true, "{ok}");
        assert!(ok["events"].as_i64().unwrap() >= 4, "{ok}");
        assert_eq!(ok["org_id"], boot.org_id.as_str());

        let mut conn = srv.db_conn().await;
        sqlx::query("UPDATE audit_events SET target = $1 WHERE org_id = $2 AND seq = $3")
            .bind("spc_forged".to_owned()).bind(boot.org_id.clone()).bind(3_i64).execute(&mut conn).await.unwrap();
        let broken = get_json(srv.req(Method::GET, &path, Some(&boot.api_key))).await;
        assert_eq!(broken["intact"], false, "{broken}");
        assert_eq!(broken["first_broken_seq"], 3, "{broken}");
        assert_eq!(broken["problem_kind"], "chain", "{broken}");

        // Another organization's chain is not found, and a viewer may not read the trail.
        let other = srv.bootstrap("other@example.com", "other");
        let res = srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit/verify", other.org_id), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        add_member(&srv, &boot.org_id, "viewer@example.com", "viewer", Some(PASSWORD));
        let viewer = sign_in(&srv, "viewer@example.com", PASSWORD).await;
        expect_problem(viewer.req(&srv, Method::GET, &path).send().await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;
    }

    async fn the_security_policy_sets_session_timeouts_that_live_sessions_obey(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let org = format!("/api/v1/orgs/{}", boot.org_id);
        let web = sign_in(&srv, "owner@example.com", &pw).await;
        let before = get_json(srv.req(Method::GET, &org, Some(&boot.api_key))).await;
        assert_eq!((before["session_idle_secs"].as_i64(), before["session_absolute_secs"].as_i64()), (Some(1800), Some(43200)));

        // Out of range or not a number: refused, and nothing changes.
        for body in [json!({"session_idle_secs": 60}), json!({"session_absolute_secs": 99_999_999}), json!({"session_idle_secs": "600"}), json!({"require_mfa": true, "session_idle_secs": 10})] {
            let res = web.send(&srv, Method::PATCH, &org).json(&body).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        // An empty change answers the policy as it is.
        let res = web.send(&srv, Method::PATCH, &org).json(&json!({})).send().await.unwrap();
        assert_eq!(expect_json(res, StatusCode::OK).await["session_idle_secs"], 1800);
        let same = get_json(srv.req(Method::GET, &org, Some(&boot.api_key))).await;
        assert_eq!(same["session_idle_secs"], 1800);
        assert_eq!(same["require_mfa"], false, "a refused change applied part of itself");

        let res = web.send(&srv, Method::PATCH, &org).json(&json!({"session_idle_secs": 300.0})).send().await.unwrap();
        let set = expect_json(res, StatusCode::OK).await;
        assert_eq!((set["session_idle_secs"].as_i64(), set["session_absolute_secs"].as_i64(), set["require_mfa"].as_bool()), (Some(300), Some(43200), Some(false)));
        // A session last used six minutes ago is now past the five-minute idle limit.
        let mut conn = srv.db_conn().await;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now_ms - 6 * 60_000).bind(web.login["session_id"].as_str().unwrap().to_owned()).execute(&mut conn).await.unwrap();
        assert_eq!(status(web.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED);

        // The change is in the audit trail, with what it set.
        let trail = get_json(srv.req(Method::GET, &format!("{org}/audit?limit=1000"), Some(&boot.api_key))).await;
        let change = trail["items"].as_array().unwrap().iter().rev().find(|e| e["action"] == "org.policy_change").expect("an org.policy_change event");
        assert_eq!(change["detail"]["session_idle_secs"], 300, "{change}");
        // An admin may not change the policy (org:manage is the owner's).
        add_member(&srv, &boot.org_id, "admin@example.com", "admin", Some(PASSWORD));
        let admin = sign_in(&srv, "admin@example.com", PASSWORD).await;
        let res = admin.send(&srv, Method::PATCH, &org).json(&json!({"session_absolute_secs": 900})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    }
}
