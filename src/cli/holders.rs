//! The holders commands' output: `replicate`, `replicas`, and the sealed documents in `ls`.

use std::time::Duration;

use peerdoc::api::dto::{HeldInfo, HolderInfo};
use peerdoc::core::access::short_peer;

fn ago(unix_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(u64::try_from(unix_secs).unwrap_or(0));
    if secs < 5 {
        "just now".into()
    } else {
        format!(
            "{} ago",
            indicatif::HumanDuration(Duration::from_secs(secs))
        )
    }
}

pub(super) fn print_replicated(holder: &HolderInfo) {
    println!(
        "{} holds the document now: {} in {} entries (sealed: it cannot read them)",
        holder.peer,
        indicatif::HumanBytes(holder.bytes),
        holder.entries
    );
}

pub(super) fn print_replicas(holders: &[HolderInfo]) {
    if holders.is_empty() {
        eprintln!(
            "no holders: ask an always-on node to keep the document with \
             `peerdoc replicate DOC HOLDER`"
        );
        return;
    }
    println!(
        "{:<52}  {:<8}  {:>9}  {:>7}  {:>7}  REACHED",
        "HOLDER", "STATE", "BYTES", "ENTRIES", "READ"
    );
    for h in holders {
        let state = if h.holds { "holds" } else { "released" };
        let reached = h.reached.map_or_else(|| "never".into(), ago);
        let by = h.decided_by.as_deref().map(short_peer).unwrap_or_default();
        println!(
            "{:<52}  {state:<8}  {:>9}  {:>7}  {:>7}  {reached}  (by {by})",
            h.peer,
            indicatif::HumanBytes(h.bytes).to_string(),
            h.entries,
            h.read,
        );
        if let Some(error) = &h.error {
            println!("    last exchange failed: {error}");
        }
    }
}

pub(super) fn print_held(held: &[HeldInfo]) {
    if held.is_empty() {
        return;
    }
    println!("held sealed for their members (this node cannot read them):");
    println!(
        "{:<32}  {:<16}  {:>9}  {:>7}  LAST WRITE",
        "ID", "TOPIC", "BYTES", "ENTRIES"
    );
    for h in held {
        let last = h
            .last_write_ms
            .map_or_else(|| "never".into(), |ms| ago((ms / 1000) as i64));
        println!(
            "{}  {:<16}  {:>9}  {:>7}  {last}  sealed",
            h.doc,
            &h.topic[..16.min(h.topic.len())],
            indicatif::HumanBytes(h.bytes).to_string(),
            h.entries,
        );
    }
}
