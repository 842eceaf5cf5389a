//! `peerdoc status` for people: a node's addresses, reachability, peers and each document's
//! sync state, in words a user can act on.

use peerdoc::api::dto::{DocPeer, DocStatus, Status};

fn reachability(nat: &str) -> &'static str {
    match nat {
        "public" => "public (other nodes can connect to this one)",
        "private" => "private (behind a NAT or firewall; reachable through relays)",
        _ => "unknown (not tested yet)",
    }
}

/// `editor` is the web editor's URL with the access token, if the CLI knows it.
pub(super) fn print_status(s: &Status, editor: Option<&str>) {
    match &s.name {
        Some(name) => println!("name:      {name}"),
        None => println!("name:      (none: members see the peer id; `peerdoc name NAME`)"),
    }
    println!("peer id:   {}", s.peer_id);
    println!("data dir:  {}", s.data_dir);
    if let Some(http) = &s.http {
        println!("http api:  http://{http}");
    }
    if let Some(editor) = editor {
        println!("web editor: {editor}");
    }
    println!("reachability: {}", reachability(&s.nat));
    println!("listening:");
    for a in &s.listen_addrs {
        println!("  {a}");
    }
    for (title, addrs) in [
        ("public addresses", &s.public_addrs),
        ("relayed addresses", &s.relayed_addrs),
        ("relays holding a reservation", &s.relays),
    ] {
        if !addrs.is_empty() {
            println!("{title}:");
            for a in addrs {
                println!("  {a}");
            }
        }
    }
    println!("connected peers: {}", s.connected_peers.len());
    for p in &s.connected_peers {
        println!("  {}  {}", p.peer, p.connection);
    }
    println!("documents: {}", s.docs.len());
    for d in &s.docs {
        println!("  {}  {}  {}", d.id, d.name, doc_state(d));
        for p in &d.peers {
            println!("    {}  {}", p.peer, peer_sync(p));
        }
    }
}

/// `n peer` or `n peers`.
fn peers(n: usize) -> String {
    format!("{n} peer{}", if n == 1 { "" } else { "s" })
}

/// `n operation` or `n operations`.
fn operations(n: u64) -> String {
    format!("{n} operation{}", if n == 1 { "" } else { "s" })
}

/// One document's state: removed, or its sync state.
fn doc_state(d: &DocStatus) -> String {
    match d.role.as_str() {
        "removed" => {
            "removed by the owner: this copy keeps what it had and syncs with no one".into()
        }
        _ => doc_sync(&d.peers),
    }
}

/// One document's sync state, in words a user can act on.
fn doc_sync(doc_peers: &[DocPeer]) -> String {
    let to_fetch = doc_peers.iter().map(|p| p.to_fetch).max().unwrap_or(0);
    let checked = doc_peers
        .iter()
        .filter(|p| p.last_sync_secs.is_some())
        .count();
    if doc_peers.is_empty() {
        "no peer with this document is online".into()
    } else if to_fetch > 0 {
        format!("catching up: {} to fetch", operations(to_fetch))
    } else if checked == 0 {
        format!("checking with {}…", peers(doc_peers.len()))
    } else {
        format!("up to date with {}", peers(checked))
    }
}

/// The sync state with one peer.
fn peer_sync(p: &DocPeer) -> String {
    let Some(secs) = p.last_sync_secs else {
        return "not checked yet".into();
    };
    let state = match p.state.as_str() {
        "catching_up" => format!("catching up: {} to fetch", operations(p.to_fetch)),
        "peer_behind" => format!(
            "up to date; the peer has yet to fetch {} from this node",
            operations(p.peer_lacks)
        ),
        _ => "up to date".into(),
    };
    format!("{state} (checked {secs} s ago)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(role: &str, peers: Vec<DocPeer>) -> DocStatus {
        DocStatus {
            id: "00".repeat(16),
            name: "notes".into(),
            role: role.into(),
            peers,
            state_vector: String::new(),
            digest: String::new(),
        }
    }

    #[test]
    fn a_removed_node_says_so_instead_of_a_sync_state() {
        assert_eq!(
            doc_state(&doc("writer", vec![])),
            "no peer with this document is online"
        );
        assert!(doc_state(&doc("removed", vec![])).starts_with("removed by the owner"));
    }
}
