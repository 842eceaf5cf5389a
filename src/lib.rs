pub mod doc;
pub mod envelope;
pub mod sync;
