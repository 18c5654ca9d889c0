//! The Rust half of migration 17: seals the rows written before metadata was sealed, and fills
//! the blind indexes. It runs once, in the migration's transaction, so a database is either
//! wholly sealed at version 17 or untouched at version 16.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{
    ASSET_FILENAME, AUDIT_DETAIL, AUDIT_IP, FAILURE_SCOPE, Field, INVITATION_EMAIL, JOB_ERROR,
    KEY_LAST_IP, KEY_NAME, LINK_IP, MEDIA_ERROR, MEDIA_INFO, ORG_NAME, ROLE_NAME, SESSION_AGENT,
    SESSION_IP, SPACE_NAME, SUCCESS_IP, Seal, USER_EMAIL, audit_row,
};

/// Rows read per statement.
const BATCH: i64 = 500;

/// A blind index filled beside a sealed column: `column` holds the index of `of`'s plaintext,
/// within the organization in `scope` (or globally).
struct Index {
    column: &'static str,
    of: Field,
    scope: Option<&'static str>,
}

/// A table keyed by `id` with sealed columns.
struct Table {
    name: &'static str,
    fields: &'static [Field],
    index: Option<Index>,
}

const TABLES: &[Table] = &[
    Table {
        name: "orgs",
        fields: &[ORG_NAME],
        index: Some(Index {
            column: "name_index",
            of: ORG_NAME,
            scope: None,
        }),
    },
    Table {
        name: "users",
        fields: &[USER_EMAIL],
        index: Some(Index {
            column: "email_index",
            of: USER_EMAIL,
            scope: None,
        }),
    },
    Table {
        name: "spaces",
        fields: &[SPACE_NAME],
        index: None,
    },
    Table {
        name: "assets",
        fields: &[ASSET_FILENAME, MEDIA_ERROR, MEDIA_INFO],
        index: None,
    },
    Table {
        name: "roles",
        fields: &[ROLE_NAME],
        index: Some(Index {
            column: "name_index",
            of: ROLE_NAME,
            scope: Some("org_id"),
        }),
    },
    Table {
        name: "api_keys",
        fields: &[KEY_NAME, KEY_LAST_IP],
        index: None,
    },
    Table {
        name: "invitations",
        fields: &[INVITATION_EMAIL],
        index: None,
    },
    Table {
        name: "sessions",
        fields: &[SESSION_IP, SESSION_AGENT],
        index: None,
    },
    Table {
        name: "links",
        fields: &[LINK_IP],
        index: None,
    },
    Table {
        name: "jobs",
        fields: &[JOB_ERROR],
        index: None,
    },
];

/// Seals every existing row. Returns how many values were sealed or indexed.
pub(crate) async fn seal_existing(seal: &Seal, conn: &mut AnyConnection) -> sqlx::Result<u64> {
    let mut n = 0;
    for table in TABLES {
        n += seal_table(seal, conn, table).await?;
    }
    n += seal_audit(seal, conn).await?;
    n += index_throttles(seal, conn).await?;
    Ok(n)
}

async fn seal_table(seal: &Seal, conn: &mut AnyConnection, t: &Table) -> sqlx::Result<u64> {
    // Only names from the constant tables above are spliced into the statements.
    let cols = t.fields.iter().map(|f| f.column).collect::<Vec<_>>();
    let scope = t.index.as_ref().and_then(|i| i.scope);
    let select = format!(
        "SELECT id, {}{} FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
        cols.join(", "),
        scope.map(|s| format!(", {s}")).unwrap_or_default(),
        t.name
    );
    let mut sets = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect::<Vec<_>>();
    if let Some(index) = &t.index {
        sets.push(format!("{} = ${}", index.column, cols.len() + 1));
    }
    let update = format!(
        "UPDATE {} SET {} WHERE id = ${}",
        t.name,
        sets.join(", "),
        sets.len() + 1
    );
    let mut after = String::new();
    let mut n = 0;
    loop {
        let rows = sqlx::query(AssertSqlSafe(select.clone()))
            .bind(after.as_str())
            .bind(BATCH)
            .fetch_all(&mut *conn)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(n);
        };
        after = last.try_get("id")?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let mut q = sqlx::query(AssertSqlSafe(update.clone()));
            for f in t.fields {
                let plain: Option<String> = row.try_get(f.column)?;
                q = q.bind(seal.seal_opt(*f, &id, plain.as_deref()));
                n += u64::from(plain.is_some());
            }
            if let Some(index) = &t.index {
                let plain: Option<String> = row.try_get(index.of.column)?;
                let scope = match index.scope {
                    Some(col) => row.try_get::<String, _>(col)?,
                    None => String::new(),
                };
                q = q.bind(plain.map(|p| seal.index(index.of, &scope, &p)));
            }
            q.bind(id.as_str()).execute(&mut *conn).await?;
        }
    }
}

async fn seal_audit(seal: &Seal, conn: &mut AnyConnection) -> sqlx::Result<u64> {
    let (mut org, mut seq) = (String::new(), 0_i64);
    let mut n = 0;
    loop {
        let rows: Vec<AnyRow> = sqlx::query(
            "SELECT org_id, seq, ip, detail FROM audit_events \
             WHERE org_id > $1 OR (org_id = $1 AND seq > $2) ORDER BY org_id, seq LIMIT $3",
        )
        .bind(org.as_str())
        .bind(seq)
        .bind(BATCH)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(n);
        };
        (org, seq) = (last.try_get("org_id")?, last.try_get("seq")?);
        for row in &rows {
            let org_id: String = row.try_get("org_id")?;
            let s: i64 = row.try_get("seq")?;
            let row_id = audit_row(&org_id, s);
            let ip: String = row.try_get("ip")?;
            let detail: String = row.try_get("detail")?;
            sqlx::query(
                "UPDATE audit_events SET ip = $1, detail = $2 WHERE org_id = $3 AND seq = $4",
            )
            .bind(seal.seal(AUDIT_IP, &row_id, &ip))
            .bind(seal.seal(AUDIT_DETAIL, &row_id, &detail))
            .bind(org_id.as_str())
            .bind(s)
            .execute(&mut *conn)
            .await?;
            n += 2;
        }
    }
}

/// Throttle rows keep only blind indexes: replaced in place, one distinct value at a time.
async fn index_throttles(seal: &Seal, conn: &mut AnyConnection) -> sqlx::Result<u64> {
    let mut n = 0;
    let scopes: Vec<String> = sqlx::query_scalar("SELECT DISTINCT scope FROM login_failures")
        .fetch_all(&mut *conn)
        .await?;
    for scope in scopes {
        let done = sqlx::query("UPDATE login_failures SET scope = $1 WHERE scope = $2")
            .bind(seal.index(FAILURE_SCOPE, "", &scope))
            .bind(scope.as_str())
            .execute(&mut *conn)
            .await?;
        n += done.rows_affected();
    }
    let pairs = sqlx::query("SELECT user_id, ip FROM login_successes")
        .fetch_all(&mut *conn)
        .await?;
    for row in pairs {
        let user: String = row.try_get("user_id")?;
        let ip: String = row.try_get("ip")?;
        let done = sqlx::query("UPDATE login_successes SET ip = $1 WHERE user_id = $2 AND ip = $3")
            .bind(seal.index(SUCCESS_IP, &user, &ip))
            .bind(user.as_str())
            .bind(ip.as_str())
            .execute(&mut *conn)
            .await?;
        n += done.rows_affected();
    }
    Ok(n)
}
