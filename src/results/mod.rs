//! Task results: the digest the protocol expects, and the archive that carries the output
//! folder to IPFS and back.

pub mod archive;
pub mod digest;
