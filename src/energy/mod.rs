//! The energy module: measure the node's power system, forecast the sun, estimate the
//! battery, and admit work only when a solar surplus can carry it.
//!
//! - [`sample`]: the one reading type and the [`EnergySource`] trait every source implements.
//! - [`sources`]: INA219/226/260, Witty Pi 4, VE.Direct, `power_supply` sysfs, trace replay.
//! - [`battery`]: the state-of-charge estimator (coulomb counting with voltage resets).
//! - [`forecast`]: clear-sky model, Open-Meteo, online correction, P10/P50/P90.
//! - [`budget`]: the pure admission check (deadlines, forecast quantile, battery floor).
//! - [`gate`]: the node's [`AdmissionGate`](crate::admission::AdmissionGate) built on it.
//! - [`live`]: the running node's status, published for `pew energy status`.
//! - [`simulate`]: replays a trace and a job stream through the admission code.

pub mod i2c;
pub mod sample;
pub mod sources;

pub use sample::{BoardReading, EnergySource, RejectCounter, Sample, SourceError};
pub mod battery;
pub mod budget;
pub mod forecast;
pub mod gate;
pub mod live;
pub mod power;
pub mod runtime;
pub mod simulate;
