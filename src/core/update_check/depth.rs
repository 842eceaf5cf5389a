//! How deep shared types nest. yrs deletes a type's content recursively: an element nested
//! 20,000 deep (a writer can send one in a few hundred KB) overflows the stack when it is
//! deleted, and a stack overflow aborts the whole node. So an update that would nest types
//! deeper than [`MAX_TYPE_DEPTH`] is refused before yrs sees it.
//!
//! The update's blocks are walked once more ([`type_depth_v1`], only for updates that hold
//! types), and each block's container is followed through the update: its parent item, or its
//! origin's container. A container in the document already counts as deep as the deepest type
//! the document may hold (the caller's bound), so the check never needs the document's tree.

use std::collections::HashMap;

use super::Walker;

/// Deepest nesting of shared types (a TipTap document nests a few levels per list or quote;
/// peerdoc's own writes stay within `rich::model::MAX_DEPTH` blocks, about 100 types).
pub const MAX_TYPE_DEPTH: usize = 256;

/// Where a block sits, as its encoding says.
#[derive(Debug, Clone, Copy)]
pub(super) enum Parent {
    /// In a root type.
    Root,
    /// In the type that item (client, clock) holds.
    Item(u64, u64),
    /// Beside that item (an origin): in the same container.
    Beside(u64, u64),
    /// Not said (a GC or skip block).
    Unknown,
}

/// One block of an update.
#[derive(Debug, Clone, Copy)]
pub(super) struct BlockRef {
    pub(super) client: u64,
    pub(super) clock: u64,
    pub(super) len: u64,
    pub(super) parent: Parent,
    /// It holds a shared type (content kind 7).
    pub(super) is_type: bool,
}

/// The deepest nesting of the types an update adds, if the document's types nest at most
/// `doc_depth` deep; an error if it would pass [`MAX_TYPE_DEPTH`] (or the blocks' containers
/// refer to one another in a circle).
pub fn type_depth_v1(bytes: &[u8], doc_depth: usize) -> Result<usize, String> {
    let mut walker = Walker::new(bytes);
    walker.blocks = Some(Vec::new());
    walker.update().map_err(|e| format!("bad update: {e}"))?;
    let blocks = walker.blocks.take().unwrap_or_default();
    let deepest = deepest_type(&blocks, doc_depth)?;
    if deepest > MAX_TYPE_DEPTH {
        return Err(format!(
            "bad update: shared types would nest {deepest} deep, more than {MAX_TYPE_DEPTH}"
        ));
    }
    Ok(deepest)
}

/// The deepest type among `blocks`: each block's container depth, found through the update
/// without recursion.
fn deepest_type(blocks: &[BlockRef], doc_depth: usize) -> Result<usize, String> {
    // A client's blocks come in clock order, one run per client section.
    let mut runs: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, block) in blocks.iter().enumerate() {
        runs.entry(block.client).or_default().push(i);
    }
    let find = |client: u64, clock: u64| -> Option<usize> {
        let run = runs.get(&client)?;
        let at = run.partition_point(|&i| blocks[i].clock + blocks[i].len <= clock);
        run.get(at)
            .copied()
            .filter(|&i| blocks[i].clock <= clock && clock < blocks[i].clock + blocks[i].len)
    };
    // The depth of the type each block is in (0: a root type).
    let mut container: Vec<Option<usize>> = vec![None; blocks.len()];
    let mut on_stack = vec![false; blocks.len()];
    let mut deepest = 0;
    for start in 0..blocks.len() {
        if !blocks[start].is_type {
            continue;
        }
        let mut stack = vec![start];
        while let Some(&top) = stack.last() {
            if container[top].is_some() {
                stack.pop();
                continue;
            }
            on_stack[top] = true;
            // The depth of `top`'s container, or the block to find first.
            let (depth, wait_for) = match blocks[top].parent {
                Parent::Root => (Some(0), None),
                Parent::Unknown => (Some(doc_depth), None),
                Parent::Item(client, clock) => match find(client, clock) {
                    None => (Some(doc_depth), None),
                    Some(j) if !blocks[j].is_type => {
                        return Err("bad update: a parent is not a shared type".into())
                    }
                    Some(j) => match container[j] {
                        Some(d) => (Some(d + 1), None),
                        None => (None, Some(j)),
                    },
                },
                Parent::Beside(client, clock) => match find(client, clock) {
                    None => (Some(doc_depth), None),
                    Some(j) => match container[j] {
                        Some(d) => (Some(d), None),
                        None => (None, Some(j)),
                    },
                },
            };
            match (depth, wait_for) {
                (Some(d), _) => {
                    container[top] = Some(d);
                    on_stack[top] = false;
                    stack.pop();
                }
                (None, Some(j)) if on_stack[j] => {
                    return Err("bad update: blocks are placed in a circle".into())
                }
                (None, Some(j)) => stack.push(j),
                (None, None) => unreachable!("a depth or a block to wait for"),
            }
        }
        deepest = deepest.max(container[start].unwrap_or(doc_depth) + 1);
    }
    Ok(deepest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, ReadTxn, StateVector, Transact, XmlElementPrelim, XmlFragment};

    /// An update of elements nested `depth` deep in `XmlFragment('x')`.
    fn nested(depth: usize) -> Vec<u8> {
        let doc = Doc::new();
        let frag = doc.get_or_insert_xml_fragment("x");
        let mut txn = doc.transact_mut();
        let mut el = frag.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
        for _ in 1..depth {
            el = el.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
        }
        drop(txn);
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        update
    }

    #[test]
    fn nesting_is_measured_and_a_deep_chain_refused() {
        assert_eq!(type_depth_v1(&nested(1), 0).unwrap(), 1);
        assert_eq!(type_depth_v1(&nested(40), 0).unwrap(), 40);
        // Built on a document whose types may already nest 100 deep.
        assert_eq!(type_depth_v1(&nested(40), 100).unwrap(), 40);
        assert!(type_depth_v1(&nested(MAX_TYPE_DEPTH + 1), 0).is_err());
        let err = type_depth_v1(&nested(20_000), 0).unwrap_err();
        assert!(err.contains("nest"), "{err}");
    }

    #[test]
    fn a_chain_built_on_the_document_counts_from_its_depth() {
        // A second update nests into the first one's innermost element: its container is in
        // the document, as deep as the document's bound says.
        let doc = Doc::new();
        let frag = doc.get_or_insert_xml_fragment("x");
        let mut el = frag.insert(&mut doc.transact_mut(), 0, XmlElementPrelim::empty("p"));
        let before = doc.transact().state_vector();
        {
            let mut txn = doc.transact_mut();
            for _ in 0..10 {
                el = el.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
            }
        }
        let update = doc.transact().encode_state_as_update_v1(&before);
        assert_eq!(type_depth_v1(&update, 1).unwrap(), 11);
        assert_eq!(type_depth_v1(&update, 240).unwrap(), 250);
        assert!(type_depth_v1(&update, 250).is_err());
    }
}
