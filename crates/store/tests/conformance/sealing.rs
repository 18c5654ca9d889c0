//! Sealed metadata: what users typed and what identifies a person is in no row in the clear,
//! reads back through the store, is bound to its row, keeps names and emails unique, and is
//! sealed by migration 17 in a database an older release wrote.

use futures_util::TryStreamExt;
use strongroom_domain::{
    ApiKeyId, AssetId, BlobId, Email, Filename, InvitationId, JobId, LinkId, OrgId, PermissionSet,
    Role, RoleId, SessionId, SpaceId, UserId,
};
use strongroom_store::{
    ApiKeyRow, AssetRow, BACKUP_TABLES, InvitationRow, Lane, LinkRow, MediaState, NewAuditEvent,
    NewJob, Personal, RoleRow, SessionRow, Store, StoreError, Value,
};

use super::fixtures::{
    GENESIS, blob_row, hash_of, name, new_kek, new_org, new_space, new_user, org_row, set_role, ts,
};
use crate::Env;

conformance!(
    typed_values_are_sealed_and_read_back,
    names_and_emails_stay_unique_through_blind_indexes,
    a_sealed_value_copied_to_another_row_does_not_open,
    migration_17_seals_the_rows_an_older_release_wrote,
);

/// Every marker the cases write, each in one sealed field.
const ORG: &str = "Markorg Zq7";
const EMAIL: &str = "markuser.zq7@example.com";
const SPACE: &str = "Markspace Zq7";
const FILENAME: &str = "markfile-zq7.pdf";
const ROLE: &str = "Markrole Zq7";
const KEY: &str = "Markkey Zq7";
const KEY_IP: &str = "203.0.113.77";
const INVITED: &str = "markinvite.zq7@example.com";
const SESSION_IP: &str = "198.51.100.23";
const AGENT: &str = "Markagent Zq7";
const AUDIT_IP: &str = "192.0.2.45";
const DETAIL: &str = r#"{"note":"Markdetail Zq7"}"#;
/// A person's event (version 2): sealed under their own key.
const PERSONAL_IP: &str = "192.0.2.46";
const PERSONAL_DETAIL: &str = r#"{"note":"Markpersonal Zq7"}"#;
const LINK_IP: &str = "192.0.2.99";
const FAILED_SCOPE: &str = "acct:markfail.zq7@example.com";
const SIGNIN_IP: &str = "192.0.2.123";
const MEDIA_ERROR: &str = "Markmediaerror Zq7";
const MEDIA_INFO: &str = r#"{"title":"Markmediainfo Zq7"}"#;
const JOB_ERROR: &str = "550 no such user markjob.zq7@example.com";

const MARKERS: &[&str] = &[
    ORG,
    EMAIL,
    SPACE,
    FILENAME,
    ROLE,
    KEY,
    KEY_IP,
    INVITED,
    SESSION_IP,
    AGENT,
    AUDIT_IP,
    "Markdetail",
    PERSONAL_IP,
    "Markpersonal",
    LINK_IP,
    "markfail",
    SIGNIN_IP,
    "Markmediaerror",
    "Markmediainfo",
    "markjob",
];

/// Fails naming the table and column where a marker is found in any value of any table.
async fn assert_no_marker(store: &Store) {
    let mut snap = store.snapshot().await.unwrap();
    for table in BACKUP_TABLES {
        let columns = snap.columns(table).await.unwrap();
        let rows: Vec<Vec<Value>> = snap.rows(table).unwrap().try_collect().await.unwrap();
        for row in rows {
            for (col, v) in columns.iter().zip(row) {
                let text = match v {
                    Value::Text(t) => t,
                    Value::Bytes { b } => String::from_utf8_lossy(&b).into_owned(),
                    _ => continue,
                };
                let lower = text.to_lowercase();
                for m in MARKERS {
                    assert!(
                        !lower.contains(&m.to_lowercase()),
                        "{m:?} is in the clear in {table}.{col}: {text}"
                    );
                }
            }
        }
    }
    snap.finish().await.unwrap();
}

struct Written {
    org: OrgId,
    user: UserId,
    space: SpaceId,
    asset: AssetId,
    key: ApiKeyId,
    link: LinkId,
    job: JobId,
}

/// Writes one marker into every sealed field through the store's own writes.
async fn write_markers(s: &Store) -> Written {
    let org = new_org(s, ORG).await;
    let user = new_user(s, EMAIL).await;
    set_role(s, &org.id, &user.id, Role::Owner).await;
    let space = new_space(s, &org.id, SPACE).await;
    new_kek(s, 1).await;
    let blob = blob_row(&org.id, 1);
    let asset = AssetRow {
        id: AssetId::generate(),
        org_id: org.id.clone(),
        space_id: space.id.clone(),
        blob_id: blob.id.clone(),
        filename: Filename::parse(FILENAME).unwrap(),
        content_type: "application/pdf".into(),
        size: 10,
        sha256: format!("{:064x}", 1),
        created_at: ts(1_700_000_000_006),
        media_status: None,
        deleted_at: None,
    };
    let role = RoleRow {
        id: RoleId::generate(),
        org_id: org.id.clone(),
        name: name(ROLE),
        permissions: PermissionSet::from_stored("asset:read").unwrap(),
        created_at: ts(1_700_000_000_007),
    };
    let key = ApiKeyRow {
        id: ApiKeyId::generate(),
        org_id: org.id.clone(),
        user_id: Some(user.id.clone()),
        name: name(KEY),
        role: Role::Admin.into(),
        created_at: ts(1_700_000_000_008),
        expires_at: None,
        revoked_at: None,
    };
    let invitation = InvitationRow {
        id: InvitationId::generate(),
        org_id: org.id.clone(),
        email: Email::parse(INVITED).unwrap(),
        role: Role::Viewer.into(),
        invited_by: format!("user:{}", user.id),
        inviter: Some(user.id.clone()),
        created_at: ts(1_700_000_000_009),
        expires_at: ts(1_900_000_000_000),
        accepted_at: None,
        revoked_at: None,
    };
    let session = SessionRow {
        id: SessionId::generate(),
        user_id: user.id.clone(),
        org_id: org.id.clone(),
        created_at: ts(1_700_000_000_010),
        last_seen_at: ts(1_700_000_000_010),
        reauth_at: ts(1_700_000_000_010),
        ip: SESSION_IP.into(),
        user_agent: AGENT.into(),
        revoked_at: None,
    };
    let link = LinkRow {
        id: LinkId::generate(),
        org_id: org.id.clone(),
        asset_id: asset.id.clone(),
        created_by: format!("key:{}", key.id),
        created_at: ts(1_700_000_000_011),
        expires_at: ts(1_900_000_000_000),
        single_use: false,
        ip: Some(LINK_IP.into()),
        rendition: None,
        revoked_at: None,
        used_at: None,
        use_count: 0,
        last_used_at: None,
    };
    let event = NewAuditEvent {
        at: ts(1_700_000_000_012),
        actor: format!("user:{}", user.id),
        action: "space.create".into(),
        target: space.id.to_string(),
        ip: AUDIT_IP.into(),
        detail: DETAIL.into(),
        personal: None,
    };
    let personal = NewAuditEvent {
        ip: PERSONAL_IP.into(),
        detail: PERSONAL_DETAIL.into(),
        personal: Some(Personal {
            subject: user.id.to_string(),
            digest: vec![7; 32],
            salt: Some(vec![9; 32]),
        }),
        ..event.clone()
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_blob(&blob).await.unwrap();
    tx.insert_asset(&asset).await.unwrap();
    tx.insert_role(&role).await.unwrap();
    tx.insert_api_key(&key, b"secret-hash-zq7").await.unwrap();
    tx.insert_invitation(&invitation, b"invite-hash-zq7")
        .await
        .unwrap();
    tx.insert_session(&session, b"session-hash-zq7", b"csrf-hash-zq7")
        .await
        .unwrap();
    tx.insert_link(&link, b"link-hash-zq7").await.unwrap();
    let (seq, prev) = tx.lock_audit_head(&org.id).await.unwrap();
    tx.append_audit(&org.id, seq, &event, &prev, &hash_of(seq), b"mac")
        .await
        .unwrap();
    let (seq, prev) = tx.lock_audit_head(&org.id).await.unwrap();
    tx.append_audit(&org.id, seq, &personal, &prev, &hash_of(seq), b"mac")
        .await
        .unwrap();
    tx.set_media_state(
        &asset.id,
        &MediaState {
            status: Some("failed".into()),
            error: Some(MEDIA_ERROR.into()),
            info: Some(MEDIA_INFO.into()),
        },
    )
    .await
    .unwrap();
    let job = JobId::generate();
    tx.enqueue_job(
        &NewJob {
            id: job.clone(),
            org_id: Some(org.id.clone()),
            kind: "mail".into(),
            subject: None,
            payload: vec![1],
            max_attempts: 1,
            run_after: ts(0),
        },
        ts(0),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let claimed = s
        .claim_job(&Lane::any(), "w", ts(1_000), ts(61_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job);
    s.fail_job(&job, "w", JOB_ERROR, None, ts(1_500))
        .await
        .unwrap();
    s.touch_api_key(&key.id, ts(1_700_000_000_013), KEY_IP)
        .await
        .unwrap();
    s.record_failure(&[FAILED_SCOPE.into()], "password", ts(1_700_000_000_014))
        .await
        .unwrap();
    s.record_login_success(&user.id, SIGNIN_IP, ts(1_700_000_000_015))
        .await
        .unwrap();
    Written {
        org: org.id,
        user: user.id,
        space: space.id,
        asset: asset.id,
        key: key.id,
        link: link.id,
        job,
    }
}

/// Every marker reads back through the store, and every exact lookup finds its row.
async fn assert_readable(s: &Store, w: &Written) {
    assert_eq!(s.org(&w.org).await.unwrap().unwrap().name.as_str(), ORG);
    assert_eq!(s.org_by_name(&name(ORG)).await.unwrap().unwrap().id, w.org);
    let email = Email::parse(EMAIL).unwrap();
    assert_eq!(s.user_by_email(&email).await.unwrap().unwrap().id, w.user);
    assert_eq!(
        s.user_email(&w.user).await.unwrap().unwrap().as_str(),
        EMAIL
    );
    let spaces = s.spaces(&w.org, None, 10).await.unwrap().items;
    assert_eq!(spaces[0].id, w.space);
    assert_eq!(spaces[0].name.as_str(), SPACE);
    let asset = s.asset(&w.org, &w.asset).await.unwrap().unwrap();
    assert_eq!(asset.filename.as_str(), FILENAME);
    let role = s.custom_role_by_name(&w.org, ROLE).await.unwrap().unwrap();
    assert_eq!(role.name.as_str(), ROLE);
    assert_eq!(s.custom_roles(&w.org).await.unwrap()[0].name.as_str(), ROLE);
    let key = s.api_key_details(&w.org, &w.key).await.unwrap().unwrap();
    assert_eq!(key.key.name.as_str(), KEY);
    assert_eq!(key.last_used_ip.as_deref(), Some(KEY_IP));
    let invitations = s.invitations(&w.org).await.unwrap();
    assert_eq!(invitations[0].email.as_str(), INVITED);
    let sessions = s.sessions_of(&w.user).await.unwrap();
    assert_eq!(sessions[0].ip, SESSION_IP);
    assert_eq!(sessions[0].user_agent, AGENT);
    let link = s.link(&w.org, &w.link).await.unwrap().unwrap();
    assert_eq!(link.ip.as_deref(), Some(LINK_IP));
    let events = s.audit_events(&w.org, 0, 10).await.unwrap();
    assert_eq!(events[0].event.ip, AUDIT_IP);
    assert_eq!(events[0].event.detail, DETAIL);
    assert!(events[0].event.personal.is_none());
    // A person's event (version 2), where this release wrote the markers (release 16 had none).
    if let Some(e) = events.get(1) {
        assert_eq!(e.event.ip, PERSONAL_IP);
        assert_eq!(e.event.detail, PERSONAL_DETAIL);
        let p = e.event.personal.as_ref().unwrap();
        assert_eq!(
            (p.subject.as_str(), p.digest.as_slice()),
            (w.user.as_str(), &[7u8; 32][..])
        );
        assert_eq!(p.salt.as_deref(), Some(&[9u8; 32][..]));
        assert!(e.sealed_intact);
    }
    let members = s.members(&w.org).await.unwrap();
    assert_eq!(members[0].email.as_str(), EMAIL);
    let orgs = s.memberships_of(&w.user).await.unwrap();
    assert_eq!(orgs[0].1, ORG);
    let failures = s
        .failures_since(FAILED_SCOPE, "password", ts(0))
        .await
        .unwrap();
    assert_eq!(failures, 1);
    assert!(s.known_address(&w.user, SIGNIN_IP, ts(0)).await.unwrap());
    assert!(!s.known_address(&w.user, AUDIT_IP, ts(0)).await.unwrap());
    let media = s.media_state(&w.asset).await.unwrap();
    assert_eq!(media.error.as_deref(), Some(MEDIA_ERROR));
    assert_eq!(media.info.as_deref(), Some(MEDIA_INFO));
    let job = s.job(&w.job).await.unwrap().unwrap();
    assert_eq!(job.last_error.as_deref(), Some(JOB_ERROR));
}

async fn typed_values_are_sealed_and_read_back(env: &Env) {
    let w = write_markers(&env.store).await;
    assert_eq!(
        env.store.audit_events(&w.org, 0, 10).await.unwrap().len(),
        2
    );
    assert_no_marker(&env.store).await;
    assert_readable(&env.store, &w).await;
}

async fn names_and_emails_stay_unique_through_blind_indexes(env: &Env) {
    let s = &env.store;
    let acme = new_org(s, "Acme").await;
    let globex = new_org(s, "Globex").await;
    new_user(s, "ada@example.com").await;

    let mut tx = s.begin().await.unwrap();
    let same = tx.insert_org(&org_row("Acme"), GENESIS, b"mac").await;
    assert!(matches!(same, Err(StoreError::Conflict(_))), "{same:?}");
    drop(tx);

    let mut tx = s.begin().await.unwrap();
    let again = strongroom_store::UserRow {
        id: UserId::generate(),
        email: Email::parse("ada@example.com").unwrap(),
        created_at: ts(1),
    };
    let same = tx.insert_user(&again, None).await;
    assert!(matches!(same, Err(StoreError::Conflict(_))), "{same:?}");
    drop(tx);

    let role = |org: &OrgId| RoleRow {
        id: RoleId::generate(),
        org_id: org.clone(),
        name: name("Reviewer"),
        permissions: PermissionSet::from_stored("asset:read").unwrap(),
        created_at: ts(2),
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_role(&role(&acme.id)).await.unwrap();
    // The same name in another organization is another role.
    tx.insert_role(&role(&globex.id)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let same = tx.insert_role(&role(&acme.id)).await;
    assert!(matches!(same, Err(StoreError::Conflict(_))), "{same:?}");
    drop(tx);
    // A lookup is exact: another spelling finds nothing.
    assert!(
        s.custom_role_by_name(&acme.id, "reviewer")
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_sealed_value_copied_to_another_row_does_not_open(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "Plans").await;
    new_kek(s, 1).await;
    let a = super::fixtures::new_asset(s, &space, 1).await;
    let b = super::fixtures::new_asset(s, &space, 2).await;
    let pool = raw_pool(&env.url).await;
    let stolen: String = sqlx::query_scalar("SELECT filename FROM assets WHERE id = $1")
        .bind(a.id.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE assets SET filename = $1 WHERE id = $2")
        .bind(stolen)
        .bind(b.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    // An audit event's detail copied from event 1 to event 2: the trail still lists, and says
    // which event no longer opens (verification reports it as tampered with).
    super::fixtures::append(s, &org.id, 1).await;
    super::fixtures::append(s, &org.id, 2).await;
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM audit_events WHERE org_id = $1 AND seq = 1")
            .bind(org.id.as_str())
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE audit_events SET detail = $1 WHERE org_id = $2 AND seq = 2")
        .bind(detail)
        .bind(org.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let events = s.audit_events(&org.id, 0, 10).await.unwrap();
    let intact = events.iter().map(|e| e.sealed_intact).collect::<Vec<_>>();
    assert_eq!(intact, [true, false]);
    assert_eq!(
        events[1].event.detail, "",
        "a value that does not open reads as empty"
    );
    assert_eq!(events[0].event.detail, r#"{"n":1}"#);
    pool.close().await;
    // The value is bound to asset a: in b's row it is refused as corrupt, never read as a's name.
    let err = s.asset(&org.id, &b.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                table: "assets",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        s.asset(&org.id, &a.id)
            .await
            .unwrap()
            .unwrap()
            .filename
            .as_str(),
        "file-1.pdf"
    );
}

async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

/// Writes the markers the way release 16 did: plain values, no blind indexes.
async fn write_markers_at_16(pool: &sqlx::AnyPool) -> Written {
    let w = Written {
        org: OrgId::generate(),
        user: UserId::generate(),
        space: SpaceId::generate(),
        asset: AssetId::generate(),
        key: ApiKeyId::generate(),
        link: LinkId::generate(),
        job: JobId::generate(),
    };
    let blob = BlobId::generate();
    let role = RoleId::generate();
    let (org, user) = (w.org.as_str(), w.user.as_str());
    let run = |sql: &'static str, binds: Vec<Bind>| async move {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b {
                Bind::T(t) => q.bind(t),
                Bind::B(b) => q.bind(b),
                Bind::I(i) => q.bind(i),
            };
        }
        q.execute(pool).await.unwrap();
    };
    use Bind::{B, I, T};
    let t = |s: &str| T(s.to_owned());
    run(
        "INSERT INTO orgs (id, name, created_at, audit_seq, audit_head, audit_head_mac) \
         VALUES ($1, $2, 1, 1, $3, $4)",
        vec![t(org), t(ORG), B(hash_of(1)), B(b"mac".to_vec())],
    )
    .await;
    run(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, NULL, 1)",
        vec![t(user), t(EMAIL)],
    )
    .await;
    run(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', 1)",
        vec![t(org), t(user)],
    )
    .await;
    run(
        "INSERT INTO spaces (id, org_id, name, created_at) VALUES ($1, $2, $3, 1)",
        vec![t(w.space.as_str()), t(org), t(SPACE)],
    )
    .await;
    run(
        "INSERT INTO keks (version, wrapped, created_at) VALUES (1, $1, 1)",
        vec![B(b"kek".to_vec())],
    )
    .await;
    run(
        "INSERT INTO blobs (id, org_id, kek_version, wrapped_dek, size, stored_size, created_at) \
         VALUES ($1, $2, 1, $3, 10, 100, 1)",
        vec![t(blob.as_str()), t(org), B(b"dek".to_vec())],
    )
    .await;
    run(
        "INSERT INTO assets (id, org_id, space_id, blob_id, filename, content_type, size, sha256, \
         created_at, media_status, media_error, media_info) \
         VALUES ($1, $2, $3, $4, $5, 'application/pdf', 10, $6, 1, 'failed', $7, $8)",
        vec![
            t(w.asset.as_str()),
            t(org),
            t(w.space.as_str()),
            t(blob.as_str()),
            t(FILENAME),
            T(format!("{:064x}", 1)),
            t(MEDIA_ERROR),
            t(MEDIA_INFO),
        ],
    )
    .await;
    run(
        "INSERT INTO roles (id, org_id, name, permissions, created_at) \
         VALUES ($1, $2, $3, 'asset:read', 1)",
        vec![t(role.as_str()), t(org), t(ROLE)],
    )
    .await;
    run(
        "INSERT INTO api_keys (id, org_id, user_id, name, role, secret_hash, created_at, \
         last_used_at, last_used_ip) VALUES ($1, $2, $3, $4, 'admin', $5, 1, 2, $6)",
        vec![
            t(w.key.as_str()),
            t(org),
            t(user),
            t(KEY),
            B(b"key-hash".to_vec()),
            t(KEY_IP),
        ],
    )
    .await;
    run(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
         expires_at, inviter_id) VALUES ($1, $2, $3, 'viewer', $4, 'cli', 1, $5, NULL)",
        vec![
            t(InvitationId::generate().as_str()),
            t(org),
            t(INVITED),
            B(b"invite-hash".to_vec()),
            I(1_900_000_000_000),
        ],
    )
    .await;
    run(
        "INSERT INTO sessions (id, secret_hash, csrf_hash, user_id, org_id, created_at, \
         last_seen_at, reauth_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, 1, 1, 1, $6, $7)",
        vec![
            t(SessionId::generate().as_str()),
            B(b"session-hash".to_vec()),
            B(b"csrf-hash".to_vec()),
            t(user),
            t(org),
            t(SESSION_IP),
            t(AGENT),
        ],
    )
    .await;
    run(
        "INSERT INTO links (id, org_id, asset_id, token_hash, created_by, created_at, expires_at, \
         single_use, ip) VALUES ($1, $2, $3, $4, 'cli', 1, $5, 0, $6)",
        vec![
            t(w.link.as_str()),
            t(org),
            t(w.asset.as_str()),
            B(b"link-hash".to_vec()),
            I(1_900_000_000_000),
            t(LINK_IP),
        ],
    )
    .await;
    run(
        "INSERT INTO audit_events (org_id, seq, at, actor, action, target, ip, detail, \
         prev_hash, hash) VALUES ($1, 1, 1, 'cli', 'space.create', $2, $3, $4, $5, $6)",
        vec![
            t(org),
            t(w.space.as_str()),
            t(AUDIT_IP),
            t(DETAIL),
            B(GENESIS.to_vec()),
            B(hash_of(1)),
        ],
    )
    .await;
    run(
        "INSERT INTO jobs (id, org_id, kind, subject, payload, status, attempts, worker, \
         max_attempts, run_after, progress, last_error, created_at, updated_at) \
         VALUES ($1, $2, 'mail', NULL, $3, 'failed', 1, NULL, 1, 0, 0, $4, 0, 0)",
        vec![t(w.job.as_str()), t(org), B(vec![1]), t(JOB_ERROR)],
    )
    .await;
    run(
        "INSERT INTO login_failures (scope, kind, at) VALUES ($1, 'password', 5)",
        vec![t(FAILED_SCOPE)],
    )
    .await;
    run(
        "INSERT INTO login_successes (user_id, ip, at) VALUES ($1, $2, 5)",
        vec![t(user), t(SIGNIN_IP)],
    )
    .await;
    w
}

enum Bind {
    T(String),
    B(Vec<u8>),
    I(i64),
}

async fn migration_17_seals_the_rows_an_older_release_wrote(env: &Env) {
    env.store.close().await;
    // A fresh database of its own, left at schema 16 the way release 16 wrote it.
    let db = strongroom_testkit::TestDb::new(env.backend())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = match &db.url {
        Some(url) => url.clone(),
        None => format!("sqlite:{}/old.db?mode=rwc", dir.path().display()),
    };
    let old = Store::connect_at_version(&url, crate::sealer(), 16)
        .await
        .unwrap();
    assert_eq!(old.schema_version().await.unwrap(), 16);
    let pool = raw_pool(&url).await;
    let w = write_markers_at_16(&pool).await;
    pool.close().await;
    old.close().await;

    let store = crate::connect(&url).await;
    assert_eq!(
        store.schema_version().await.unwrap(),
        strongroom_store::SCHEMA_VERSION
    );
    assert_no_marker(&store).await;
    assert_readable(&store, &w).await;
    store.close().await;
    if db.url.is_none() {
        // No page of the SQLite files keeps an old plain value either.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes).to_lowercase();
            for m in MARKERS {
                assert!(
                    !text.contains(&m.to_lowercase()),
                    "{m:?} is in {}",
                    path.display()
                );
            }
        }
    }
}
