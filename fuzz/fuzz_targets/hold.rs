//! What a holder and its members read from each other: hold requests and responses, signed
//! entries, hold records and the parts of a change. Invariants: no decoder panics; whatever
//! decodes encodes back to the same bytes (one encoding per value); an entry or a hold record
//! that decodes carries a valid signature; parts join only in order.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdoc::core::access::HoldRecord;
use peerdoc::core::doc::DocId;
use peerdoc::core::hold::parts::{Assembler, Part};
use peerdoc::core::hold::{Entry, HoldRequest, HoldResponse};

fuzz_target!(|data: &[u8]| {
    let topic = DocId([3; 16]).topic();
    if let Ok(request) = HoldRequest::decode(data) {
        // Rosters inside may list certificates in any order; the request itself round-trips.
        assert_eq!(HoldRequest::decode(&request.encode()), Ok(request));
    }
    if let Ok(response) = HoldResponse::decode(data) {
        assert_eq!(HoldResponse::decode(&response.encode()), Ok(response));
    }
    if let Ok(entry) = Entry::decode(&topic, data) {
        assert_eq!(entry.encode(), data, "one encoding per entry");
    }
    if let Ok(record) = HoldRecord::decode(data) {
        assert_eq!(record.encode(), data, "one encoding per hold record");
    }
    let mut assembler = Assembler::default();
    for (offset, chunk) in data.chunks(7).enumerate() {
        if let Ok(part) = Part::decode(chunk) {
            let _ = assembler.push([1; 32], offset as u64, part);
        }
    }
    if let Some(from) = assembler.resume_from() {
        assert!(from < data.len() as u64);
    }
});
