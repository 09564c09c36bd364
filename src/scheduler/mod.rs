//! The workerpool role: the bid (a presigned workerpool order, opened and closed as the
//! admission gate says), the choice and matching of request orders, and the initialization of
//! our deals' tasks.

pub mod gate;
