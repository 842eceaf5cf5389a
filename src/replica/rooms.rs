//! [`Rooms`]: the registry of rooms (awake or dormant), by document id and by topic (hash and
//! name). A small shared map of handles behind a lock that is never held across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::room::RoomHandle;
use crate::actor::unpoisoned;
use crate::core::doc::DocId;

#[derive(Clone, Default)]
pub(crate) struct Rooms {
    inner: Arc<RwLock<RoomsInner>>,
}

#[derive(Default)]
struct RoomsInner {
    by_id: HashMap<DocId, RoomHandle>,
    by_topic: HashMap<[u8; 32], DocId>,
    /// By gossipsub topic name, as gossip arrives: no decoding per message.
    by_topic_name: HashMap<String, DocId>,
}

impl Rooms {
    pub(crate) fn insert(&self, room: RoomHandle) {
        let mut inner = unpoisoned(self.inner.write());
        inner.by_topic.insert(room.topic, room.id);
        inner.by_topic_name.insert(room.topic_name.clone(), room.id);
        inner.by_id.insert(room.id, room);
    }
    pub(crate) fn remove(&self, id: &DocId) -> Option<RoomHandle> {
        let mut inner = unpoisoned(self.inner.write());
        let room = inner.by_id.remove(id)?;
        inner.by_topic.remove(&room.topic);
        inner.by_topic_name.remove(&room.topic_name);
        Some(room)
    }
    pub(crate) fn get(&self, id: &DocId) -> Option<RoomHandle> {
        unpoisoned(self.inner.read()).by_id.get(id).cloned()
    }
    pub(crate) fn by_topic(&self, topic: &[u8; 32]) -> Option<RoomHandle> {
        let inner = unpoisoned(self.inner.read());
        inner.handle(inner.by_topic.get(topic))
    }
    pub(crate) fn by_topic_name(&self, name: &str) -> Option<RoomHandle> {
        let inner = unpoisoned(self.inner.read());
        inner.handle(inner.by_topic_name.get(name))
    }
    pub(crate) fn all(&self) -> Vec<RoomHandle> {
        unpoisoned(self.inner.read())
            .by_id
            .values()
            .cloned()
            .collect()
    }
}

impl RoomsInner {
    fn handle(&self, id: Option<&DocId>) -> Option<RoomHandle> {
        id.and_then(|id| self.by_id.get(id)).cloned()
    }
}
