//! Playback: per-view tokens that gate one asset's HLS stream.
//!
//! A playback token opens one asset's master playlist, variant playlists, segments and key.
//! Every request checks it anew, so expiry and revocation stop key delivery at once; the view is
//! audited once, at its first request. Segments are streamed as they are decrypted.

use bytes::Bytes;
use strongroom_crypto::token;
use strongroom_domain::{PlaybackId, Timestamp};
use strongroom_store::PlaybackRow;
use zeroize::Zeroizing;

use super::ContentService;
use crate::audit::Record;
use crate::authz::{AssetAuthz, PlaybackAuthz, perm};
use crate::{RequestMeta, Result, ServiceError};

/// Random bytes in a playback token (256 bits).
pub const PLAYBACK_TOKEN_BYTES: usize = 32;

/// A new playback: the URL holds the token, shown once.
pub struct CreatedPlayback {
    /// Its id (for revoking).
    pub id: PlaybackId,
    /// The token for `/hls/{token}/master.m3u8`.
    pub token: Zeroizing<String>,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// One file of a stream, for a valid token.
pub struct HlsFile {
    /// Its media type.
    pub content_type: &'static str,
    /// Its length in bytes.
    pub length: u64,
    /// The bytes (segments stay AES-128 encrypted; the key is the key); an `Err` item means
    /// an integrity failure: stop sending and cut the connection.
    pub body: crate::ByteStream,
    /// Seconds a private cache may keep it (the token's remaining life); 0: never store.
    pub max_age: u64,
}

impl ContentService {
    /// A per-view URL token for a processed video the caller may read.
    pub async fn create_playback(
        &self,
        authz: &AssetAuthz<'_, perm::AssetRead>,
        expires_in: u64,
    ) -> Result<CreatedPlayback> {
        let (p, asset) = (authz.principal(), authz.asset());
        let max = self.ctx.config.max_link_lifetime.as_secs();
        if expires_in == 0 || expires_in > max {
            return Err(ServiceError::Invalid(format!(
                "expires_in must be between 1 and {max} seconds"
            )));
        }
        let state = self.ctx.store.media_state(&asset.id).await?;
        let has_stream = self.ctx.store.hls_key(&asset.id).await?.is_some();
        match state.status.as_deref() {
            Some("ready") if has_stream => {}
            Some("processing") => {
                return Err(ServiceError::Conflict(
                    "the video is still processing: try again when its status is ready".into(),
                ));
            }
            Some("failed") => {
                return Err(ServiceError::Conflict(format!(
                    "the video could not be processed: {}",
                    state.error.unwrap_or_default()
                )));
            }
            _ => {
                return Err(ServiceError::Conflict(
                    "the asset is not a video with a stream".into(),
                ));
            }
        }
        let now = self.ctx.clock.now();
        let token = Zeroizing::new(token::random_token(PLAYBACK_TOKEN_BYTES));
        let row = PlaybackRow {
            id: PlaybackId::generate(),
            org_id: asset.org_id.clone(),
            asset_id: asset.id.clone(),
            created_by: p.actor.audit_name(),
            created_at: now,
            expires_at: now.plus_secs(i64::try_from(expires_in).unwrap_or(i64::MAX)),
            revoked_at: None,
            viewed_at: None,
        };
        let mut tx = self.ctx.store.begin().await?;
        tx.insert_playback(&row, &self.playback_hasher.mac(token.as_bytes()))
            .await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "playback.create", &row.id).detail(
                    serde_json::json!({"asset_id": row.asset_id, "expires_at": row.expires_at}),
                ),
            )
            .await?;
        tx.commit().await?;
        Ok(CreatedPlayback {
            id: row.id,
            token,
            expires_at: row.expires_at,
        })
    }

    /// Revokes a playback: its next request (the key included) is refused, on every node.
    pub async fn revoke_playback(&self, authz: &PlaybackAuthz<'_>) -> Result<()> {
        let (p, id) = (authz.principal(), &authz.playback().id);
        let mut tx = self.ctx.store.begin().await?;
        if !tx
            .revoke_playback(&p.org_id, id, self.ctx.clock.now())
            .await?
        {
            return Err(ServiceError::NotFound("playback"));
        }
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "playback.revoke", id))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One file of a stream: `master.m3u8`, `{rung}/index.m3u8`, `{rung}/segNNNNN.ts` or
    /// `key`. The token is checked on every request; an unknown, expired or revoked token, and
    /// any other path, are all "not found".
    pub async fn open_hls(&self, token: &str, path: &str, meta: RequestMeta) -> Result<HlsFile> {
        let gone = || ServiceError::NotFound("stream");
        if token.is_empty() || token.len() > 100 || !valid_hls_path(path) {
            return Err(gone());
        }
        let hash = self.playback_hasher.mac(token.as_bytes());
        let pb = self
            .ctx
            .store
            .playback_by_hash(&hash)
            .await?
            .ok_or_else(gone)?;
        let now = self.ctx.clock.now();
        if pb.revoked_at.is_some() || pb.expires_at <= now {
            return Err(gone());
        }
        // A stream stops with its asset: deleted to the trash, it is gone for viewers too.
        if !self.ctx.store.asset_is_live(&pb.asset_id).await? {
            return Err(gone());
        }
        let remaining = u64::try_from((pb.expires_at.millis() - now.millis()) / 1000).unwrap_or(0);
        // The view is audited at its first request, whichever file that is (a player that
        // skips the master playlist is audited all the same).
        if pb.viewed_at.is_none() {
            let mut tx = self.ctx.store.begin().await?;
            // Of concurrent first requests, the one whose update wins audits the view, in the
            // same transaction.
            if tx.mark_viewed(&pb.id, now).await? {
                self.ctx
                    .audit
                    .append(
                        &mut tx,
                        Record {
                            org_id: &pb.org_id,
                            actor: format!("playback:{}", pb.id),
                            subject: None,
                            action: "playback.view",
                            target: pb.asset_id.to_string(),
                            ip: meta.ip.clone(),
                            detail: serde_json::json!({}),
                        },
                    )
                    .await?;
            }
            tx.commit().await?;
        }
        if path == "key" {
            let sealed = self
                .ctx
                .store
                .hls_key(&pb.asset_id)
                .await?
                .ok_or_else(gone)?;
            let key = self
                .hls_key_seal
                .open(pb.asset_id.as_str().as_bytes(), &sealed)
                .map_err(|_| {
                    ServiceError::Internal("an HLS key failed its integrity check".into())
                })?;
            return Ok(HlsFile {
                content_type: "application/octet-stream",
                length: key.len() as u64,
                body: Box::pin(futures_util::stream::once(futures_util::future::ready(Ok(
                    Bytes::copy_from_slice(&key),
                )))),
                max_age: 0,
            });
        }
        let r = self
            .ctx
            .store
            .rendition(&pb.asset_id, &format!("hls/{path}"))
            .await?
            .ok_or_else(gone)?;
        let (length, body) = self.rendition_stream(&r).await?;
        let is_segment = path.ends_with(".ts");
        Ok(HlsFile {
            content_type: if is_segment {
                strongroom_media::SEGMENT_CONTENT_TYPE
            } else {
                strongroom_media::PLAYLIST_CONTENT_TYPE
            },
            length,
            body,
            max_age: if is_segment { remaining } else { 0 },
        })
    }
}

/// `master.m3u8`, `key`, `{rung}/index.m3u8` or `{rung}/segNNNNN.ts`, with a plain rung name.
fn valid_hls_path(path: &str) -> bool {
    if path == strongroom_media::MASTER_PLAYLIST || path == "key" {
        return true;
    }
    let Some((rung, file)) = path.split_once('/') else {
        return false;
    };
    let plain = !rung.is_empty()
        && rung.len() <= 64
        && rung
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    let segment = file
        .strip_prefix("seg")
        .and_then(|f| f.strip_suffix(".ts"))
        .is_some_and(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()));
    plain && (file == strongroom_media::VARIANT_PLAYLIST || segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_package_paths_are_served() {
        for ok in ["master.m3u8", "key", "720p/index.m3u8", "360p/seg00012.ts"] {
            assert!(valid_hls_path(ok), "{ok}");
        }
        for bad in [
            "",
            "../key",
            "720p/../../etc/passwd",
            "720p/seg.ts",
            "720p/seg00001.mp4",
            "720P/index.m3u8",
            "a/b/index.m3u8",
            "/master.m3u8",
            "thumbnail",
        ] {
            assert!(!valid_hls_path(bad), "{bad}");
        }
    }
}
