//! Asset rows kept in memory for reads: an asset read finds the asset and its blob row (where
//! the bytes are, the wrapped data key) without a round trip while they are known to be
//! current, under the scheme of [`super::epoch_cache`] with the asset epoch of migration 20
//! (moved by every update or delete of an asset or blob row, whoever writes it). Rows are kept,
//! never decisions: the caller decides who may read on every request.

use strongroom_domain::{AssetId, OrgId, Permission};
use strongroom_store::{AssetRow, BlobRow};

use super::Authz;
use super::epoch_cache::EpochCache;
use super::perm::Perm;
use crate::{Result, ServiceError};

/// Assets (with their blob rows) read recently for reads, by organization and id.
pub(super) type AssetCache = EpochCache<(OrgId, AssetId), (AssetRow, BlobRow)>;

impl Authz {
    /// A live asset of `org_id` with its blob row (a read then needs no second round trip).
    /// For a read, from memory when the rows are known to be current (see `epoch_cache`; the
    /// asset epoch of migration 20); anything else is authorized against the rows as the
    /// database holds them now. Who may see the asset is decided by the caller, on every
    /// request, from these rows.
    pub(super) async fn asset_with_blob<P: Perm>(
        &self,
        org_id: &OrgId,
        asset_id: &AssetId,
    ) -> Result<(AssetRow, BlobRow)> {
        let cached = P::PERMISSION == Permission::AssetRead;
        let key = (org_id.clone(), asset_id.clone());
        let generation = self.ctx.store.authz_generation();
        if cached && let Some(rows) = self.asset_cache.get(&key, generation) {
            return Ok(rows);
        }
        let lookup = self.asset_cache.begin(generation);
        let found = self
            .ctx
            .store
            .asset_with_blob(org_id, asset_id)
            .await?
            .ok_or(ServiceError::NotFound("asset"))?;
        let rows = (found.asset, found.blob);
        if cached {
            self.asset_cache.confirm(&lookup, found.asset_epoch);
            self.asset_cache
                .insert(key, &lookup, found.asset_epoch, rows.clone());
        }
        Ok(rows)
    }
}
