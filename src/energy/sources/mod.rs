//! Every place pew can read energy from, each behind [`EnergySource`](super::EnergySource).

#[cfg(test)]
pub mod fakes;
pub mod ina;
pub mod mqtt;
pub mod open;
pub mod power_supply;
pub mod trace;
pub mod vedirect;
pub mod wittypi;
