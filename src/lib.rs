//! pew, the Positive Energy Worker: an iExec-compatible worker node for solar-powered
//! Raspberry Pis, and the requester's SDK and CLI. See `docs/architecture.md` for the map.
#![warn(missing_docs)]

pub mod abi;
pub mod admission;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod config;
pub mod devnet;
pub mod energy;
pub mod executor;
pub mod failpoint;
pub mod files;
pub mod node;
pub mod poco;
pub mod results;
pub mod sdk;
pub mod storage;
pub mod text;
pub mod tools;
pub mod wallet;
