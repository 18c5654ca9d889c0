//! The key hierarchy at run time: the root key, the KEKs it unwraps, and data keys per blob.
//!
//! Another process (`strongroom keys rotate`) may add a KEK while the server runs, so the active
//! version is read from the database before wrapping each new data key, and an unknown version
//! met while unwrapping triggers a reload.

use std::collections::BTreeMap;
use std::sync::RwLock;

use strongroom_crypto::keys::{DataKey, Kek, RootKey};
use strongroom_domain::{BlobId, Timestamp};
use strongroom_store::{BlobRow, KekRow, Store};

use crate::ctx::Ctx;
use crate::{Result, ServiceError};

/// The root key and the unwrapped KEKs.
pub struct Keyring {
    root: RootKey,
    keks: RwLock<BTreeMap<u32, Kek>>,
}

/// `strongroom keys status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    /// The version new data keys are wrapped with.
    pub active_version: u32,
    /// How many data keys each version wraps.
    pub data_keys: BTreeMap<String, u64>,
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotationReport {
    /// The new active version.
    pub active_version: u32,
    /// Data keys rewrapped.
    pub rewrapped: u64,
    /// Old versions deleted because nothing uses them any more.
    pub retired_versions: Vec<u32>,
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

impl Keyring {
    /// Loads every KEK (creating version 1 on a new database).
    pub async fn load(store: &Store, root: RootKey, now: Timestamp) -> Result<Keyring> {
        let ring = Keyring {
            root,
            keks: RwLock::new(BTreeMap::new()),
        };
        if store.keks().await?.is_empty() {
            let kek = Kek::generate(1);
            let mut tx = store.begin().await?;
            match tx
                .insert_kek(
                    &KekRow {
                        version: 1,
                        wrapped: ring.root.wrap_kek(&kek),
                    },
                    now,
                )
                .await
            {
                // Another node or command created it first: use theirs.
                Ok(()) | Err(strongroom_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
        }
        ring.reload(store).await?;
        Ok(ring)
    }

    async fn reload(&self, store: &Store) -> Result<()> {
        let rows = store.keks().await?;
        let mut map = BTreeMap::new();
        for row in rows {
            let kek = self.root.unwrap_kek(row.version, &row.wrapped).map_err(|_| {
                ServiceError::Internal(format!(
                    "KEK version {} does not unwrap with this root key: is the right master key configured?",
                    row.version
                ))
            })?;
            map.insert(row.version, kek);
        }
        *self.keks.write().map_err(internal)? = map;
        Ok(())
    }

    /// The highest version in the database, reloading if this process has not seen it.
    async fn active(&self, store: &Store) -> Result<u32> {
        let newest = store.keks().await?.last().map(|k| k.version).unwrap_or(0);
        let known = self
            .keks
            .read()
            .map_err(internal)?
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        if newest != known {
            self.reload(store).await?;
        }
        Ok(newest)
    }

    /// Wraps `dek` for `blob` under the active KEK; returns the wrapped key and the version.
    pub(crate) async fn wrap(
        &self,
        store: &Store,
        blob: &BlobId,
        dek: &DataKey,
    ) -> Result<(Vec<u8>, u32)> {
        let version = self.active(store).await?;
        let keks = self.keks.read().map_err(internal)?;
        let kek = keks
            .get(&version)
            .ok_or_else(|| internal("active KEK missing"))?;
        Ok((kek.wrap_dek(blob.as_str(), dek), version))
    }

    /// The active KEK version as the database records it now.
    pub(crate) async fn active_version(&self, store: &Store) -> Result<u32> {
        self.active(store).await
    }

    /// Unwraps a blob's data key.
    pub(crate) async fn data_key(&self, store: &Store, blob: &BlobRow) -> Result<DataKey> {
        let known = self
            .keks
            .read()
            .map_err(internal)?
            .contains_key(&blob.kek_version);
        if !known {
            self.reload(store).await?;
        }
        let keks = self.keks.read().map_err(internal)?;
        let kek = keks
            .get(&blob.kek_version)
            .ok_or_else(|| internal(format!("KEK version {} is missing", blob.kek_version)))?;
        kek.unwrap_dek(blob.id.as_str(), &blob.wrapped_dek)
            .map_err(|_| {
                ServiceError::Internal(format!(
                    "data key of blob {} failed to unwrap (tampered row?)",
                    blob.id
                ))
            })
    }
}

impl Keyring {
    /// Which KEK is active and how many data keys each version wraps.
    pub(crate) async fn status(&self, ctx: &Ctx) -> Result<KeyStatus> {
        let active_version = self.active(&ctx.store).await?;
        let data_keys = ctx
            .store
            .blob_counts_by_kek()
            .await?
            .into_iter()
            .map(|(v, n)| (v.to_string(), n))
            .collect();
        Ok(KeyStatus {
            active_version,
            data_keys,
        })
    }

    /// Creates a new KEK version and rewraps every data key under it, in batches, reporting
    /// `(done, total)` after each batch. Blob contents are not touched: cost grows with the number
    /// of objects, not their size. Versions nothing uses any more are deleted at the end.
    pub(crate) async fn rotate(
        &self,
        ctx: &Ctx,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<RotationReport> {
        const BATCH: u32 = 2000;
        let ring = self;
        let previous = ring.active(&ctx.store).await?;
        let version = previous + 1;
        let kek = Kek::generate(version);
        let mut tx = ctx.store.begin().await?;
        tx.insert_kek(
            &KekRow {
                version,
                wrapped: ring.root.wrap_kek(&kek),
            },
            ctx.clock.now(),
        )
        .await?;
        tx.commit().await?;
        ring.reload(&ctx.store).await?;

        let total: u64 = ctx
            .store
            .blob_counts_by_kek()
            .await?
            .into_iter()
            .filter(|(v, _)| *v != version)
            .map(|(_, n)| n)
            .sum();
        let mut done = 0_u64;
        progress(done, total);
        loop {
            let batch = ctx.store.blobs_not_under(version, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            let mut rewrapped = Vec::with_capacity(batch.len());
            {
                let keks = ring.keks.read().map_err(internal)?;
                let new = keks
                    .get(&version)
                    .ok_or_else(|| internal("new KEK missing"))?;
                for blob in &batch {
                    let old = keks.get(&blob.kek_version).ok_or_else(|| {
                        internal(format!("KEK version {} is missing", blob.kek_version))
                    })?;
                    let dek = old
                        .unwrap_dek(blob.id.as_str(), &blob.wrapped_dek)
                        .map_err(|_| {
                            internal(format!("data key of blob {} failed to unwrap", blob.id))
                        })?;
                    rewrapped.push(new.wrap_dek(blob.id.as_str(), &dek));
                }
            }
            let mut tx = ctx.store.begin().await?;
            for (blob, wrapped) in batch.iter().zip(&rewrapped) {
                tx.rewrap_blob(&blob.id, blob.kek_version, version, wrapped)
                    .await?;
            }
            tx.commit().await?;
            done += batch.len() as u64;
            progress(done, total.max(done));
        }
        let mut tx = ctx.store.begin().await?;
        let retired_versions = tx.retire_unused_keks(version).await?;
        tx.commit().await?;
        ring.reload(&ctx.store).await?;
        tracing::info!(
            active_version = version,
            rewrapped = done,
            ?retired_versions,
            "key rotation complete"
        );
        Ok(RotationReport {
            active_version: version,
            rewrapped: done,
            retired_versions,
        })
    }
}
