//! Everything that talks to an Ethereum node: the transport with its public-endpoint manners
//! (`rpc`), the connection to a verified chain (`client`), typed PoCo calls (`poco`), bounded
//! log scans, the one transaction sender and the log watcher. The contract bindings they use
//! are [`crate::abi`], a floor below, which the pure protocol code in [`crate::poco`] reads too.

pub mod client;
pub mod facts;
pub mod logs;
pub mod poco;
pub mod presigns;
pub mod revert;
pub mod rpc;
pub mod sender;
pub mod watcher;
