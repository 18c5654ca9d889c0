//! Roles and permissions over HTTPS: custom roles, member role changes and removal, the last
//! owner, space grants (collaborators), and the refusals: nobody hands out more than they hold,
//! and another organization's ids answer 404.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

/// Adds a member with [`PASSWORD`] through the real binary; returns their user id.
fn add_member(srv: &TestServer, org_id: &str, email: &str, role: &str) -> String {
    crate::support::add_member(srv, org_id, email, role, Some(PASSWORD))
}

async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    req.send().await.unwrap()
}

fn member_path(org: &str, user: &str) -> String {
    format!("/api/v1/orgs/{org}/members/{user}")
}

async fn create_role(srv: &TestServer, key: &str, org: &str, name: &str, perms: &[&str]) -> Value {
    let res = send(
        srv.req(
            Method::POST,
            &format!("/api/v1/orgs/{org}/roles"),
            Some(key),
        )
        .json(&json!({"name": name, "permissions": perms})),
    )
    .await;
    expect_json(res, StatusCode::CREATED).await
}

both_backends! {
    async fn custom_roles_grant_exactly_their_permissions(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(key, org, "media").await;
        let kept = srv.upload(key, &space, "kept.txt", b"keep me".to_vec()).await;

        let role = create_role(&srv, key, org, "uploader", &["space:read", "asset:read", "asset:create"]).await;
        assert_eq!(role["builtin"], false);
        assert_eq!(role["permissions"], json!(["space:read", "asset:read", "asset:create"]));
        let role_id = role["id"].as_str().unwrap().to_owned();
        let roles = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/roles"), Some(key))).await;
        let names: Vec<&str> = roles["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"uploader") && names.contains(&"collaborator"), "{names:?}");

        let bob = add_member(&srv, org, "bob@example.com", "viewer");
        let res = send(srv.req(Method::PATCH, &member_path(org, &bob), Some(key)).json(&json!({"role": "uploader"}))).await;
        expect_json(res, StatusCode::OK).await;
        let web = sign_in(&srv, "bob@example.com", PASSWORD).await;
        let me = get_json(web.req(&srv, Method::GET, "/api/v1/me")).await;
        assert_eq!(me["role"], "uploader");
        let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(key))).await;
        assert!(members["items"].as_array().unwrap().iter().any(|m| m["email"] == "bob@example.com" && m["role"] == "uploader"));

        // What the role grants works; what it does not is refused.
        let up = web.send(&srv, Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=b.txt")).body("from bob").send().await.unwrap();
        let up = expect_json(up, StatusCode::CREATED).await;
        let del = web.send(&srv, Method::DELETE, &format!("/api/v1/assets/{}", kept["id"].as_str().unwrap())).send().await.unwrap();
        expect_problem(del, StatusCode::FORBIDDEN, "forbidden").await;
        let mk = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/spaces")).json(&json!({"name": "nope"})).send().await.unwrap();
        expect_problem(mk, StatusCode::FORBIDDEN, "forbidden").await;

        // Editing the role reaches the live session at its next request.
        let res = send(srv.req(Method::PATCH, &format!("/api/v1/orgs/{org}/roles/{role_id}"), Some(key)).json(&json!({"permissions": ["space:read", "asset:read", "asset:create", "asset:delete"]}))).await;
        expect_json(res, StatusCode::OK).await;
        let del = web.send(&srv, Method::DELETE, &format!("/api/v1/assets/{}", up["id"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(del.status(), StatusCode::NO_CONTENT);

        // A role still held cannot be deleted; once nobody holds it, it can.
        let res = send(srv.req(Method::DELETE, &format!("/api/v1/orgs/{org}/roles/{role_id}"), Some(key))).await;
        expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        send(srv.req(Method::PATCH, &member_path(org, &bob), Some(key)).json(&json!({"role": "viewer"}))).await;
        let res = send(srv.req(Method::DELETE, &format!("/api/v1/orgs/{org}/roles/{role_id}"), Some(key))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);

        // Bad definitions are refused with a reason, and change nothing.
        let bad = [
            json!({"name": "typo", "permissions": ["asset:reed"]}),
            json!({"name": "admin", "permissions": ["asset:read"]}),
            json!({"name": "rol_x", "permissions": ["asset:read"]}),
            json!({"name": "empty", "permissions": []}),
        ];
        for body in bad {
            let res = send(srv.req(Method::POST, &format!("/api/v1/orgs/{org}/roles"), Some(key)).json(&body)).await;
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        }
        create_role(&srv, key, org, "dup", &["asset:read"]).await;
        let res = send(srv.req(Method::POST, &format!("/api/v1/orgs/{org}/roles"), Some(key)).json(&json!({"name": "dup", "permissions": ["asset:read"]}))).await;
        expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        let res = send(srv.req(Method::PATCH, &member_path(org, &bob), Some(key)).json(&json!({"role": "superuser"}))).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    }

    async fn nobody_hands_out_more_than_they_hold(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let org = boot.org_id.as_str();
        let carol = add_member(&srv, org, "carol@example.com", "admin");
        let dave = add_member(&srv, org, "dave@example.com", "viewer");
        let admin = sign_in(&srv, "carol@example.com", PASSWORD).await;

        // An admin may define and hand out roles within their own permissions...
        let res = admin.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/roles")).json(&json!({"name": "reader", "permissions": ["space:read", "asset:read"]})).send().await.unwrap();
        expect_json(res, StatusCode::CREATED).await;
        let res = admin.send(&srv, Method::PATCH, &member_path(org, &dave)).json(&json!({"role": "editor"})).send().await.unwrap();
        expect_json(res, StatusCode::OK).await;
        // ...but not beyond them: org:manage is the owner's alone.
        let res = admin.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/roles")).json(&json!({"name": "boss", "permissions": ["org:manage"]})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let res = admin.send(&srv, Method::PATCH, &member_path(org, &dave)).json(&json!({"role": "owner"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let res = admin.send(&srv, Method::PATCH, &member_path(org, &carol)).json(&json!({"role": "owner"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // The owner is above an admin: neither demoted nor removed by one.
        let res = admin.send(&srv, Method::PATCH, &member_path(org, &boot.user_id)).json(&json!({"role": "viewer"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let res = admin.send(&srv, Method::DELETE, &member_path(org, &boot.user_id)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // An owner-only custom role cannot be edited by an admin either.
        let boss = create_role(&srv, &boot.api_key, org, "boss", &["org:manage", "asset:read"]).await;
        let res = admin.send(&srv, Method::PATCH, &format!("/api/v1/orgs/{org}/roles/{}", boss["id"].as_str().unwrap())).json(&json!({"permissions": ["asset:read"]})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // A viewer manages nobody.
        let viewer_id = add_member(&srv, org, "erin@example.com", "viewer");
        let viewer = sign_in(&srv, "erin@example.com", PASSWORD).await;
        let res = viewer.send(&srv, Method::PATCH, &member_path(org, &dave)).json(&json!({"role": "viewer"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let res = viewer.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/roles")).json(&json!({"name": "x", "permissions": ["asset:read"]})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let res = viewer.send(&srv, Method::DELETE, &member_path(org, &viewer_id)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Nothing changed for the refused requests.
        let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(&boot.api_key))).await;
        let role_of = |email: &str| members["items"].as_array().unwrap().iter().find(|m| m["email"] == email).unwrap()["role"].clone();
        assert_eq!(role_of("owner@example.com"), "owner");
        assert_eq!(role_of("carol@example.com"), "admin");
        assert_eq!(role_of("dave@example.com"), "editor");
    }

    async fn the_last_owner_cannot_be_demoted_or_removed(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let res = send(srv.req(Method::PATCH, &member_path(org, &boot.user_id), Some(key)).json(&json!({"role": "admin"}))).await;
        let p = expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        assert!(p["detail"].as_str().unwrap().contains("at least one owner"), "{p}");
        let res = send(srv.req(Method::DELETE, &member_path(org, &boot.user_id), Some(key))).await;
        expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        let out = srv.run(&["admin", "create-user", "--email", "owner@example.com", "--org", org, "--role", "viewer"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("at least one owner"));

        // With a second owner, the first may step down; then the second is the last.
        let second = add_member(&srv, org, "second@example.com", "owner");
        let res = send(srv.req(Method::PATCH, &member_path(org, &boot.user_id), Some(key)).json(&json!({"role": "admin"}))).await;
        expect_json(res, StatusCode::OK).await;
        let web = sign_in(&srv, "second@example.com", PASSWORD).await;
        let res = web.send(&srv, Method::DELETE, &member_path(org, &second)).send().await.unwrap();
        expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        let (_, service_key) = srv.create_key(org, "owner");
        let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(&service_key))).await;
        let owners = members["items"].as_array().unwrap().iter().filter(|m| m["role"] == "owner").count();
        assert_eq!(owners, 1);
    }

    async fn concurrent_demotions_keep_an_owner(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let org = boot.org_id.as_str();
        let second = add_member(&srv, org, "second@example.com", "owner");
        let (_, service_key) = srv.create_key(org, "owner");
        let owners = || async {
            let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(&service_key))).await;
            let mut ids: Vec<String> = members["items"].as_array().unwrap().iter()
                .filter(|m| m["role"] == "owner")
                .map(|m| m["user_id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        let mut both = vec![boot.user_id.clone(), second.clone()];
        both.sort();
        // Two callers, each on a connection of its own that is already open, so neither request
        // waits for a handshake the other does not.
        let callers: Vec<reqwest::Client> = (0..2)
            .map(|_| strongroom_testkit::https_client_builder(&srv.cert).http1_only().build().unwrap())
            .collect();
        for c in &callers {
            assert_eq!(c.get(srv.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
        }
        for round in 0..5 {
            assert_eq!(owners().await, both, "round {round} starts with two owners");
            // Both owners are demoted at the same moment: a barrier releases the two requests
            // together, on connections already open; exactly one may win.
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
            let tasks: Vec<_> = [&boot.user_id, &second].into_iter().zip(&callers).map(|(user, client)| {
                let req = client
                    .patch(srv.url(&member_path(org, user)))
                    .bearer_auth(&service_key)
                    .json(&json!({"role": "admin"}));
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    req.send().await.unwrap().status()
                })
            }).collect();
            let mut statuses = Vec::new();
            for t in tasks {
                statuses.push(t.await.unwrap());
            }
            let mut sorted = statuses.clone();
            sorted.sort();
            assert_eq!(sorted, vec![StatusCode::OK, StatusCode::CONFLICT], "round {round}: {statuses:?}");
            let left = owners().await;
            assert_eq!(left.len(), 1, "round {round}: owners left {left:?}");
            // The one whose demotion was refused is the one still owner.
            let refused = if statuses[0] == StatusCode::CONFLICT { &boot.user_id } else { &second };
            assert_eq!(&left[0], refused, "round {round}");
            // Both owners again for the next round.
            let demoted = if refused == &boot.user_id { &second } else { &boot.user_id };
            let res = send(srv.req(Method::PATCH, &member_path(org, demoted), Some(&service_key)).json(&json!({"role": "owner"}))).await;
            expect_json(res, StatusCode::OK).await;
        }
    }

    async fn removing_a_member_ends_their_sessions_and_keys(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let carol = add_member(&srv, org, "carol@example.com", "admin");
        let web = sign_in(&srv, "carol@example.com", PASSWORD).await;
        let carol_key = web_key(&srv, &web, org).await;
        assert_eq!(status(srv.req(Method::GET, "/api/v1/me", Some(&carol_key))).await, StatusCode::OK);

        let res = send(srv.req(Method::DELETE, &member_path(org, &carol), Some(key))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(status(web.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(srv.req(Method::GET, "/api/v1/me", Some(&carol_key))).await, StatusCode::UNAUTHORIZED);
        let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(key))).await;
        assert!(!members["items"].as_array().unwrap().iter().any(|m| m["email"] == "carol@example.com"));
        // Gone is gone: a second removal is "not found"; so is a malformed id.
        let res = send(srv.req(Method::DELETE, &member_path(org, &carol), Some(key))).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = send(srv.req(Method::DELETE, &member_path(org, "usr_nope"), Some(key))).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit"), Some(key))).await;
        assert!(audit["items"].as_array().unwrap().iter().any(|e| e["action"] == "member.remove" && e["target"] == carol.as_str()));
    }

    async fn collaborators_see_only_the_spaces_granted_to_them(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let granted = srv.create_space(key, org, "granted").await;
        let other = srv.create_space(key, org, "other").await;
        let a = srv.upload(key, &granted, "a.txt", b"in granted".to_vec()).await;
        let z = srv.upload(key, &other, "z.txt", b"in other".to_vec()).await;
        let dave = add_member(&srv, org, "dave@example.com", "collaborator");
        let web = sign_in(&srv, "dave@example.com", PASSWORD).await;
        let asset = |v: &Value| format!("/api/v1/assets/{}", v["id"].as_str().unwrap());

        // Before any grant: no space, no asset.
        let spaces = get_json(web.req(&srv, Method::GET, &format!("/api/v1/orgs/{org}/spaces"))).await;
        assert_eq!(spaces["items"], json!([]));
        assert_eq!(status(web.req(&srv, Method::GET, &asset(&a))).await, StatusCode::NOT_FOUND);

        let res = send(srv.req(Method::POST, &format!("/api/v1/spaces/{granted}/grants"), Some(key)).json(&json!({"user_id": dave, "role": "contributor"}))).await;
        let g = expect_json(res, StatusCode::CREATED).await;
        assert_eq!(g["role"], "contributor");
        assert_eq!(g["email"], "dave@example.com");
        let grants = get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{granted}/grants"), Some(key))).await;
        assert_eq!(grants["items"].as_array().unwrap().len(), 1);

        // Now: the granted space and what is in it, nothing else.
        let spaces = get_json(web.req(&srv, Method::GET, &format!("/api/v1/orgs/{org}/spaces"))).await;
        let ids: Vec<&str> = spaces["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![granted.as_str()]);
        let got = web.req(&srv, Method::GET, &format!("{}/content", asset(&a))).send().await.unwrap();
        assert_eq!(got.bytes().await.unwrap().as_ref(), b"in granted");
        let up = web.send(&srv, Method::POST, &format!("/api/v1/spaces/{granted}/assets?filename=d.txt")).body("dave's").send().await.unwrap();
        expect_json(up, StatusCode::CREATED).await;
        assert_eq!(status(web.req(&srv, Method::GET, &asset(&z))).await, StatusCode::NOT_FOUND);
        let up = web.send(&srv, Method::POST, &format!("/api/v1/spaces/{other}/assets?filename=d.txt")).body("no").send().await.unwrap();
        expect_problem(up, StatusCode::NOT_FOUND, "not_found").await;
        // A contributor grant does not delete, and grants nothing organization-wide.
        let del = web.send(&srv, Method::DELETE, &asset(&a)).send().await.unwrap();
        expect_problem(del, StatusCode::FORBIDDEN, "forbidden").await;
        let mk = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/spaces")).json(&json!({"name": "mine"})).send().await.unwrap();
        expect_problem(mk, StatusCode::FORBIDDEN, "forbidden").await;

        // Taking the grant back hides the space again at once.
        let res = send(srv.req(Method::DELETE, &format!("/api/v1/spaces/{granted}/grants/{dave}"), Some(key))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(status(web.req(&srv, Method::GET, &asset(&a))).await, StatusCode::NOT_FOUND);
        let res = send(srv.req(Method::DELETE, &format!("/api/v1/spaces/{granted}/grants/{dave}"), Some(key))).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }

    async fn a_space_grant_adds_to_an_organization_role_in_that_space_only(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let s1 = srv.create_space(key, org, "one").await;
        let s2 = srv.create_space(key, org, "two").await;
        let a1 = srv.upload(key, &s1, "1.txt", b"1".to_vec()).await;
        let a2 = srv.upload(key, &s2, "2.txt", b"2".to_vec()).await;
        let erin = add_member(&srv, org, "erin@example.com", "viewer");
        let res = send(srv.req(Method::POST, &format!("/api/v1/spaces/{s1}/grants"), Some(key)).json(&json!({"user_id": erin, "role": "editor"}))).await;
        expect_json(res, StatusCode::CREATED).await;
        let web = sign_in(&srv, "erin@example.com", PASSWORD).await;
        let del2 = web.send(&srv, Method::DELETE, &format!("/api/v1/assets/{}", a2["id"].as_str().unwrap())).send().await.unwrap();
        expect_problem(del2, StatusCode::FORBIDDEN, "forbidden").await;
        let del1 = web.send(&srv, Method::DELETE, &format!("/api/v1/assets/{}", a1["id"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(del1.status(), StatusCode::NO_CONTENT);

        // A granter cannot hand out more in a space than they hold there.
        let frank = add_member(&srv, org, "frank@example.com", "admin");
        let _ = frank;
        let admin = sign_in(&srv, "frank@example.com", PASSWORD).await;
        let res = admin.send(&srv, Method::POST, &format!("/api/v1/spaces/{s2}/grants")).json(&json!({"user_id": erin, "role": "owner"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Only members can be granted: an unknown user is "not found".
        let res = send(srv.req(Method::POST, &format!("/api/v1/spaces/{s2}/grants"), Some(key)).json(&json!({"user_id": "usr_0190f0c5d2f47c0a8e1f2a3b4c5d6e7f", "role": "viewer"}))).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }

    async fn another_organizations_ids_answer_not_found(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (acme, _) = owner(&srv);
        let other = srv.bootstrap("mallory@example.com", "other");
        let (org, key) = (acme.org_id.as_str(), acme.api_key.as_str());
        let space = srv.create_space(key, org, "s").await;
        let bob = add_member(&srv, org, "bob@example.com", "viewer");
        let role = create_role(&srv, key, org, "reader", &["asset:read"]).await;
        let role_id = role["id"].as_str().unwrap();
        let m = Some(other.api_key.as_str());
        let cases: Vec<(Method, String, Option<Value>)> = vec![
            (Method::PATCH, member_path(org, &bob), Some(json!({"role": "viewer"}))),
            (Method::DELETE, member_path(org, &bob), None),
            (Method::PATCH, member_path(&other.org_id, &bob), Some(json!({"role": "viewer"}))),
            (Method::DELETE, member_path(&other.org_id, &bob), None),
            (Method::GET, format!("/api/v1/orgs/{org}/roles"), None),
            (Method::POST, format!("/api/v1/orgs/{org}/roles"), Some(json!({"name": "x", "permissions": ["asset:read"]}))),
            (Method::PATCH, format!("/api/v1/orgs/{org}/roles/{role_id}"), Some(json!({"permissions": ["asset:read"]}))),
            (Method::DELETE, format!("/api/v1/orgs/{org}/roles/{role_id}"), None),
            (Method::PATCH, format!("/api/v1/orgs/{}/roles/{role_id}", other.org_id), Some(json!({"permissions": ["asset:read"]}))),
            (Method::DELETE, format!("/api/v1/orgs/{}/roles/{role_id}", other.org_id), None),
            (Method::POST, format!("/api/v1/spaces/{space}/grants"), Some(json!({"user_id": bob, "role": "viewer"}))),
            (Method::GET, format!("/api/v1/spaces/{space}/grants"), None),
            (Method::DELETE, format!("/api/v1/spaces/{space}/grants/{bob}"), None),
            (Method::POST, format!("/api/v1/orgs/{org}/invitations"), Some(json!({"email": "x@example.com", "role": "viewer"}))),
            (Method::GET, format!("/api/v1/orgs/{org}/invitations"), None),
        ];
        for (method, path, body) in cases {
            let mut req = srv.req(method.clone(), &path, m);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        }
        // Bob is untouched, the role still exists.
        let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/members"), Some(key))).await;
        assert!(members["items"].as_array().unwrap().iter().any(|m| m["email"] == "bob@example.com" && m["role"] == "viewer"));
        let roles = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/roles"), Some(key))).await;
        assert!(roles["items"].as_array().unwrap().iter().any(|r| r["name"] == "reader"));
    }
}

/// An API key made by a signed-in member for themselves (a viewer key: no re-authentication).
async fn web_key(srv: &TestServer, web: &Browser, org: &str) -> String {
    let res = web
        .send(srv, Method::POST, &format!("/api/v1/orgs/{org}/api-keys"))
        .json(&json!({"name": "mine", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::CREATED).await["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}
