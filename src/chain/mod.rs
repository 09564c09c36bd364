//! Everything that talks to an Ethereum node: the transport with its public-endpoint manners
//! (`rpc`), the connection to a verified chain (`client`), contract bindings, bounded log scans,
//! the one transaction sender and the log watcher.

pub mod bindings;
pub mod client;
pub mod facts;
pub mod logs;
pub mod poco;
pub mod presigns;
pub mod revert;
pub mod rpc;
pub mod sender;
pub mod watcher;
