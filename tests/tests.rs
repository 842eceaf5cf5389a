//! Integration tests: real nodes on 127.0.0.1, in-process and as real processes.

mod it {
    pub mod cli;
    pub mod cluster;
    pub mod common;
    pub mod editor;
    pub mod hostile;
    pub mod join;
}
