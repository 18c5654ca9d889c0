//! Content: spaces and their assets. Uploads (streamed, encrypted, durable before visible),
//! downloads (whole or a range), renditions, download links and HLS playback.

use std::sync::Arc;

use strongroom_crypto::keys::{FieldKey, MacKey, RootKey};

use crate::ctx::Ctx;
use crate::jobs::queue::JobQueue;
use crate::keys::keyring::Keyring;

pub(crate) mod assets;
pub(crate) mod lifecycle;
pub(crate) mod links;
pub(crate) mod playback;
pub(crate) mod renditions;

/// Spaces, assets, renditions, links and playback.
pub struct ContentService {
    ctx: Arc<Ctx>,
    /// Wraps and unwraps each blob's data key.
    keyring: Arc<Keyring>,
    link_hasher: MacKey,
    playback_hasher: MacKey,
    /// Opens each HLS package's content key, for the player.
    hls_key_seal: FieldKey,
    /// An image or video upload queues its processing in the upload's transaction.
    queue: JobQueue,
}

/// The keys the content service derives from the root key (before the keyring takes the root
/// key itself).
pub(crate) struct ContentKeys {
    link_hasher: MacKey,
    playback_hasher: MacKey,
    hls_key_seal: FieldKey,
}

impl ContentService {
    pub(crate) fn keys(root: &RootKey) -> ContentKeys {
        ContentKeys {
            link_hasher: root.derive("link"),
            playback_hasher: root.derive("playback"),
            hls_key_seal: root.field_key("hls-key"),
        }
    }

    pub(crate) fn new(
        ctx: Arc<Ctx>,
        keys: ContentKeys,
        keyring: Arc<Keyring>,
        queue: JobQueue,
    ) -> ContentService {
        ContentService {
            ctx,
            keyring,
            link_hasher: keys.link_hasher,
            playback_hasher: keys.playback_hasher,
            hls_key_seal: keys.hls_key_seal,
            queue,
        }
    }
}
