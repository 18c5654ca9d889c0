//! Passwords and browser sessions over HTTPS: login, the `__Host-` cookie, the same answer and
//! the same time for unknown emails, CSRF, logout, session list and revocation, password change,
//! idle and absolute timeouts, legacy hashes.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

both_backends! {
    async fn login_sets_a_host_only_session_cookie(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let res = login(&srv, "Owner@Example.com", &pw).await;
        assert_eq!(res.status(), StatusCode::OK);
        let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set_cookie.starts_with("__Host-strongroom_session="), "{set_cookie}");
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
            assert!(set_cookie.contains(attr), "{attr} missing: {set_cookie}");
        }
        assert!(!set_cookie.to_lowercase().contains("domain="), "{set_cookie}");
        let secret = set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
        assert!(secret.len() >= 43, "a session id carries at least 256 bits");
        let body = expect_json(res, StatusCode::OK).await;
        assert_eq!(body["user_id"], boot.user_id.as_str());
        assert!(body["csrf_token"].as_str().unwrap().len() >= 43);

        let browser = Browser { cookie: format!("__Host-strongroom_session={secret}"), csrf: String::new(), login: body };
        let me = expect_json(browser.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(me["user_id"], boot.user_id.as_str());
        assert_eq!(me["org_id"], boot.org_id.as_str());
        assert_eq!(me["role"], "owner");
        assert_eq!(me["session_id"], browser.login["session_id"]);
        // Stored only as a keyed hash: neither the cookie secret nor the CSRF token is in the database.
        use sqlx::Row;
        let mut conn = srv.db_conn().await;
        let rows = sqlx::query("SELECT secret_hash, csrf_hash FROM sessions").fetch_all(&mut conn).await.unwrap();
        assert_eq!(rows.len(), 1);
        let stored: Vec<u8> = rows[0].try_get("secret_hash").unwrap();
        assert!(!contains(&stored, secret.as_bytes()));
        // The login is in the audit trail.
        let log = expect_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit", boot.org_id), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["action"] == "auth.login" && e["actor"] == format!("user:{}", boot.user_id)));
    }

    async fn wrong_password_and_unknown_email_get_the_same_answer(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (_, pw) = owner(&srv);
        let wrong = expect_problem(login(&srv, "owner@example.com", "not the password at all").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let unknown = expect_problem(login(&srv, "nobody@example.com", &pw).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let malformed = expect_problem(login(&srv, "not-an-email", &pw).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(wrong["detail"], unknown["detail"]);
        assert_eq!(wrong["detail"], malformed["detail"]);
        let res = srv.client.post(srv.url("/api/v1/auth/login")).json(&json!({"email": "x@example.com"})).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 422, "a missing password is a malformed request");
    }

    async fn an_unknown_email_takes_as_long_as_a_wrong_password(b: Backend) {
        // An unknown email is checked against a decoy hash, so its answer takes as long as a
        // wrong password's: timing does not tell which accounts exist. No failure delay here, so
        // the time measured is the work done. Each address is tried once (the limits count
        // failures per account and per account and address), interleaved so load on the machine
        // hits both kinds alike; a malformed email, refused before any hash, shows what "no hash"
        // costs.
        let Some(srv) = TestServer::start_with(b, |s| s.instance.service.failure_delay = Duration::ZERO).await else { return };
        let (boot, _) = owner(&srv);
        const ROUNDS: usize = 11;
        let members: Vec<String> = (0..ROUNDS).map(|i| format!("member{i}@example.com")).collect();
        for email in &members {
            add_member(&srv, &boot.org_id, email, "viewer", Some("the members' own passphrase 1"));
        }
        async fn timed(srv: &TestServer, email: &str) -> Duration {
            let started = Instant::now();
            let res = login(srv, email, "a wrong but plausible passphrase").await;
            let took = started.elapsed();
            expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
            took
        }
        let (mut wrong, mut unknown, mut malformed) = (Vec::new(), Vec::new(), Vec::new());
        for (i, member) in members.iter().enumerate() {
            let times = [
                timed(&srv, member).await,
                timed(&srv, &format!("nobody{i}@example.com")).await,
                timed(&srv, &format!("not-an-email-{i}")).await,
            ];
            // The first round warms up (connections, the decoy hash itself): not counted.
            if i > 0 {
                wrong.push(times[0]);
                unknown.push(times[1]);
                malformed.push(times[2]);
            }
        }
        fn median(mut v: Vec<Duration>) -> Duration {
            v.sort();
            v[v.len() / 2]
        }
        let (wrong, unknown, malformed) = (median(wrong), median(unknown), median(malformed));
        let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
        eprintln!("medians: wrong password {wrong:?}, unknown email {unknown:?}, malformed email {malformed:?}; ratio {ratio:.2}");
        assert!(
            wrong > malformed * 2,
            "a wrong password ({wrong:?}) should cost a hash more than a request that hashes nothing ({malformed:?})"
        );
        assert!(
            (0.5..=2.0).contains(&ratio),
            "an unknown email took {unknown:?} (median), a wrong password {wrong:?}: ratio {ratio:.2}, outside 0.5..2"
        );
        assert!(
            unknown > malformed * 2,
            "an unknown email ({unknown:?}) is answered as fast as one that hashes nothing ({malformed:?}): no decoy hash"
        );
    }

    async fn unsafe_requests_with_a_cookie_need_the_csrf_token(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let web = sign_in(&srv, "owner@example.com", &pw).await;
        let spaces = format!("/api/v1/orgs/{}/spaces", boot.org_id);
        let res = web.req(&srv, Method::POST, &spaces).json(&json!({"name": "x"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "csrf_failed").await;
        let res = web.req(&srv, Method::POST, &spaces).header("x-csrf-token", "forged").json(&json!({"name": "x"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "csrf_failed").await;
        // Another session's token does not fit this session.
        let other = sign_in(&srv, "owner@example.com", &pw).await;
        let res = web.req(&srv, Method::POST, &spaces).header("x-csrf-token", &other.csrf).json(&json!({"name": "x"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "csrf_failed").await;
        let list = expect_json(web.req(&srv, Method::GET, &spaces).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "refused requests created nothing");
        let res = web.send(&srv, Method::POST, &spaces).json(&json!({"name": "x"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        // A Bearer key needs no CSRF token, and a stray cookie does not change that.
        let res = srv.req(Method::POST, &spaces, Some(&boot.api_key)).header("cookie", "__Host-strongroom_session=garbage").json(&json!({"name": "y"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        // A garbage cookie alone is not a session.
        let res = srv.client.get(srv.url("/api/v1/me")).header("cookie", "__Host-strongroom_session=garbage").send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }

    async fn logout_and_revocation_end_sessions(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (_, pw) = owner(&srv);
        let a = sign_in(&srv, "owner@example.com", &pw).await;
        let bb = sign_in(&srv, "owner@example.com", &pw).await;
        let list = expect_json(a.req(&srv, Method::GET, "/api/v1/auth/sessions").send().await.unwrap(), StatusCode::OK).await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        let mine: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0]["id"], a.login["session_id"]);
        assert_eq!(mine[0]["user_agent"], "strongroom-tests/1");
        assert_eq!(mine[0]["ip"], "127.0.0.1");
        // Revoking needs the CSRF token too.
        let b_id = bb.login["session_id"].as_str().unwrap();
        assert_eq!(status(a.req(&srv, Method::DELETE, &format!("/api/v1/auth/sessions/{b_id}"))).await, StatusCode::FORBIDDEN);
        assert_eq!(status(a.send(&srv, Method::DELETE, &format!("/api/v1/auth/sessions/{b_id}"))).await, StatusCode::NO_CONTENT);
        assert_eq!(status(bb.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(a.send(&srv, Method::DELETE, &format!("/api/v1/auth/sessions/{b_id}"))).await, StatusCode::NOT_FOUND);
        assert_eq!(status(a.send(&srv, Method::DELETE, "/api/v1/auth/sessions/ses_0123456789abcdef0123456789abcdef")).await, StatusCode::NOT_FOUND);
        // Another user's session cannot be revoked (or even confirmed to exist).
        let out = srv.cli().args(["admin", "create-user", "--email", "second@example.com", "--org", a.login["org_id"].as_str().unwrap(), "--role", "viewer", "--password-stdin", "--json"])
            .stdin(std::process::Stdio::piped()).spawn().and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"a much longer passphrase 42\n")?;
                c.wait_with_output()
            }).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let second = sign_in(&srv, "second@example.com", "a much longer passphrase 42").await;
        let a_id = a.login["session_id"].as_str().unwrap();
        assert_eq!(status(second.send(&srv, Method::DELETE, &format!("/api/v1/auth/sessions/{a_id}"))).await, StatusCode::NOT_FOUND);
        assert_eq!(status(a.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::OK);
        // Logout: the cookie is cleared and the session is dead even if the browser keeps it.
        let res = a.send(&srv, Method::POST, "/api/v1/auth/logout").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(res.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
        assert_eq!(status(a.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED);
    }

    async fn password_change_checks_policy_and_signs_out_other_sessions(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (_, pw) = owner(&srv);
        let a = sign_in(&srv, "owner@example.com", &pw).await;
        let other = sign_in(&srv, "owner@example.com", &pw).await;
        let change = |current: &str, new: &str| a.send(&srv, Method::POST, "/api/v1/me/password").json(&json!({"current_password": current, "new_password": new}));
        let weak = expect_problem(change(&pw, "short").send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
        assert!(weak["detail"].as_str().unwrap().contains("12"), "the detail says why: {weak}");
        assert!(!weak["detail"].as_str().unwrap().contains("short\""), "the password is not echoed");
        expect_problem(change("wrong current password", "correct horse battery staple 9").send().await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(status(other.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::OK, "failed attempts change nothing");
        assert_eq!(change(&pw, "correct horse battery staple 9").send().await.unwrap().status(), StatusCode::NO_CONTENT);
        assert_eq!(status(other.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED, "other sessions are signed out");
        assert_eq!(status(a.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::OK, "this session stays");
        expect_problem(login(&srv, "owner@example.com", &pw).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(login(&srv, "owner@example.com", "correct horse battery staple 9").await.status(), StatusCode::OK);
        // An API key cannot change a password: that needs a signed-in person.
        let boot_key = srv.bootstrap("owner@example.com", "acme").api_key;
        let res = srv.req(Method::POST, "/api/v1/me/password", Some(&boot_key)).json(&json!({"current_password": "correct horse battery staple 9", "new_password": "another long passphrase 77"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    }

    async fn idle_and_absolute_timeouts_end_sessions(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let idle = sign_in(&srv, "owner@example.com", &pw).await;
        let absolute = sign_in(&srv, "owner@example.com", &pw).await;
        let policy = sign_in(&srv, "owner@example.com", &pw).await;
        let mut conn = srv.db_conn().await;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let set = |col: &'static str, ago_ms: i64, id: String| {
            let sql = format!("UPDATE sessions SET {col} = $1 WHERE id = $2");
            (sql, now_ms - ago_ms, id)
        };
        // 31 minutes without use (default idle timeout: 30 minutes).
        let (sql, v, id) = set("last_seen_at", 31 * 60_000, idle.login["session_id"].as_str().unwrap().into());
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(v).bind(id).execute(&mut conn).await.unwrap();
        // Opened 13 hours ago though used a moment ago (default absolute lifetime: 12 hours).
        let (sql, v, id) = set("created_at", 13 * 3_600_000, absolute.login["session_id"].as_str().unwrap().into());
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(v).bind(id).execute(&mut conn).await.unwrap();
        assert_eq!(status(idle.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(absolute.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(status(policy.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::OK);
        // A stricter organization policy applies to live sessions at once.
        let (sql, v, id) = set("last_seen_at", 2 * 60_000, policy.login["session_id"].as_str().unwrap().into());
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(v).bind(id).execute(&mut conn).await.unwrap();
        sqlx::query("UPDATE orgs SET session_idle_secs = 60 WHERE id = $1").bind(boot.org_id.as_str()).execute(&mut conn).await.unwrap();
        assert_eq!(status(policy.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::UNAUTHORIZED);
    }

    async fn a_role_change_reaches_live_sessions(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let web = sign_in(&srv, "owner@example.com", &pw).await;
        // Another owner first: the last one cannot be demoted.
        assert!(srv.run(&["admin", "create-user", "--email", "second@example.com", "--org", &boot.org_id, "--role", "owner"]).status.success());
        let out = srv.run(&["admin", "create-user", "--email", "owner@example.com", "--org", &boot.org_id, "--role", "viewer", "--json"]);
        assert!(out.status.success());
        let me = expect_json(web.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(me["role"], "viewer");
        let res = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{}/spaces", boot.org_id)).json(&json!({"name": "x"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    }

    async fn migrated_bcrypt_hashes_are_accepted_and_upgraded(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _) = owner(&srv);
        let legacy = bcrypt::hash_with_result("migrated from the old system", 11).unwrap().format_for_version(bcrypt::Version::TwoY);
        assert!(legacy.starts_with("$2y$11$"));
        let mut conn = srv.db_conn().await;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(&legacy).bind(boot.user_id.as_str()).execute(&mut conn).await.unwrap();
        expect_problem(login(&srv, "owner@example.com", "wrong").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(login(&srv, "owner@example.com", "migrated from the old system").await.status(), StatusCode::OK);
        use sqlx::Row;
        let now: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1").bind(boot.user_id.as_str()).fetch_one(&mut conn).await.unwrap().try_get("password_hash").unwrap();
        assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "rehashed at login: {now}");
        assert_eq!(login(&srv, "owner@example.com", "migrated from the old system").await.status(), StatusCode::OK);
        // A weak legacy cost is refused outright rather than trusted.
        let weak = bcrypt::hash("migrated from the old system", 4).unwrap();
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(&weak).bind(boot.user_id.as_str()).execute(&mut conn).await.unwrap();
        expect_problem(login(&srv, "owner@example.com", "migrated from the old system").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }

    async fn sensitive_actions_need_a_recent_password(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, pw) = owner(&srv);
        let web = sign_in(&srv, "owner@example.com", &pw).await;
        let keys = format!("/api/v1/orgs/{}/api-keys", boot.org_id);
        let admin_key = |web: &Browser| web.send(&srv, Method::POST, &keys).json(&json!({"name": "ops", "role": "admin"}));
        // Just signed in: the password is fresh.
        assert_eq!(status(admin_key(&web)).await, StatusCode::CREATED);
        // Eleven minutes later (the window is ten).
        let mut conn = srv.db_conn().await;
        let stale = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 11 * 60_000;
        sqlx::query("UPDATE sessions SET reauth_at = $1 WHERE id = $2").bind(stale).bind(web.login["session_id"].as_str().unwrap()).execute(&mut conn).await.unwrap();
        expect_problem(admin_key(&web).send().await.unwrap(), StatusCode::UNAUTHORIZED, "reauthentication_required").await;
        expect_problem(web.send(&srv, Method::POST, "/api/v1/me/mfa/totp").send().await.unwrap(), StatusCode::UNAUTHORIZED, "reauthentication_required").await;
        // Ordinary actions are unaffected, and so is the session itself.
        assert_eq!(status(web.send(&srv, Method::POST, &keys).json(&json!({"name": "read", "role": "viewer"}))).await, StatusCode::CREATED);
        assert_eq!(status(web.req(&srv, Method::GET, "/api/v1/me")).await, StatusCode::OK);
        // Re-authenticating needs the CSRF token and the right password.
        assert_eq!(status(web.req(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": pw}))).await, StatusCode::FORBIDDEN);
        expect_problem(web.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": "not it at all"})).send().await.unwrap(), StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        assert_eq!(status(web.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": pw}))).await, StatusCode::NO_CONTENT);
        assert_eq!(status(admin_key(&web)).await, StatusCode::CREATED);
        assert_eq!(status(web.send(&srv, Method::POST, "/api/v1/me/mfa/totp")).await, StatusCode::OK);
        // API keys are not sessions: their role alone decides.
        assert_eq!(status(srv.req(Method::POST, &keys, Some(&boot.api_key)).json(&json!({"name": "ci", "role": "admin"}))).await, StatusCode::CREATED);
    }

    async fn password_checks_run_on_idle_priority_threads(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (_, pw) = owner(&srv);
        let before = hashing_threads();
        assert!(!before.is_empty(), "the server runs no password-hash threads");
        // SCHED_IDLE: below nice 19, a core only when no other thread wants it.
        assert!(before.iter().all(|t| t.policy == SCHED_IDLE), "{before:?}");
        for _ in 0..3 {
            assert_eq!(login(&srv, "owner@example.com", &pw).await.status(), StatusCode::OK);
        }
        // The three Argon2id checks ran there: those threads' CPU time grew.
        let after = hashing_threads();
        let spent: u64 = after.iter().filter_map(|a| before.iter().find(|b| b.tid == a.tid).map(|b| a.cpu_ticks - b.cpu_ticks)).sum();
        assert!(spent > 0, "no CPU time on the hashing threads: {before:?} -> {after:?}");
        // Everything else keeps the normal policy: only hashing was lowered.
        let others = process_threads().into_iter().filter(|t| t.name != "password-hash").collect::<Vec<_>>();
        assert!(others.iter().all(|t| t.policy == 0), "{others:?}");
    }
}

/// Linux's SCHED_IDLE policy number (include/uapi/linux/sched.h).
const SCHED_IDLE: u32 = 5;

/// A thread of this process (the test server runs in it), from `/proc/self/task/*`.
#[derive(Debug)]
struct ThreadInfo {
    tid: u32,
    name: String,
    /// Scheduling policy (stat field 41).
    policy: u32,
    /// utime + stime (stat fields 14 and 15), in clock ticks.
    cpu_ticks: u64,
}

fn process_threads() -> Vec<ThreadInfo> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = entry.unwrap().path();
        // A thread may end between the listing and the read.
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        // Field 2 (comm) may hold spaces and parentheses: split after the last ')'; field N is then f[N - 3].
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        threads.push(ThreadInfo {
            tid: dir.file_name().unwrap().to_str().unwrap().parse().unwrap(),
            name: name.trim_end().to_owned(),
            policy: f[41 - 3].parse().unwrap(),
            cpu_ticks: f[14 - 3].parse::<u64>().unwrap() + f[15 - 3].parse::<u64>().unwrap(),
        });
    }
    threads
}

fn hashing_threads() -> Vec<ThreadInfo> {
    process_threads()
        .into_iter()
        .filter(|t| t.name == "password-hash")
        .collect()
}
