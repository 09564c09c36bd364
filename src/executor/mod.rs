//! Running apps in Docker. For now: reading images from the local Docker Engine.

pub mod image;
