//! Bounded lists of multiaddrs on the wire, as tickets and member lists carry them:
//! `varuint` count · per address `varbuf` binary multiaddr (at most 256 bytes).

use multiaddr::Multiaddr;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

/// Longest address written or accepted, in bytes.
pub const MAX_ADDR_LEN: usize = 256;

/// Writes at most `max` of `addrs`, skipping any longer than [`MAX_ADDR_LEN`].
pub fn write_addrs(out: &mut Vec<u8>, addrs: &[Multiaddr], max: usize) {
    let addrs: Vec<&Multiaddr> = addrs
        .iter()
        .filter(|a| a.as_ref().len() <= MAX_ADDR_LEN)
        .take(max)
        .collect();
    out.write_var(addrs.len() as u32);
    for addr in addrs {
        out.write_buf(addr.as_ref());
    }
}

/// Reads a list of at most `max` addresses from untrusted bytes; the error says what is wrong.
pub fn read_addrs(r: &mut Cursor, max: usize) -> Result<Vec<Multiaddr>, &'static str> {
    let count: u32 = r.read_var().map_err(|_| "truncated address count")?;
    if count as usize > max {
        return Err("too many addresses");
    }
    let mut addrs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let raw = r.read_buf().map_err(|_| "truncated address")?;
        if raw.len() > MAX_ADDR_LEN {
            return Err("address too long");
        }
        addrs.push(Multiaddr::try_from(raw.to_vec()).map_err(|_| "bad address")?);
    }
    Ok(addrs)
}
