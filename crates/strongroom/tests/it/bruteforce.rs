//! Brute-force protection: escalation to a proof-of-work captcha, per-address and per-account
//! limits, and the guarantee that matters: thousands of guesses from several addresses get in
//! zero times while the real user still signs in.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

fn from(srv: &TestServer, last_octet: u8) -> reqwest::Client {
    strongroom_testkit::https_client_builder(&srv.cert)
        .local_address(IpAddr::from([127, 0, 0, last_octet]))
        .build()
        .unwrap()
}

async fn attempt(
    srv: &TestServer,
    client: &reqwest::Client,
    email: &str,
    password: &str,
    captcha: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"email": email, "password": password});
    if let Some(c) = captcha {
        body["captcha"] = json!(c);
    }
    let res = client
        .post(srv.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        assert!(
            res.headers().contains_key("retry-after"),
            "429 carries Retry-After"
        );
    }
    (status, res.json().await.unwrap_or(Value::Null))
}

fn solve(problem: &Value) -> String {
    let challenge = problem["challenge"]
        .as_str()
        .expect("a 428 carries the challenge");
    let bits: u32 = challenge.split('.').nth(3).unwrap().parse().unwrap();
    format!(
        "{challenge}:{}",
        strongroom_crypto::pow::solve(challenge, bits)
    )
}

/// Tries once; when asked for a captcha, solves it and tries again (a determined attacker).
async fn attempt_solving(
    srv: &TestServer,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> StatusCode {
    let (status, body) = attempt(srv, client, email, password, None).await;
    if status != StatusCode::PRECONDITION_REQUIRED {
        return status;
    }
    attempt(srv, client, email, password, Some(&solve(&body)))
        .await
        .0
}

fn owner(srv: &TestServer) -> (String, String) {
    let v = srv.bootstrap_owner_json();
    (
        v["org_id"].as_str().unwrap().into(),
        v["password"].as_str().unwrap().into(),
    )
}

async fn fast(b: Backend, bits: u32) -> Option<TestServer> {
    TestServer::start_with(b, |s| {
        s.instance.service.captcha_bits = bits;
        s.instance.service.failure_delay = Duration::ZERO;
    })
    .await
}

/// A sign-in attempt that arrived through a proxy which says it was reached from `client_ip`.
async fn attempt_via(srv: &TestServer, client_ip: &str, password: &str) -> StatusCode {
    let res = srv
        .client
        .post(srv.url("/api/v1/auth/login"))
        .header("x-forwarded-for", client_ip)
        .json(&json!({"email": "owner@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    res.status()
}

both_backends! {
    async fn behind_a_trusted_proxy_each_client_address_has_its_own_limits(b: Backend) {
        let Some(srv) = TestServer::start_with_config(b, "trusted_proxies = [\"127.0.0.0/8\"]\n").await else { return };
        let v = srv.bootstrap_owner_json();
        let (org, key, pw) = (v["org_id"].as_str().unwrap(), v["api_key"].as_str().unwrap(), v["password"].as_str().unwrap());
        for _ in 0..3 {
            assert_eq!(attempt_via(&srv, "198.51.100.7", "wrong guess").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(attempt_via(&srv, "198.51.100.7", pw).await, StatusCode::PRECONDITION_REQUIRED, "that client must solve a captcha");
        // Another client of the same proxy is not held back by the first one's failures.
        assert_eq!(attempt_via(&srv, "198.51.100.8", pw).await, StatusCode::OK);
        // A client cannot pick its own address: what it writes is appended to by the proxy.
        assert_eq!(attempt_via(&srv, "203.0.113.1, 198.51.100.7", pw).await, StatusCode::PRECONDITION_REQUIRED);
        // The trail records the client's address, not the proxy's.
        let audit = get_json(srv.req(reqwest::Method::GET, &format!("/api/v1/orgs/{org}/audit?limit=100"), Some(key))).await;
        let ips: Vec<&str> = audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "auth.login").map(|e| e["ip"].as_str().unwrap_or("")).collect();
        assert!(ips.contains(&"198.51.100.8"), "{audit}");
    }

    async fn without_trusted_proxies_a_forwarded_header_changes_nothing(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (_, pw) = owner(&srv);
        for i in 0..3 {
            assert_eq!(attempt_via(&srv, &format!("198.51.100.{i}"), "wrong guess").await, StatusCode::UNAUTHORIZED);
        }
        // Each attempt claimed another address; all came from one: that one must solve a captcha.
        assert_eq!(attempt_via(&srv, "198.51.100.200", &pw).await, StatusCode::PRECONDITION_REQUIRED);
    }

    async fn failures_escalate_to_a_single_use_captcha(b: Backend) {
        let Some(srv) = fast(b, 12).await else { return };
        let (_, pw) = owner(&srv);
        let here = from(&srv, 1);
        for _ in 0..3 {
            assert_eq!(attempt(&srv, &here, "owner@example.com", "wrong guess", None).await.0, StatusCode::UNAUTHORIZED);
        }
        // Now even the right password needs a solved challenge first.
        let (status, problem) = attempt(&srv, &here, "owner@example.com", &pw, None).await;
        assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
        assert_eq!(problem["code"], "captcha_required");
        assert!(problem["challenge"].as_str().unwrap().starts_with("v1."));
        assert_eq!(problem["challenge"].as_str().unwrap().split('.').nth(3), Some("12"), "the configured difficulty");
        let solution = solve(&problem);
        assert_eq!(attempt(&srv, &here, "owner@example.com", "wrong again", Some(&solution)).await.0, StatusCode::UNAUTHORIZED);
        // A solution works once.
        assert_eq!(attempt(&srv, &here, "owner@example.com", &pw, Some(&solution)).await.0, StatusCode::PRECONDITION_REQUIRED);
        // Forged: a valid proof of work over a challenge whose signed expiry was extended.
        let (_, fresh) = attempt(&srv, &here, "owner@example.com", &pw, None).await;
        let challenge = fresh["challenge"].as_str().unwrap();
        let mut parts: Vec<String> = challenge.split('.').map(str::to_owned).collect();
        parts[1].push('0');
        let forged = parts.join(".");
        let forged = format!("{forged}:{}", strongroom_crypto::pow::solve(&forged, 12));
        assert_eq!(attempt(&srv, &here, "owner@example.com", &pw, Some(&forged)).await.0, StatusCode::PRECONDITION_REQUIRED);
        // An easier challenge made up by the client is refused too.
        let easy = "v1.99999999999999.abc.1.xyz";
        assert_eq!(attempt(&srv, &here, "owner@example.com", &pw, Some(&format!("{easy}:0"))).await.0, StatusCode::PRECONDITION_REQUIRED);
        // Solved honestly: the real password gets in.
        assert_eq!(attempt(&srv, &here, "owner@example.com", &pw, Some(&solve(&fresh))).await.0, StatusCode::OK);
        // The same person at another address faces no captcha (the account is far from its limit).
        assert_eq!(attempt(&srv, &from(&srv, 2), "owner@example.com", &pw, None).await.0, StatusCode::OK);
    }

    async fn thousands_of_guesses_never_get_in_and_the_owner_still_does(b: Backend) {
        let Some(srv) = fast(b, 4).await else { return };
        let (org, pw) = owner(&srv);
        // The owner has signed in before from their usual address.
        let usual = from(&srv, 9);
        assert_eq!(attempt(&srv, &usual, "owner@example.com", &pw, None).await.0, StatusCode::OK);
        let mut tally = std::collections::BTreeMap::<u16, usize>::new();
        let attackers: Vec<reqwest::Client> = (20..28).map(|o| from(&srv, o)).collect();
        for round in 0..250 {
            for client in &attackers {
                let guess = format!("guess-{round}-{:p}", client);
                *tally.entry(attempt_solving(&srv, client, "owner@example.com", &guess).await.as_u16()).or_default() += 1;
            }
        }
        let total: usize = tally.values().sum();
        assert_eq!(total, 2000);
        assert_eq!(tally.get(&200), None, "a guess got in: {tally:?}");
        let checked = tally.get(&401).copied().unwrap_or(0);
        assert!(checked <= 100, "at most 100 password checks per account per hour, got {checked}: {tally:?}");
        assert!(tally.get(&429).copied().unwrap_or(0) > 1500, "{tally:?}");
        // The owner still gets in from their usual address (solving the captcha the attack triggered)...
        assert_eq!(attempt_solving(&srv, &usual, "owner@example.com", &pw).await, StatusCode::OK);
        // ...while an address never used by the owner is refused until the hour passes.
        assert_eq!(attempt_solving(&srv, &from(&srv, 40), "owner@example.com", &pw).await, StatusCode::TOO_MANY_REQUESTS);
        // Every checked failure was audited, and the lockout once.
        let key = srv.create_key(&org, "admin").1;
        let mut actions = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/orgs/{org}/audit?limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = expect_json(srv.req(reqwest::Method::GET, &path, Some(&key)).send().await.unwrap(), StatusCode::OK).await;
            for e in page["items"].as_array().unwrap() {
                actions.push((e["action"].as_str().unwrap().to_owned(), e["ip"].as_str().unwrap().to_owned()));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(actions.iter().filter(|(a, _)| a == "auth.login_failed").count(), checked);
        assert_eq!(actions.iter().filter(|(a, _)| a == "auth.login_throttled").count(), 1);
        assert!(actions.iter().any(|(a, ip)| a == "auth.login_failed" && ip == "127.0.0.20"));
    }

    async fn unknown_accounts_are_throttled_like_real_ones(b: Backend) {
        let Some(srv) = fast(b, 4).await else { return };
        owner(&srv);
        let here = from(&srv, 1);
        for email in ["owner@example.com", "nobody@example.com"] {
            let statuses: Vec<u16> = futures_util::future::join_all((0..4).map(|_| async {
                attempt(&srv, &here, email, "wrong guess", None).await.0.as_u16()
            }))
            .await;
            let mut sorted = statuses.clone();
            sorted.sort();
            // Whether or not the account exists: three checks, then a captcha.
            assert!(sorted.iter().filter(|s| **s == 401).count() >= 3, "{email}: {statuses:?}");
            assert_eq!(attempt(&srv, &here, email, "wrong guess", None).await.0, StatusCode::PRECONDITION_REQUIRED, "{email}");
        }
    }
}
