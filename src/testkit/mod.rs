//! testkit: the test doubles and builders every test shares, unit and integration alike:
//! `build` (one builder per kernel object) and, with the `live` feature whose traits it
//! implements, `ModelKernel` (the in-memory kernel).
//! Compiled for the crate's own tests and behind the `testkit` feature; production code
//! must not use it.

pub mod build;
#[cfg(feature = "live")]
mod kernel;

#[cfg(feature = "live")]
pub use kernel::ModelKernel;
