//! Sealed metadata end to end (issue 11): a distinct marker goes, through the real HTTP API and
//! the real binary, into every value a user types or that identifies a person (organization
//! name, user and invitation emails, space name, file name, custom role name, API key name,
//! session user agent, the client addresses of sessions, audit events, key use and sign-ins, the
//! address a link is bound to, the account of a failed sign-in). Every marker is then read back
//! through the API (so a dropped value fails the test), and none of them, compared without
//! regard to case, may appear in any file of the data dir (SQLite: `strongroom.db`, its `-wal`
//! and `-shm`) or in a `pg_dump` of the PostgreSQL database; checked while the server runs and
//! again after a restart, once SQLite has folded its WAL into the database file.
//!
//! The client addresses are markers too: the fixture's own client connects from `127.0.0.1`,
//! and the other steps come from their own loopback addresses (one per field), so a leak names
//! the column it came from.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

/// The address the fixture's own client (`srv.client`) connects from.
const DEFAULT_IP: &str = "127.0.0.1";
/// The owner signs in from here: sessions.ip, login_successes.ip, audit_events.ip.
const SESSION_IP: [u8; 4] = [127, 61, 73, 89];
/// The marker-named API key is used from here: api_keys.last_used_ip, audit_events.ip.
const KEY_IP: [u8; 4] = [127, 62, 74, 90];
/// The only address the link answers: links.ip.
const LINK_IP: [u8; 4] = [127, 63, 75, 91];
/// Failed sign-ins come from here: login_failures.scope (`ip:...`), audit_events.ip.
const FAILED_IP: [u8; 4] = [127, 64, 76, 92];

const PASSPHRASE: &str = "a long and unusual passphrase 7";
const CONTENT: &[u8] = b"the content is not what this test is about";

fn ip(octets: [u8; 4]) -> String {
    IpAddr::from(octets).to_string()
}

/// An HTTPS client for `srv` whose connections come from `octets` (any 127/8 address is local).
fn client_from(srv: &TestServer, octets: [u8; 4]) -> reqwest::Client {
    strongroom_testkit::https_client_builder(&srv.cert)
        .local_address(IpAddr::from(octets))
        .build()
        .unwrap()
}

/// The values the test types, each carrying its own marker.
struct Markers {
    org: String,
    owner_email: String,
    space: String,
    filename: String,
    role: String,
    key_name: String,
    invite_email: String,
    user_agent: String,
    failed_email: String,
}

impl Markers {
    fn new() -> Markers {
        // Unique per run: the mail sink is shared by every test.
        let tag = strongroom_domain::UserId::generate()
            .as_str()
            .trim_start_matches("usr_")
            .to_ascii_lowercase();
        Markers {
            org: format!("Org mk-org-{tag}"),
            owner_email: format!("mk-owner-{tag}@example.com"),
            space: format!("Space mk-space-{tag}"),
            filename: format!("mk-file-{tag}.bin"),
            role: format!("mk-role-{tag}"),
            key_name: format!("Key mk-key-{tag}"),
            invite_email: format!("mk-invitee-{tag}@example.com"),
            user_agent: format!("MarkerBrowser/1.0 (mk-agent-{tag})"),
            failed_email: format!("mk-failed-{tag}@example.com"),
        }
    }

    /// What must never be found: (the field it went into, the needle).
    fn needles(&self) -> Vec<(&'static str, String)> {
        vec![
            ("orgs.name", self.org.clone()),
            ("users.email (owner)", self.owner_email.clone()),
            ("spaces.name", self.space.clone()),
            ("assets.filename", self.filename.clone()),
            ("roles.name", self.role.clone()),
            ("api_keys.name", self.key_name.clone()),
            ("invitations.email / users.email", self.invite_email.clone()),
            ("sessions.user_agent", self.user_agent.clone()),
            ("login_failures.scope (account)", self.failed_email.clone()),
            (
                "sessions.ip / login_successes.ip / audit_events.ip",
                ip(SESSION_IP),
            ),
            ("api_keys.last_used_ip / audit_events.ip", ip(KEY_IP)),
            ("links.ip", ip(LINK_IP)),
            (
                "login_failures.scope (address) / audit_events.ip",
                ip(FAILED_IP),
            ),
            (
                "the fixture client's address (127.0.0.1)",
                DEFAULT_IP.into(),
            ),
        ]
    }
}

/// Every JSON item of a list answer.
fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
}

/// The part of `hay` around `at`, printable.
fn snippet(hay: &[u8], at: usize, len: usize) -> String {
    let start = at.saturating_sub(40);
    let end = (at + len + 40).min(hay.len());
    String::from_utf8_lossy(&hay[start..end])
        .escape_debug()
        .to_string()
}

/// Where `needle` occurs in `hay_lower` (`hay` in ASCII lower case), ignoring ASCII case.
fn find_ignoring_case(hay_lower: &[u8], needle: &str) -> Option<usize> {
    let needle = needle.to_ascii_lowercase().into_bytes();
    hay_lower.windows(needle.len()).position(|w| w == needle)
}

/// A marker found: the field it went into, the marker, and where it is.
struct Hit {
    field: &'static str,
    needle: String,
    at: usize,
}

/// Every marker in `hay`, ignoring ASCII case.
fn hits_in(hay: &[u8], needles: &[(&'static str, String)]) -> Vec<Hit> {
    let lower = hay.to_ascii_lowercase();
    needles
        .iter()
        .filter_map(|(field, needle)| {
            find_ignoring_case(&lower, needle).map(|at| Hit {
                field,
                needle: needle.clone(),
                at,
            })
        })
        .collect()
}

/// One line of the failure message: which marker, where, and the bytes around it.
fn describe(hit: &Hit, what: &str, hay: &[u8]) -> String {
    format!(
        "{} marker {:?} in {what} at byte {}: …{}…",
        hit.field,
        hit.needle,
        hit.at,
        snippet(hay, hit.at, hit.needle.len())
    )
}

/// The table a line of a plain `pg_dump` belongs to: the `COPY` section it is in.
fn dump_section(dump: &str, at: usize) -> String {
    dump[..at]
        .lines()
        .rev()
        .find(|l| l.starts_with("COPY ") || l.starts_with("CREATE ") || l.starts_with("ALTER "))
        .map(|l| l.chars().take(160).collect())
        .unwrap_or_else(|| "(before any statement)".into())
}

/// The newest `pg_dump` of Debian's versioned directories (as `scripts/postgres.sh` picks the
/// server), else the one on PATH.
fn pg_dump_binary() -> PathBuf {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for e in std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
    {
        let bin = e.path().join("bin/pg_dump");
        let version: Option<Vec<u32>> = e
            .file_name()
            .to_string_lossy()
            .split('.')
            .map(|p| p.parse().ok())
            .collect();
        if let (true, Some(v)) = (bin.is_file(), version)
            && best.as_ref().is_none_or(|(b, _)| v > *b)
        {
            best = Some((v, bin));
        }
    }
    if let Some((_, bin)) = best {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("pg_dump"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "pg_dump not found (neither /usr/lib/postgresql/*/bin/pg_dump nor on PATH): this test \
             cannot show that no marker reached PostgreSQL without dumping it; install Debian's \
             postgresql-client (./scripts/test.sh installs postgresql)"
        )
    })
}

/// A plain-text dump (schema and data) of the test database.
fn pg_dump(url: &str) -> Vec<u8> {
    let bin = pg_dump_binary();
    let out = std::process::Command::new(&bin)
        .args([
            "--no-owner",
            "--no-privileges",
            "--format=plain",
            "--dbname",
        ])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.len() > 1000,
        "the dump is suspiciously small: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

/// Asserts that no marker is in the data dir's files (for SQLite, the database and its WAL) nor,
/// on PostgreSQL, in a dump of the database. `stored` are values kept in the clear (ids): each
/// must be found, or the bytes searched are not this instance's database.
fn assert_no_marker_stored(srv: &TestServer, b: Backend, m: &Markers, stored: &[&str], when: &str) {
    let needles = m.needles();
    let mut hits = Vec::new();
    // The database's bytes: the SQLite files, or the dump.
    let mut database = Vec::new();
    let files = srv.files();
    if b == Backend::Sqlite {
        let db = srv.data_dir.join("strongroom.db");
        assert!(
            files.contains(&db),
            "no SQLite database at {}: {files:?}",
            db.display()
        );
    }
    for f in &files {
        // A file may vanish between the walk and the read (the WAL's checkpoint, a temp file).
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        let what = f.display().to_string();
        hits.extend(
            hits_in(&bytes, &needles)
                .iter()
                .map(|h| describe(h, &what, &bytes)),
        );
        if what.contains("strongroom.db") {
            database.extend_from_slice(&bytes);
        }
    }
    if b == Backend::Postgres {
        let url = srv
            .db
            .url
            .as_deref()
            .expect("a PostgreSQL test has a database URL");
        let dump = pg_dump(url);
        let text = String::from_utf8_lossy(&dump);
        for hit in hits_in(&dump, &needles) {
            hits.push(format!(
                "{} [section: {}]",
                describe(&hit, "the pg_dump", &dump),
                dump_section(&text, hit.at)
            ));
        }
        database = dump;
    }
    assert!(
        hits.is_empty(),
        "{when}: plaintext reached the database:\n{}",
        hits.join("\n")
    );
    // The search looked at the right bytes: the rows are there, their values sealed.
    let lower = database.to_ascii_lowercase();
    for clear in stored.iter().copied().chain(["sr1:"]) {
        assert!(
            find_ignoring_case(&lower, clear).is_some(),
            "{when}: {clear:?} is not in the database's bytes ({} searched): the test searched \
             the wrong place",
            database.len()
        );
    }
}

/// What the test made: ids to read the markers back by, and the owner's session cookie.
struct Created {
    boot: Boot,
    key_id: String,
    space_id: String,
    asset_id: String,
    link_id: String,
    cookie: String,
}

/// Every marker can be read back through the API, so none was just dropped.
async fn assert_readable(srv: &TestServer, m: &Markers, c: &Created) {
    let key = c.boot.api_key.as_str();
    let org = c.boot.org_id.as_str();
    let get = |path: String| get_json(srv.req(Method::GET, &path, Some(key)));

    let detail = get(format!("/api/v1/orgs/{org}")).await;
    assert_eq!(detail["name"], m.org.as_str(), "{detail}");

    let members = get(format!("/api/v1/orgs/{org}/members")).await;
    let emails: Vec<&str> = items(&members)
        .iter()
        .filter_map(|x| x["email"].as_str())
        .collect();
    assert!(
        emails.contains(&m.owner_email.as_str()) && emails.contains(&m.invite_email.as_str()),
        "{members}"
    );
    let invitee = items(&members)
        .iter()
        .find(|x| x["email"] == m.invite_email.as_str())
        .unwrap();
    assert_eq!(invitee["role"], m.role.as_str(), "{members}");

    let spaces = get(format!("/api/v1/orgs/{org}/spaces")).await;
    assert!(
        items(&spaces)
            .iter()
            .any(|s| s["id"] == c.space_id.as_str() && s["name"] == m.space.as_str()),
        "{spaces}"
    );

    let asset = get(format!("/api/v1/assets/{}", c.asset_id)).await;
    assert_eq!(asset["filename"], m.filename.as_str(), "{asset}");
    let listed = get(format!("/api/v1/spaces/{}/assets", c.space_id)).await;
    assert_eq!(
        items(&listed)[0]["filename"],
        m.filename.as_str(),
        "{listed}"
    );

    let roles = get(format!("/api/v1/orgs/{org}/roles")).await;
    assert!(
        items(&roles).iter().any(|r| r["name"] == m.role.as_str()),
        "{roles}"
    );

    let keys = get(format!("/api/v1/orgs/{org}/api-keys?limit=1000")).await;
    let k = items(&keys)
        .iter()
        .find(|k| k["id"] == c.key_id.as_str())
        .unwrap_or_else(|| panic!("{keys}"));
    assert_eq!(k["name"], m.key_name.as_str(), "{keys}");
    assert_eq!(k["last_used_ip"], ip(KEY_IP), "{keys}");

    let invitations = get(format!("/api/v1/orgs/{org}/invitations")).await;
    assert!(
        items(&invitations)
            .iter()
            .any(|i| i["email"] == m.invite_email.as_str() && i["status"] == "accepted"),
        "{invitations}"
    );

    let links = get(format!("/api/v1/assets/{}/links", c.asset_id)).await;
    assert!(
        items(&links)
            .iter()
            .any(|l| l["id"] == c.link_id.as_str() && l["ip"] == ip(LINK_IP)),
        "{links}"
    );

    let sessions = get_json(
        srv.client
            .get(srv.url("/api/v1/auth/sessions"))
            .header("cookie", &c.cookie),
    )
    .await;
    assert!(
        items(&sessions)
            .iter()
            .any(|s| s["ip"] == ip(SESSION_IP) && s["user_agent"] == m.user_agent.as_str()),
        "{sessions}"
    );

    let audit = get(format!("/api/v1/orgs/{org}/audit?limit=1000")).await;
    let events = items(&audit);
    let ips: Vec<&str> = events.iter().filter_map(|e| e["ip"].as_str()).collect();
    for want in [
        ip(SESSION_IP),
        ip(KEY_IP),
        ip(FAILED_IP),
        DEFAULT_IP.to_owned(),
    ] {
        assert!(
            ips.contains(&want.as_str()),
            "no event from {want}: {ips:?}"
        );
    }
    let details: Vec<String> = events.iter().map(|e| e["detail"].to_string()).collect();
    for want in [
        &m.org,
        &m.space,
        &m.filename,
        &m.role,
        &m.key_name,
        &m.invite_email,
    ] {
        assert!(
            details.iter().any(|d| d.contains(want.as_str())),
            "no audit detail names {want:?}: {details:#?}"
        );
    }
    let verify = get(format!("/api/v1/orgs/{org}/audit/verify")).await;
    assert_eq!(verify["intact"], true, "{verify}");

    // Throttle scopes and sign-in addresses are only matched, never read back: the rows exist.
    let mut conn = srv.db_conn().await;
    for table in ["login_failures", "login_successes"] {
        use sqlx::Row;
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
        assert!(n > 0, "nothing recorded in {table}");
    }
}

/// Puts a marker into every sealed field through the API; returns what it made.
async fn put_markers(srv: &TestServer, m: &Markers) -> Created {
    let v = srv.run_json(&[
        "admin",
        "bootstrap",
        "--email",
        &m.owner_email,
        "--org",
        &m.org,
        "--json",
    ]);
    let boot = Boot {
        user_id: v["user_id"].as_str().unwrap().into(),
        org_id: v["org_id"].as_str().unwrap().into(),
        api_key: v["api_key"].as_str().unwrap().into(),
    };
    let password = v["password"].as_str().unwrap().to_owned();
    let (org, owner_key) = (boot.org_id.as_str(), boot.api_key.as_str());

    // A custom role, and a key with it, from the fixture's client (127.0.0.1).
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/orgs/{org}/roles"),
            Some(owner_key),
        )
        .json(&json!({"name": m.role, "permissions": [
            "org:read", "space:read", "space:create", "asset:read", "asset:create", "link:create",
        ]}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::CREATED).await;
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/orgs/{org}/api-keys"),
            Some(owner_key),
        )
        .json(&json!({"name": m.key_name, "role": m.role}))
        .send()
        .await
        .unwrap();
    let created = expect_json(res, StatusCode::CREATED).await;
    let key_id = created["id"].as_str().unwrap().to_owned();
    let key_secret = created["api_key"].as_str().unwrap().to_owned();

    // That key, from its own address: a space, a file, a link bound to another address.
    let from_key = client_from(srv, KEY_IP);
    let res = from_key
        .post(srv.url(&format!("/api/v1/orgs/{org}/spaces")))
        .bearer_auth(&key_secret)
        .json(&json!({"name": m.space}))
        .send()
        .await
        .unwrap();
    let space_id = expect_json(res, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let part = reqwest::multipart::Part::bytes(CONTENT.to_vec())
        .file_name(m.filename.clone())
        .mime_str("application/octet-stream")
        .unwrap();
    let res = from_key
        .post(srv.url(&format!("/api/v1/spaces/{space_id}/assets")))
        .bearer_auth(&key_secret)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let asset = expect_json(res, StatusCode::CREATED).await;
    assert_eq!(asset["filename"], m.filename.as_str(), "{asset}");
    let asset_id = asset["id"].as_str().unwrap().to_owned();
    let res = from_key
        .post(srv.url(&format!("/api/v1/assets/{asset_id}/links")))
        .bearer_auth(&key_secret)
        .json(&json!({"expires_in": 3600, "ip": ip(LINK_IP)}))
        .send()
        .await
        .unwrap();
    let link = expect_json(res, StatusCode::CREATED).await;
    assert_eq!(link["ip"], ip(LINK_IP), "{link}");
    let link_id = link["id"].as_str().unwrap().to_owned();
    let link_path = link["url"]
        .as_str()
        .unwrap()
        .split_once("/d/")
        .map(|(_, t)| format!("/d/{t}"))
        .unwrap();
    // The bound address is what the link checks: it answers there, and nowhere else.
    let res = client_from(srv, LINK_IP)
        .get(srv.url(&link_path))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), CONTENT);
    let res = srv.client.get(srv.url(&link_path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // An invitation (the mail carries its link), accepted with the custom role.
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/orgs/{org}/invitations"),
            Some(owner_key),
        )
        .json(&json!({"email": m.invite_email, "role": m.role}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::CREATED).await;
    let token = invite_token(&wait_for_mail(&m.invite_email, "invited").await);
    let res = srv
        .client
        .post(srv.url("/api/v1/invitations/accept"))
        .json(&json!({"token": token, "password": PASSPHRASE}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::OK).await;

    // The owner signs in once from the fixture's client, which remembers that device; then
    // from a browser with a marker user agent, from its own address: a new device.
    let res = login(srv, &m.owner_email, &password).await;
    expect_json(res, StatusCode::OK).await;
    let res = client_from(srv, SESSION_IP)
        .post(srv.url("/api/v1/auth/login"))
        .header("user-agent", &m.user_agent)
        .json(&json!({"email": m.owner_email, "password": password}))
        .send()
        .await
        .unwrap();
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    expect_json(res, StatusCode::OK).await;
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    // The new-device notice is mailed (its job's payload names the agent and the address).
    let notice = wait_for_mail(&m.owner_email, "New sign-in").await;
    assert!(notice.body.contains(&m.user_agent), "{}", notice.body);

    // A failed sign-in for an account that does not exist, from yet another address.
    let res = client_from(srv, FAILED_IP)
        .post(srv.url("/api/v1/auth/login"))
        .json(&json!({"email": m.failed_email, "password": "not the password at all 1"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // And a wrong password for the owner from there (audited in the owner's organization).
    let res = client_from(srv, FAILED_IP)
        .post(srv.url("/api/v1/auth/login"))
        .json(&json!({"email": m.owner_email, "password": "not the password at all 2"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // The key's last use is recorded as it is used; wait until the list shows it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = get_json(srv.req(
            Method::GET,
            &format!("/api/v1/orgs/{org}/api-keys?limit=1000"),
            Some(owner_key),
        ))
        .await;
        let used = items(&keys)
            .iter()
            .any(|k| k["id"] == key_id.as_str() && k["last_used_ip"] == ip(KEY_IP));
        if used {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key's last use never shows: {keys}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    Created {
        boot,
        key_id,
        space_id,
        asset_id,
        link_id,
        cookie,
    }
}

both_backends! {
    async fn no_typed_value_reaches_the_database_in_plain_text(b: Backend) {
        let Some(mut srv) = TestServer::start_with_mail(b).await else { return };
        let m = Markers::new();
        let c = put_markers(&srv, &m).await;
        assert_readable(&srv, &m, &c).await;
        let stored = [c.boot.org_id.as_str(), c.asset_id.as_str(), c.key_id.as_str(), c.link_id.as_str()];
        assert_no_marker_stored(&srv, b, &m, &stored, "while the server runs");

        // A graceful stop checkpoints SQLite's WAL into the database file: check it again, and
        // that everything still opens under the same root key.
        srv.restart().await;
        assert_readable(&srv, &m, &c).await;
        assert_no_marker_stored(&srv, b, &m, &stored, "after a restart");
    }
}

both_backends! {
    async fn audit_verify_names_an_event_whose_sealed_detail_was_moved(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("moved@example.com", "moved-org");
        for name in ["one", "two", "three"] {
            srv.create_space(&boot.api_key, &boot.org_id, name).await;
        }
        let ok = srv.run(&["audit", "verify", "--org", &boot.org_id]);
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        // Event 3's sealed detail replaced by event 2's: both are valid ciphertexts under the same
        // key, but a value opens only in the row it was sealed for.
        let mut conn = srv.db_conn().await;
        let detail: String = sqlx::query_scalar("SELECT detail FROM audit_events WHERE org_id = $1 AND seq = 2")
            .bind(boot.org_id.clone()).fetch_one(&mut conn).await.unwrap();
        assert!(detail.starts_with("sr1:"), "{detail}");
        sqlx::query("UPDATE audit_events SET detail = $1 WHERE org_id = $2 AND seq = 3")
            .bind(detail).bind(boot.org_id.clone()).execute(&mut conn).await.unwrap();
        let out = srv.run(&["audit", "verify", "--org", &boot.org_id]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a moved sealed value passed verification");
        let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.contains("event 3") && line.contains("sealed"), "{line}");
        // The trail still lists: the other events read as before.
        let list = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit", boot.org_id), Some(&boot.api_key))).await;
        assert!(list["items"].as_array().is_some_and(|a| a.len() >= 3), "{list}");
    }
}
