//! Rows 1 and 2: peerdoc's document layer against raw yrs, in one process, same loops.

use std::hint::black_box;
use std::time::Instant;

use peerdoc::core::doc::{Document, TEXT_NAME};
use peerdoc::core::envelope::{DocKey, Keyring};
use peerdoc::core::sync::gossip;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update,
};

use crate::report::{median, percentile, Row};
use crate::trace::{Edit, Trace};

/// A raw yrs document as peerdoc configures its own (UTF-16 offsets, one text named
/// `content`): the reference.
pub fn raw_doc() -> (Doc, TextRef) {
    let doc = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    });
    let text = doc.get_or_insert_text(TEXT_NAME);
    (doc, text)
}

/// One transaction per edit, each producing its update (what a replica sends), in raw yrs.
fn replay_raw(edits: &[Edit]) -> (f64, Doc) {
    let (doc, text) = raw_doc();
    let start = Instant::now();
    for e in edits {
        let mut txn = doc.transact_mut();
        if e.delete > 0 {
            text.remove_range(&mut txn, e.at, e.delete);
        }
        if !e.insert.is_empty() {
            text.insert(&mut txn, e.at, &e.insert);
        }
        black_box(txn.encode_update_v1());
    }
    (start.elapsed().as_secs_f64() * 1e3, doc)
}

/// The same through peerdoc's [`Document`].
fn replay_peerdoc(edits: &[Edit]) -> (f64, Document) {
    let mut doc = Document::new();
    let start = Instant::now();
    for e in edits {
        black_box(doc.splice(e.at, e.delete, &e.insert));
    }
    (start.elapsed().as_secs_f64() * 1e3, doc)
}

/// Row 1: replaying the trace. Returns the row and the final document (checked against the
/// trace's final text).
pub fn replay(trace: &Trace, runs: usize) -> anyhow::Result<(Row, Document)> {
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let (ms, doc) = replay_raw(&trace.edits);
        raw.push(ms);
        drop(doc);
        let (ms, doc) = replay_peerdoc(&trace.edits);
        ours.push(ms);
        last = Some(doc);
    }
    let doc = last.ok_or_else(|| anyhow::anyhow!("no runs"))?;
    if let Some(end) = &trace.end {
        anyhow::ensure!(
            doc.text() == *end,
            "replaying {} did not give its final text",
            trace.name
        );
    }
    let row = Row::new(
        "1",
        &format!(
            "replay {} ({} edits), one transaction per edit",
            trace.name,
            trace.edits.len()
        ),
        "ms",
        median(&ours),
        median(&raw),
        "raw yrs, same loop",
        1.25,
        None,
    );
    Ok((row, doc))
}

/// Keystrokes an editor makes on `base`: single characters typed (and one in ten deleted) at
/// random places, each as the update the editor's transaction produces.
fn keystrokes(base: &[u8], count: usize, seed: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let (editor, text) = raw_doc();
    editor
        .transact_mut()
        .apply_update(Update::decode_v1(base)?)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut updates = Vec::with_capacity(count);
    for _ in 0..count {
        let mut txn = editor.transact_mut();
        let len = text.len(&txn);
        let at = rng.gen_range(0..=len);
        if rng.gen_ratio(1, 10) && at < len {
            text.remove_range(&mut txn, at, 1);
        } else {
            text.insert(&mut txn, at, "x");
        }
        updates.push(txn.encode_update_v1());
    }
    Ok(updates)
}

/// Row 2: what one keystroke from an editor costs on a long document: apply, encode the delta,
/// seal it for the network. Reference: raw yrs decode, apply, encode.
pub fn keystroke(doc: &Document, count: usize) -> anyhow::Result<Vec<Row>> {
    let base = doc.encode_state();
    let updates = keystrokes(&base, count, 7)?;

    let (raw, _) = raw_doc();
    raw.transact_mut().apply_update(Update::decode_v1(&base)?)?;
    let mut reference = Vec::with_capacity(count);
    for u in &updates {
        let start = Instant::now();
        let mut txn = raw.transact_mut();
        txn.apply_update(Update::decode_v1(u)?)?;
        black_box(txn.encode_update_v1());
        drop(txn);
        reference.push(start.elapsed().as_secs_f64() * 1e3);
    }

    let mut ours_doc = Document::new();
    ours_doc.apply(&base)?;
    let keys = Keyring::new(0, DocKey::random());
    let topic = [7u8; 32];
    let mut ours = Vec::with_capacity(count);
    let mut sealing = Vec::with_capacity(count);
    for u in &updates {
        let start = Instant::now();
        let applied = ours_doc.apply(u)?;
        let applied_at = Instant::now();
        if let Some(delta) = applied.delta {
            let message = gossip::for_local_edit(&ours_doc, delta);
            black_box(gossip::seal(&keys, &topic, &message));
        }
        ours.push(start.elapsed().as_secs_f64() * 1e3);
        sealing.push(applied_at.elapsed().as_secs_f64() * 1e3);
    }
    eprintln!(
        "row 2: p50 {:.4} ms of which sealing (envelope encryption) {:.4} ms",
        median(&ours),
        median(&sealing)
    );
    let raw_text = raw
        .get_or_insert_text(TEXT_NAME)
        .get_string(&raw.transact());
    anyhow::ensure!(ours_doc.text() == raw_text, "keystroke replicas differ");
    anyhow::ensure!(
        ours_doc.state_vector() == raw.transact().state_vector().encode_v1(),
        "keystroke replicas differ"
    );
    let chars = raw_text.chars().count();
    let name = |p: &str| {
        format!("local edit on a {chars}-char document, {p} per keystroke ({count} keystrokes): apply, encode, seal for the network")
    };
    Ok(vec![
        Row::new(
            "2 p50",
            &name("p50"),
            "ms",
            median(&ours),
            median(&reference),
            "raw yrs decode + apply + encode",
            1.5,
            Some(1.0),
        ),
        Row::new(
            "2 p99",
            &name("p99"),
            "ms",
            percentile(&ours, 99.0),
            percentile(&reference, 99.0),
            "raw yrs decode + apply + encode",
            1.5,
            Some(1.0),
        ),
    ])
}

/// The raw yrs encoding of a document's whole state (row 10's reference, row 4's payload).
pub fn raw_encoded(doc: &Document) -> anyhow::Result<Vec<u8>> {
    let (raw, _) = raw_doc();
    raw.transact_mut()
        .apply_update(Update::decode_v1(&doc.encode_state())?)?;
    let encoded = raw
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    Ok(encoded)
}
