//! Everything that talks to an Ethereum node: contract bindings and (later) the one
//! transaction sender and the log watcher.

pub mod bindings;
pub mod client;
pub mod facts;
pub mod logs;
pub mod poco;
pub mod revert;
pub mod sender;
pub mod watcher;
