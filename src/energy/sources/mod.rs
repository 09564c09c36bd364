//! Every place pew can read energy from, each behind [`EnergySource`](super::EnergySource).

pub mod trace;
