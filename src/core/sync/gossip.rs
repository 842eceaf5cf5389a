//! Gossip, the live path: what a gossip message may be ([`Gossip`]), how it is sealed and
//! opened, whether a local edit is gossiped whole or announced, and what a received message
//! asks of the replica (apply, and pull when something is missing). The node's rooms and the
//! simulation make these decisions through the same functions.

use libp2p_identity::{ed25519, PeerId, PublicKey};

use super::{SyncError, YMessage, MAX_GOSSIP_UPDATE};
use crate::core::doc::{DocError, Document};
use crate::core::envelope::{Keyring, Purpose};
use crate::core::update_check::dependencies_v1;

/// What a gossip message's signature covers, before the topic and the envelope.
const SIGNING_CONTEXT: &[u8] = b"peerdoc/gossip/1";
/// Bytes before the envelope: the author's Ed25519 key and its signature.
pub const SIGNED_HEADER: usize = 32 + 64;

/// A message on a document's gossip topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gossip {
    /// An edit (a yrs update), small enough for gossip.
    Update(Vec<u8>),
    /// "I have this state" (a state vector): the announcement of an edit too big for gossip.
    Have(Vec<u8>),
    /// Presence of the author's local editors (an awareness update).
    Awareness(Vec<u8>),
}

impl Gossip {
    fn to_message(&self) -> YMessage {
        match self {
            Gossip::Update(u) => YMessage::Update(u.clone()),
            Gossip::Have(sv) => YMessage::SyncStep1(sv.clone()),
            Gossip::Awareness(a) => YMessage::Awareness(a.clone()),
        }
    }
}

/// Signs a sealed gossip message as `author`: `key(32) · signature(64) · envelope`. Gossipsub
/// runs anonymous, so this signature is how receivers know the author (and that it may write),
/// and it is checked once per message, after gossipsub's duplicate filter.
pub fn sign(author: &ed25519::Keypair, topic: &[u8; 32], sealed: &[u8]) -> Vec<u8> {
    let signature = author.sign(&signed_bytes(topic, sealed));
    let mut out = Vec::with_capacity(SIGNED_HEADER + sealed.len());
    out.extend_from_slice(&author.public().to_bytes());
    out.extend_from_slice(&signature);
    out.extend_from_slice(sealed);
    out
}

/// The author of a signed gossip message (its signature checked) and the sealed envelope.
pub fn verify<'a>(topic: &[u8; 32], data: &'a [u8]) -> Result<(PeerId, &'a [u8]), SyncError> {
    if data.len() < SIGNED_HEADER {
        return Err(SyncError::Malformed("gossip shorter than its signature"));
    }
    let (key, rest) = data.split_at(32);
    let (signature, sealed) = rest.split_at(64);
    let key = ed25519::PublicKey::try_from_bytes(key)
        .map_err(|_| SyncError::Malformed("gossip author is not an Ed25519 key"))?;
    if !key.verify(&signed_bytes(topic, sealed), signature) {
        return Err(SyncError::BadSignature);
    }
    Ok((PublicKey::from(key).to_peer_id(), sealed))
}

fn signed_bytes(topic: &[u8; 32], sealed: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + 32 + sealed.len());
    msg.extend_from_slice(SIGNING_CONTEXT);
    msg.extend_from_slice(topic);
    msg.extend_from_slice(sealed);
    msg
}

/// Seals a gossip message for the document's topic (then [`sign`] it).
pub fn seal(key: &Keyring, topic: &[u8; 32], gossip: &Gossip) -> Vec<u8> {
    let plain = match gossip {
        // The keystroke path: encoded without copying the update first.
        Gossip::Update(update) => YMessage::encode_update(update),
        other => other.to_message().encode(),
    };
    key.seal(topic, Purpose::Gossip, &plain)
}

/// Opens and decodes a sealed gossip envelope (what [`verify`] returns). Anything that does not
/// open with the key, does not decode, or is a y-protocols message that has no business on
/// gossip is an error (the caller rejects the message, so gossipsub penalises its sender).
pub fn open(key: &Keyring, topic: &[u8; 32], data: &[u8]) -> Result<Gossip, SyncError> {
    let plain = key.open(topic, Purpose::Gossip, data)?;
    match YMessage::decode(&plain)? {
        YMessage::Update(u) => Ok(Gossip::Update(u)),
        YMessage::SyncStep1(sv) => Ok(Gossip::Have(sv)),
        YMessage::Awareness(a) => Ok(Gossip::Awareness(a)),
        YMessage::SyncStep2(_) => Err(SyncError::NotGossip("sync step 2")),
        YMessage::QueryAwareness => Err(SyncError::NotGossip("query awareness")),
    }
}

/// What a local edit becomes on gossip: the edit itself if it fits, else an announcement of the
/// replica's new state (peers that are behind pull it).
pub fn for_local_edit(doc: &Document, delta: Vec<u8>) -> Gossip {
    if delta.len() > MAX_GOSSIP_UPDATE {
        Gossip::Have(doc.state_vector())
    } else {
        Gossip::Update(delta)
    }
}

/// What receiving an `Update` or a `Have` did to a replica.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The part that changed the replica (to store and show); `None` if nothing changed.
    pub delta: Option<Vec<u8>>,
    /// Pull from the sender: it has operations the replica still lacks.
    pub pull: bool,
    /// Not applied: the edit writes through a Yjs client no writer claimed (here, yet).
    /// Exchange rosters with the sender: the claim comes first, then the edit by a pull. So
    /// a removal can always name what it cuts (see `core::access::removal`).
    pub unclaimed: bool,
}

/// Applies a gossiped update if every client it writes through is `claimed` and its
/// predecessors are here; pulls otherwise. The update is walked once.
pub fn receive_update(
    doc: &mut Document,
    update: &[u8],
    claimed: impl Fn(u64) -> bool,
) -> Result<Received, DocError> {
    let deps = dependencies_v1(update).map_err(DocError::BadUpdate)?;
    if !deps.sections.iter().all(|(client, _, _)| claimed(*client)) {
        return Ok(Received {
            unclaimed: true,
            ..Received::default()
        });
    }
    let applied = doc.apply_complete_walked(update, &deps)?;
    Ok(Received {
        delta: applied.delta,
        pull: applied.incomplete,
        unclaimed: false,
    })
}

/// An announcement: pull only when the announcer has operations the replica lacks.
pub fn receive_have(doc: &Document, announced_sv: &[u8]) -> Result<Received, DocError> {
    Ok(Received {
        pull: doc.is_behind(announced_sv)?,
        ..Received::default()
    })
}

/// Merges runs of updates queued for one document into single updates (up to the gossip size
/// limit): when edits come faster than they are sent, one message carries several, with one
/// signature and one envelope. Nothing is held back: only what is already queued is merged.
/// Updates that do not merge (yrs refuses them) are sent as they are.
pub fn coalesce(queued: Vec<Gossip>) -> Vec<Gossip> {
    let mut out: Vec<Gossip> = Vec::with_capacity(queued.len());
    let mut run: Vec<Vec<u8>> = Vec::new();
    let mut run_len = 0;
    let flush = |run: &mut Vec<Vec<u8>>, out: &mut Vec<Gossip>| match run.len() {
        0 => {}
        1 => out.extend(run.drain(..).map(Gossip::Update)),
        _ => match yrs::merge_updates_v1(run.iter()) {
            Ok(merged) => {
                run.clear();
                out.push(Gossip::Update(merged));
            }
            Err(_) => out.extend(run.drain(..).map(Gossip::Update)),
        },
    };
    for gossip in queued {
        match gossip {
            Gossip::Update(update) => {
                if run_len + update.len() > MAX_GOSSIP_UPDATE {
                    flush(&mut run, &mut out);
                    run_len = 0;
                }
                run_len += update.len();
                run.push(update);
            }
            other => {
                flush(&mut run, &mut out);
                run_len = 0;
                out.push(other);
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_names_its_author_and_binds_the_topic_and_the_envelope() {
        let author = ed25519::Keypair::generate();
        let (topic, sealed) = ([3u8; 32], b"an envelope".to_vec());
        let signed = sign(&author, &topic, &sealed);
        let (who, envelope) = verify(&topic, &signed).unwrap();
        assert_eq!(who, PublicKey::from(author.public()).to_peer_id());
        assert_eq!(envelope, &sealed[..]);
        assert_eq!(verify(&[4u8; 32], &signed), Err(SyncError::BadSignature));
        let mut tampered = signed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(verify(&topic, &tampered), Err(SyncError::BadSignature));
        // Another key claiming the same signature.
        let mut claimed = signed.clone();
        claimed[..32].copy_from_slice(&ed25519::Keypair::generate().public().to_bytes());
        assert_eq!(verify(&topic, &claimed), Err(SyncError::BadSignature));
        assert!(matches!(
            verify(&topic, &signed[..SIGNED_HEADER - 1]),
            Err(SyncError::Malformed(_))
        ));
    }

    #[test]
    fn queued_updates_merge_into_one_message_in_order() {
        let mut author = Document::new();
        let a = author.append_text("a").unwrap();
        let b = author.append_text("b").unwrap();
        let c = author.append_text("c").unwrap();
        let presence = Gossip::Awareness(vec![1, 2]);
        let out = coalesce(vec![
            Gossip::Update(a),
            Gossip::Update(b),
            presence.clone(),
            Gossip::Update(c.clone()),
        ]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[1], presence);
        assert_eq!(out[2], Gossip::Update(c));
        let Gossip::Update(merged) = &out[0] else {
            panic!("a merged update first")
        };
        let mut reader = Document::new();
        reader.apply(merged).unwrap();
        assert_eq!(reader.text(), "ab");
        // Runs never pass the gossip size limit.
        let big: Vec<Gossip> = (0..4)
            .map(|_| Gossip::Update(author.append_text(&"x".repeat(20_000)).unwrap()))
            .collect();
        let out = coalesce(big);
        assert!(out.len() >= 2);
        assert!(out
            .iter()
            .all(|g| matches!(g, Gossip::Update(u) if u.len() <= MAX_GOSSIP_UPDATE)));
    }

    #[test]
    fn gossip_round_trips_and_refuses_other_messages() {
        let key = Keyring::test(5);
        let topic = [6; 32];
        for g in [
            Gossip::Update(vec![1, 2, 3]),
            Gossip::Have(Document::new().state_vector()),
            Gossip::Awareness(vec![1, 7, 3, 2, b'{', b'}']),
        ] {
            assert_eq!(open(&key, &topic, &seal(&key, &topic, &g)).unwrap(), g);
        }
        for not_gossip in [YMessage::SyncStep2(vec![0, 0]), YMessage::QueryAwareness] {
            let sealed = key.seal(&topic, Purpose::Gossip, &not_gossip.encode());
            assert!(matches!(
                open(&key, &topic, &sealed),
                Err(SyncError::NotGossip(_))
            ));
        }
        let sealed = seal(&key, &topic, &Gossip::Update(vec![1]));
        assert!(matches!(
            open(&Keyring::test(9), &topic, &sealed),
            Err(SyncError::Sealed(_))
        ));
    }

    #[test]
    fn big_edits_are_announced_small_ones_gossiped() {
        let mut doc = Document::new();
        let small = doc.append_text("hi").unwrap();
        assert_eq!(for_local_edit(&doc, small.clone()), Gossip::Update(small));
        let big = doc.append_text(&"x".repeat(MAX_GOSSIP_UPDATE + 1)).unwrap();
        assert_eq!(for_local_edit(&doc, big), Gossip::Have(doc.state_vector()));
    }

    #[test]
    fn receivers_pull_only_when_something_is_missing() {
        let mut author = Document::new();
        let first = author.append_text("one ").unwrap();
        let second = author.append_text("two").unwrap();
        let mut reader = Document::new();
        let gap = receive_update(&mut reader, &second, |_| true).unwrap();
        assert!(
            gap.pull,
            "an update without its predecessor asks for a pull"
        );
        let filled = receive_update(&mut reader, &first, |_| true).unwrap();
        assert!(filled.delta.is_some() && !filled.pull);
        // The early update was not kept: the author's state still shows what is missing.
        assert!(receive_have(&reader, &author.state_vector()).unwrap().pull);
        let diff = author.diff(&reader.state_vector()).unwrap();
        reader.apply_complete(&diff).unwrap();
        assert!(!receive_have(&reader, &author.state_vector()).unwrap().pull);
        author.append_text("!");
        assert!(receive_have(&reader, &author.state_vector()).unwrap().pull);
    }

    #[test]
    fn an_edit_through_an_unclaimed_client_changes_nothing_and_says_so() {
        let mut author = Document::with_client_id(41);
        let edit = author.append_text("hello").unwrap();
        let mut reader = Document::new();
        let before = reader.state_vector();
        let received = receive_update(&mut reader, &edit, |client| client != 41).unwrap();
        assert!(received.unclaimed && received.delta.is_none());
        assert_eq!(reader.state_vector(), before);
        let received = receive_update(&mut reader, &edit, |_| true).unwrap();
        assert!(!received.unclaimed && received.delta.is_some());
    }
}
