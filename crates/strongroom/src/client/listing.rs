//! `ls`, `share`, `rm`, `restore` and `spaces create`: small calls, one answer each.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, ClientError, Result, ServerArgs, id_segment, print_json};

/// `strongroom ls [SPACE [--trash]]`: the organization's spaces, or a space's assets or trash
/// (every page).
pub(crate) async fn ls(args: &ServerArgs, space: Option<&str>, trash: bool) -> Result<()> {
    let c = Client::new(args)?;
    match space {
        None => {
            let me = c.json(c.req(Method::GET, "/api/v1/me")).await?;
            let org = me["org_id"].as_str().ok_or_else(|| {
                ClientError::other("the server did not say which organization the key is in")
            })?;
            let org = id_segment("organization", org)?;
            let spaces = c.all_pages(&format!("/api/v1/orgs/{org}/spaces")).await?;
            if args.json {
                print_json(&json!({"items": spaces}));
            } else {
                for s in &spaces {
                    println!("{}  {}", text(&s["id"]), text(&s["name"]));
                }
            }
        }
        Some(space) => {
            let space = id_segment("space", space)?;
            let which = if trash { "trash" } else { "assets" };
            let assets = c
                .all_pages(&format!("/api/v1/spaces/{space}/{which}"))
                .await?;
            if args.json {
                print_json(&json!({"items": assets}));
            } else {
                for a in &assets {
                    println!(
                        "{}  {:>12}  {}  {}",
                        text(&a["id"]),
                        a["size"].as_u64().unwrap_or(0),
                        text(if trash {
                            &a["deleted_at"]
                        } else {
                            &a["created_at"]
                        }),
                        text(&a["filename"])
                    );
                }
            }
        }
    }
    Ok(())
}

/// `strongroom share ASSET`: a download link, its URL on stdout.
pub(crate) async fn share(
    args: &ServerArgs,
    asset: &str,
    expires: &str,
    single_use: bool,
) -> Result<()> {
    let asset = id_segment("asset", asset)?;
    let expires_in = parse_duration(expires)?;
    let c = Client::new(args)?;
    let link = c
        .json(
            c.req(Method::POST, &format!("/api/v1/assets/{asset}/links"))
                .json(&json!({"expires_in": expires_in, "single_use": single_use})),
        )
        .await?;
    if args.json {
        print_json(&link);
    } else {
        println!("{}", text(&link["url"]));
        eprintln!(
            "expires {}{}",
            text(&link["expires_at"]),
            if single_use { "; works once" } else { "" }
        );
    }
    Ok(())
}

/// `strongroom rm ASSET [--purge]`.
pub(crate) async fn rm(args: &ServerArgs, asset: &str, purge: bool) -> Result<()> {
    let asset = id_segment("asset", asset)?;
    let c = Client::new(args)?;
    let query = if purge { "?purge=true" } else { "" };
    c.send(c.req(Method::DELETE, &format!("/api/v1/assets/{asset}{query}")))
        .await?;
    if args.json {
        print_json(&json!({"deleted": asset, "purged": purge}));
    } else if purge {
        eprintln!("purged {asset}: its key is destroyed, it cannot be restored");
    } else {
        eprintln!("moved {asset} to the trash (strongroom restore {asset} brings it back)");
    }
    Ok(())
}

/// `strongroom restore ASSET`.
pub(crate) async fn restore(args: &ServerArgs, asset: &str) -> Result<()> {
    let asset = id_segment("asset", asset)?;
    let c = Client::new(args)?;
    let restored = c
        .json(c.req(Method::POST, &format!("/api/v1/assets/{asset}/restore")))
        .await?;
    if args.json {
        print_json(&restored);
    } else {
        eprintln!("restored {asset} ({})", text(&restored["filename"]));
    }
    Ok(())
}

/// `strongroom spaces create NAME --org ORG`.
pub(crate) async fn create_space(args: &ServerArgs, org: &str, name: &str) -> Result<()> {
    let org = id_segment("organization", org)?;
    let c = Client::new(args)?;
    let space = c
        .json(
            c.req(Method::POST, &format!("/api/v1/orgs/{org}/spaces"))
                .json(&json!({"name": name})),
        )
        .await?;
    if args.json {
        print_json(&space);
    } else {
        println!("{}", text(&space["id"]));
    }
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Seconds from `90`, `30s`, `45m`, `1h` or `7d`.
pub(crate) fn parse_duration(raw: &str) -> Result<u64> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if per > 0 && n > 0 => n
            .checked_mul(per)
            .ok_or_else(|| ClientError::other(format!("--expires {raw} is too long"))),
        _ => Err(ClientError::other(format!(
            "--expires takes a number of seconds, or one with a unit: 30m, 1h, 7d (not '{raw}')"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (raw, secs) in [
            ("90", 90),
            ("30s", 30),
            ("45m", 2700),
            ("1h", 3600),
            ("7d", 604_800),
        ] {
            assert_eq!(parse_duration(raw).unwrap(), secs, "{raw}");
        }
        for bad in ["", "h", "0", "1w", "-5", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
