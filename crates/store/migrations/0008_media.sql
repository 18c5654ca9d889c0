-- Media (issue 4): processing status, renditions (thumbnails, resized images, the HLS package),
-- each HLS package's content key, and per-view playback tokens.

-- NULL: not media (nothing to process). processing | ready | failed.
ALTER TABLE assets ADD COLUMN media_status TEXT;
-- Why processing failed, safe to show ("not a media file ffmpeg can read").
ALTER TABLE assets ADD COLUMN media_error TEXT;
-- What the probe found, as JSON (kind, duration, size, codecs).
ALTER TABLE assets ADD COLUMN media_info TEXT;

-- A derivative of an asset, stored like every blob: encrypted under its own data key. `name` is a
-- rendition name ("thumbnail") or a path in the HLS package ("hls/720p/seg00003.ts").
CREATE TABLE renditions (
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- image | hls
    kind TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    blob_id TEXT NOT NULL REFERENCES blobs (id),
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    -- Lower-case hex SHA-256 of the plaintext (its ETag).
    sha256 TEXT NOT NULL,
    width BIGINT,
    height BIGINT,
    -- For an HLS variant: its bandwidth in bits per second.
    bandwidth BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (asset_id, name)
);
CREATE INDEX renditions_blob ON renditions (blob_id);

-- A link may serve one of the asset's image renditions instead of the original.
ALTER TABLE links ADD COLUMN rendition TEXT;

-- The AES-128 content key of an asset's HLS package, sealed with a root-derived field key bound
-- to the asset id. Only the key endpoint opens it, for a valid playback token.
CREATE TABLE hls_keys (
    asset_id TEXT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    key_enc BYTES NOT NULL
);

-- One view's token: it opens the master playlist, the variants, the segments and the key of one
-- asset until it expires or is revoked. Only its keyed hash is stored.
CREATE TABLE playbacks (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    token_hash BYTES NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    -- The first request of the view: the view is audited once, when this is set.
    viewed_at BIGINT
);
CREATE INDEX playbacks_asset ON playbacks (asset_id, id);
