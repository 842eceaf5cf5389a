//! Integration tests: real nodes on 127.0.0.1, in-process and as real processes.

// Tests fail loudly by design: unwrap is how a test says "this must work".
#![allow(clippy::unwrap_used)]
// The test modules are a private crate: `pub` only links them to each other.
#![allow(unreachable_pub)]

mod it {
    pub mod abuse;
    pub mod blobs;
    pub mod chaos;
    pub mod cli;
    pub mod cluster;
    pub mod common;
    pub mod daemon;
    pub mod discovery;
    pub mod editor;
    pub mod heal;
    pub mod history;
    pub mod hostile;
    pub mod http;
    pub mod join;
    pub mod lab;
    pub mod names;
    pub mod replicas;
    pub mod resources;
    pub mod roles;
    pub mod soak;
    pub mod trust;
}
