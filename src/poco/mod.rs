//! The iExec PoCo protocol as pure functions over plain types: orders and their EIP-712
//! hashes and signatures, deal and task ids, result hash and seal, the worker authorization,
//! request params, tags, categories and RLC amounts. No I/O lives here, so every rule is
//! unit-tested against the vectors of PROTOCOL.md §15.

pub mod amount;
pub mod category;
pub mod consensus;
pub mod deal;
pub mod finish;
pub mod gas;
pub mod ids;
pub mod order;
pub mod params;
pub mod result;
pub mod tag;

pub use amount::Nrlc;
pub use category::Category;
pub use deal::DealFacts;
pub use ids::{DealId, OrderHash, TaskId};
pub use order::{AppOrder, DatasetOrder, OrderOperation, RequestOrder, WorkerpoolOrder};
pub use params::RequestParams;
pub use tag::Tag;
