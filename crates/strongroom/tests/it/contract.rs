//! The OpenAPI document as a contract, on both backends: what it promises of a request, the server
//! does (whole numbers written as `60.0`, the limits it states), and what the server refuses, the
//! document says it may. The full check is `scripts/schemathesis.sh`, which fuzzes every
//! operation against the document.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

async fn doc(srv: &TestServer) -> Value {
    get_json(srv.req(Method::GET, "/api/openapi.json", None)).await
}

async fn post(srv: &TestServer, key: &str, path: &str, body: Value) -> reqwest::Response {
    srv.req(Method::POST, path, Some(key))
        .json(&body)
        .send()
        .await
        .unwrap()
}

both_backends! {
    async fn seconds_written_with_a_zero_fraction_are_whole_seconds(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let asset = srv.upload(&boot.api_key, &space, "a.txt", b"abc".to_vec()).await;
        let links = format!("/api/v1/assets/{}/links", asset["id"].as_str().unwrap());
        // JSON Schema's "integer" (what the document says) includes 60.0: the server takes it.
        let link = expect_json(post(&srv, &boot.api_key, &links, json!({"expires_in": 60.0})).await, StatusCode::CREATED).await;
        let res = srv.client.get(link["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        for bad in [json!(60.5), json!(-1), json!(-1.0), json!("60"), json!(1e30)] {
            let res = post(&srv, &boot.api_key, &links, json!({"expires_in": bad})).await;
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        }
        let keys = format!("/api/v1/orgs/{}/api-keys", boot.org_id);
        let key = expect_json(post(&srv, &boot.api_key, &keys, json!({"name": "ci", "role": "viewer", "expires_in": 3600.0})).await, StatusCode::CREATED).await;
        assert!(key["expires_at"].is_string(), "{key}");
        let rotate = format!("/api/v1/api-keys/{}/rotate", key["id"].as_str().unwrap());
        let rotated = expect_json(post(&srv, &boot.api_key, &rotate, json!({"grace_secs": 0.0})).await, StatusCode::OK).await;
        assert!(rotated["api_key"].is_string());
    }

    async fn a_body_that_is_not_a_json_object_is_refused(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let spaces = format!("/api/v1/orgs/{}/spaces", boot.org_id);
        // serde would read a struct from an array of its members' values; the document's body is
        // an object, and so is what the server takes.
        for body in [json!(["site"]), json!("site"), json!(null)] {
            let res = post(&srv, &boot.api_key, &spaces, body).await;
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        }
        let list = get_json(srv.req(Method::GET, &spaces, Some(&boot.api_key))).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
        let (key_id, _) = srv.create_key(&boot.org_id, "viewer");
        let rotate = format!("/api/v1/api-keys/{key_id}/rotate");
        let res = post(&srv, &boot.api_key, &rotate, json!([null])).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        let res = srv.req(Method::POST, &rotate, Some(&boot.api_key)).body("[").send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    async fn an_api_key_expiry_the_document_forbids_is_refused(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let keys = format!("/api/v1/orgs/{}/api-keys", boot.org_id);
        let schema = doc(&srv).await["components"]["schemas"]["NewApiKey"]["properties"]["expires_in"].clone();
        let max = schema["maximum"].as_u64().expect("expires_in has a maximum");
        let res = post(&srv, &boot.api_key, &keys, json!({"name": "max", "role": "viewer", "expires_in": max})).await;
        let key = expect_json(res, StatusCode::CREATED).await;
        // A century from now, as a date (beyond it, the date could not be written).
        assert!(key["expires_at"].as_str().unwrap().starts_with('2'), "{key}");
        let res = post(&srv, &boot.api_key, &keys, json!({"name": "over", "role": "viewer", "expires_in": max + 1})).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        let res = post(&srv, &boot.api_key, &keys, json!({"name": "huge", "role": "viewer", "expires_in": u64::MAX})).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    }

    async fn the_documented_link_lifetime_is_the_configured_one(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let asset = srv.upload(&boot.api_key, &space, "a.txt", b"abc".to_vec()).await;
        let links = format!("/api/v1/assets/{}/links", asset["id"].as_str().unwrap());
        let max = doc(&srv).await["components"]["schemas"]["NewLink"]["properties"]["expires_in"]["maximum"]
            .as_u64()
            .expect("expires_in has a maximum");
        expect_json(post(&srv, &boot.api_key, &links, json!({"expires_in": max})).await, StatusCode::CREATED).await;
        let res = post(&srv, &boot.api_key, &links, json!({"expires_in": max + 1})).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    }

    async fn refusals_are_documented_for_their_route(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let doc = doc(&srv).await;
        let spaces = format!("/api/v1/orgs/{}/spaces", boot.org_id);
        // Each refusal a client can cause on one route, and the route's documented responses.
        let no_type = srv.req(Method::POST, &spaces, Some(&boot.api_key)).body("{\"name\":\"x\"}").send().await.unwrap();
        let bad_json = srv.req(Method::POST, &spaces, Some(&boot.api_key)).header("content-type", "application/json").body("{").send().await.unwrap();
        let unknown = post(&srv, &boot.api_key, &spaces, json!({"name": "x", "colour": "red"})).await;
        let blank = post(&srv, &boot.api_key, &spaces, json!({"name": "   "})).await;
        let too_big = post(&srv, &boot.api_key, &spaces, json!({"name": "x".repeat(70_000)})).await;
        let nobody = post(&srv, "srk_not-a-key", &spaces, json!({"name": "x"})).await;
        let responses = &doc["paths"]["/api/v1/orgs/{org_id}/spaces"]["post"]["responses"];
        for (res, status) in [(no_type, 415), (bad_json, 400), (unknown, 422), (blank, 422), (too_big, 413), (nobody, 401)] {
            assert_eq!(res.status().as_u16(), status);
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            assert!(responses.get(status.to_string()).is_some(), "{status} is not documented: {responses}");
        }
        // The schema says so too: no unknown members.
        assert_eq!(doc["components"]["schemas"]["NewSpace"]["additionalProperties"], false);
    }
}
