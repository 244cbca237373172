//! testkit: the test doubles and builders every test shares, unit and integration alike:
//! `build` (one builder per kernel object) and, with the `live` feature whose traits they
//! implement, `ModelKernel` (the in-memory kernel) and the `Arc` sharing of one double in
//! several roles (`shared`).
//! Compiled for the crate's own tests and behind the `testkit` feature; production code
//! must not use it.

pub mod build;
#[cfg(feature = "live")]
mod kernel;
#[cfg(feature = "live")]
mod shared;

#[cfg(feature = "live")]
pub use kernel::ModelKernel;
