//! Where results and inputs live: IPFS through the Kubo RPC API.

pub mod ipfs;
