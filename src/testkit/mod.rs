//! testkit: the test doubles and builders every test shares, unit and integration alike:
//! `ModelKernel` (the in-memory kernel) and one builder per kernel object. Compiled for the
//! crate's own tests and behind the `testkit` feature; production code must not use it.

mod kernel;

pub use kernel::ModelKernel;
