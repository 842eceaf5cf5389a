//! Two people at home behind NAT routers, a public relay, and the ways they meet: hole punching,
//! staying relayed, the DHT, twin private subnets, mDNS, and a relay restart.

use super::{Lab, Nat};

/// A document big enough to need many sync chunks and more than 1 MiB of relayed traffic.
fn big_text(tag: &str) -> String {
    (0..20_000)
        .map(|i| format!("{tag} line {i:05} of a document that will not fit in one message\n"))
        .collect()
}

/// A relay and two homes (one host each) with the given NAT and LAN prefixes; both users
/// bootstrap from the relay and hold a reservation on it. Returns (lab, relay, a, b, bootstrap).
fn two_homes(nat: Nat, lan_a: &str, lan_b: &str) -> (Lab, usize, usize, usize, String) {
    let mut lab = Lab::new();
    let (relay, bootstrap) = lab.relay();
    let home_a = lab.home("a", nat, "198.51.100.1", lan_a, &["alice"]);
    let home_b = lab.home("b", nat, "198.51.100.2", lan_b, &["bob"]);
    let a = lab.user(&home_a[0], "alice", &bootstrap);
    let b = lab.user(&home_b[0], "bob", &bootstrap);
    for user in [a, b] {
        lab.wait_status(user, "knows it is behind a NAT", |s| s["nat"] == "private");
        lab.wait_reserved(user);
    }
    (lab, relay, a, b, bootstrap)
}

/// Alice creates and shares a document; Bob joins with the ticket alone. Returns the doc id.
fn share(lab: &Lab, a: usize, b: usize, text: &str) -> String {
    let doc = lab.ok(a, &["new", "notes", "--plain"], None);
    lab.ok(a, &["write", &doc], Some(text));
    let ticket = lab.ok(a, &["share", &doc], None);
    lab.ok(b, &["join", &ticket], None);
    doc
}

#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn behind_cone_nats_a_hole_is_punched_and_sync_goes_direct() {
    let (lab, _relay, a, b, _) = two_homes(Nat::Cone, "10.0.1", "10.0.2");
    let doc = share(&lab, a, b, "hello from alice\n");
    assert_eq!(lab.ok(b, &["cat", &doc], None), "hello from alice");
    let alice = lab.peer_id(a);
    lab.wait_connection(b, &alice, "direct");
    // Edits flow over the direct connection (the relayed one is closed once it exists).
    lab.ok(a, &["write", "--append", &doc], Some("more from alice\n"));
    lab.ok(b, &["write", "--append", &doc], Some("and from bob\n"));
    let text = lab.wait_converged(&[a, b], &doc, |t| {
        t.contains("more from alice") && t.contains("and from bob")
    });
    assert!(text.starts_with("hello from alice\n"), "{text:?}");
    assert_eq!(lab.connection(b, &alice).as_deref(), Some("direct"));
    let bob = lab.peer_id(b);
    lab.wait_status(
        a,
        "is connected to bob directly, the relayed connection gone",
        |s| {
            s["connected_peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["peer"] == bob.as_str() && p["connection"] == "direct")
        },
    );
}

#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn behind_symmetric_nats_peers_stay_relayed_and_large_documents_sync_both_ways() {
    let (lab, _relay, a, b, _) = two_homes(Nat::Symmetric, "10.0.1", "10.0.2");
    let big_a = big_text("alice");
    assert!(big_a.len() > 1 << 20);
    let doc = share(&lab, a, b, &big_a);
    assert_eq!(lab.ok(b, &["cat", &doc], None), big_a.trim_end());
    let big_b = big_text("bob");
    lab.ok(b, &["write", "--append", &doc], Some(&big_b));
    let text = lab.wait_converged(&[a, b], &doc, |t| t.len() == big_a.len() + big_b.len());
    assert!(text.ends_with(&big_b), "bob's half arrived whole");
    let bob = lab.peer_id(b);
    assert_eq!(
        lab.connection(a, &bob).as_deref(),
        Some("relayed"),
        "no hole can be punched through symmetric NATs"
    );
}

#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn a_member_with_no_addresses_finds_the_others_through_the_dht() {
    let (mut lab, _relay, a, b, bootstrap) = two_homes(Nat::Symmetric, "10.0.1", "10.0.2");
    let doc = share(&lab, a, b, "found through the dht\n");
    // Carol knows only the relay, and her ticket carries no address at all.
    let carol_ns = lab.public_host("carol", "198.51.100.30");
    let c = lab.user(&carol_ns, "carol", &bootstrap);
    let ticket = lab.ok(a, &["share", &doc], None);
    let bare = strip_addresses(&ticket);
    lab.ok(c, &["join", &bare], None);
    lab.ok(c, &["write", "--append", &doc], Some("carol was here\n"));
    lab.wait_converged(&[a, b, c], &doc, |t| t.contains("carol was here"));
}

#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn two_homes_on_the_same_private_subnet_do_not_confuse_each_other() {
    // Both LANs are 10.0.1.0/24 and both hosts are 10.0.1.2.
    let (lab, _relay, a, b, _) = two_homes(Nat::Cone, "10.0.1", "10.0.1");
    let doc = share(&lab, a, b, "same subnet\n");
    lab.ok(b, &["write", "--append", &doc], Some("still works\n"));
    lab.wait_converged(&[a, b], &doc, |t| t.contains("still works"));
    // 10.0.1.2 in alice's ticket is bob's own address: the direct path must be the one through
    // the routers' public addresses, punched like any other.
    let alice = lab.peer_id(a);
    lab.wait_connection(b, &alice, "direct");
}

#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn two_nodes_on_one_lan_find_each_other_with_mdns() {
    let mut lab = Lab::new();
    let hosts = lab.home(
        "home",
        Nat::Cone,
        "198.51.100.1",
        "10.0.1",
        &["desk", "laptop"],
    );
    // No bootstrap, no relay: only multicast DNS on the LAN.
    let desk = lab.start(&hosts[0], "desk", "mdns = true\n", &[]);
    let laptop = lab.start(&hosts[1], "laptop", "mdns = true\n", &[]);
    let doc = lab.ok(desk, &["new", "lan notes", "--plain"], None);
    lab.ok(desk, &["write", &doc], Some("on the lan\n"));
    let bare = strip_addresses(&lab.ok(desk, &["share", &doc], None));
    let desk_id = lab.peer_id(desk);
    lab.wait_status(laptop, "found the desk by mDNS", |s| {
        s["connected_peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer"] == desk_id.as_str())
    });
    lab.ok(laptop, &["join", &bare], None);
    assert_eq!(lab.ok(laptop, &["cat", &doc], None), "on the lan");
}

#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn editing_resumes_after_the_relay_restarts() {
    let (mut lab, relay, a, b, _) = two_homes(Nat::Symmetric, "10.0.1", "10.0.2");
    let doc = share(&lab, a, b, "before the restart\n");
    lab.restart(relay);
    // Reservations come back without anyone doing anything, and so does the connection.
    for user in [a, b] {
        lab.wait_reserved(user);
    }
    lab.ok(a, &["write", "--append", &doc], Some("after the restart\n"));
    let text = lab.wait_converged(&[a, b], &doc, |t| t.contains("after the restart"));
    assert!(text.starts_with("before the restart\n"), "{text:?}");
}

/// The same ticket without any address.
fn strip_addresses(ticket: &str) -> String {
    let mut ticket = peerdoc::core::ticket::Ticket::decode(ticket).unwrap();
    ticket.addrs.clear();
    ticket.encode()
}

#[test]
#[ignore = "tier 2: needs root and the network lab (scripts/test.sh runs it)"]
fn behind_symmetric_nats_and_never_online_together_members_meet_through_the_relay_as_holder() {
    let (mut lab, relay, a, b, bootstrap) = two_homes(Nat::Symmetric, "10.0.1", "10.0.2");
    let doc = share(&lab, a, b, "monday\n");
    // The relay holds documents by default; Alice asks it to hold this one.
    let held = lab.ok(a, &["replicate", &doc, &bootstrap], None);
    assert!(held.contains("holds the document now"), "{held}");
    lab.wait_status(b, "has heard of the holder", |_| {
        let json = lab.ok(b, &["replicas", &doc, "--json"], None);
        let replicas: serde_json::Value = serde_json::from_str(&json).unwrap();
        replicas[0]["reached"].is_number()
    });
    lab.stop(b);
    // From here on, never both online: each writes, stops, and the other reads it from the relay.
    let mut expected = "monday\n".to_string();
    for (round, (writer, reader)) in [(a, b), (b, a), (a, b), (b, a)].into_iter().enumerate() {
        let line = format!("round {round}\n");
        lab.ok(writer, &["write", "--append", &doc], Some(&line));
        expected.push_str(&line);
        lab.stop(writer);
        lab.restart(reader);
        let want = expected.trim_end().to_string();
        lab.wait_status(reader, "has what the other wrote, from the holder", |_| {
            lab.ok(reader, &["cat", &doc], None) == want
        });
    }
    // The relay keeps it sealed.
    let ls = lab.ok(relay, &["ls"], None);
    assert!(ls.contains("sealed") && ls.contains(&doc), "{ls}");
    let out = lab.cli(relay, &["cat", &doc], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read it"));
}
