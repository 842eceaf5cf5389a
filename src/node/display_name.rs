//! This node's display name: signed with its identity key, kept in the store (`meta`), set
//! from the config file at start or by [`Node::set_name`], and published to the sync driver
//! (which sends it in member exchanges) through a `watch` channel that only the node writes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libp2p_identity::ed25519;

use super::{Error, Node};
use crate::core::access::NameRecord;
use crate::replica::store::{unix_now_ms, Store};

/// The store's `meta` key for this node's own signed name.
const META_KEY: &str = "name";

/// The name to start with: the config file's (signed anew when it differs from the kept
/// one), else the one kept from the last [`Node::set_name`].
pub(super) async fn load(
    store: &Store,
    configured: Option<&str>,
    identity: &ed25519::Keypair,
) -> Result<Option<NameRecord>, Error> {
    let kept = match store.meta(META_KEY).await? {
        Some(text) => match URL_SAFE_NO_PAD
            .decode(&text)
            .ok()
            .and_then(|bytes| NameRecord::decode(&bytes).ok())
            .filter(|r| r.member == identity.public().to_bytes())
        {
            Some(record) => Some(record),
            None => {
                tracing::error!("the stored display name is damaged; it is ignored");
                None
            }
        },
        None => None,
    };
    match configured {
        Some(name) => {
            let wanted = crate::core::access::name::check_name(name)?;
            match kept {
                Some(record) if record.name == wanted => Ok(Some(record)),
                kept => Ok(Some(
                    sign_and_keep(store, wanted, kept.as_ref(), identity).await?,
                )),
            }
        }
        None => Ok(kept),
    }
}

/// Signs `name` dated now (after `previous`, so it replaces it everywhere) and keeps it.
async fn sign_and_keep(
    store: &Store,
    name: &str,
    previous: Option<&NameRecord>,
    identity: &ed25519::Keypair,
) -> Result<NameRecord, Error> {
    let at = unix_now_ms().max(previous.map_or(0, |p| p.at_ms + 1));
    let record = NameRecord::sign(name, at, identity)?;
    store
        .set_meta(META_KEY, Some(URL_SAFE_NO_PAD.encode(record.encode())))
        .await?;
    Ok(record)
}

impl Node {
    /// This node's display name, if it has one.
    pub fn name(&self) -> Option<String> {
        self.inner.name.borrow().as_ref().map(|r| r.name.clone())
    }

    /// Sets this node's display name (trimmed; at most 64 bytes, no control characters): it
    /// is signed, kept, and sent to the members of every document at the next member
    /// exchange, which this call starts at once. Refused when the config file sets the name.
    pub async fn set_name(&self, name: &str) -> Result<String, Error> {
        if let Some(configured) = &self.inner.config.name {
            return Err(Error::NameInConfig(configured.clone()));
        }
        let name = crate::core::access::name::check_name(name)?;
        let previous = self.inner.name.borrow().clone();
        if previous.as_ref().is_some_and(|p| p.name == name) {
            return Ok(name.to_string());
        }
        let record = sign_and_keep(
            &self.inner.store,
            name,
            previous.as_ref(),
            &self.inner.identity,
        )
        .await?;
        self.inner.name.send_replace(Some(record));
        for room in self.inner.rooms.all() {
            self.inner.sync.changed(room.id).await;
        }
        Ok(name.to_string())
    }
}
