//! router: a chained CNI meta plugin built as a declarative reconciler.
//! config + prevResult -> compile -> DesiredState; snapshot -> ActualState; plan -> ops;
//! execute applies them; render shows them. See ARCHITECTURE.md.
//!
//! The pure core (no I/O, no kernel, no runtime) builds on its own; the I/O side needs the
//! `live` feature (on by default; see Cargo.toml). The layers and the order modules may
//! import each other in are checked by `tests/layers.rs`.
//!
//! Layout. A module with submodules of code is a directory, `x/mod.rs`; a module without
//! any is a file, `x.rs`. Unit tests live beside the code they test, in a file of their
//! own: the module declares `#[cfg(test)] mod tests;` and its tests are in `x/tests.rs`
//! (for `x.rs` and `x/mod.rs` alike); tests in several parts put the parts in `x/tests/`,
//! declared from `x/tests.rs`. Integration tests are in `tests/`. Every test builds its
//! kernel objects with `testkit::build` and fakes the kernel with `testkit::ModelKernel`.

// The pure core.
pub mod compile;
pub mod config;
pub mod error;
pub mod model;
pub mod plan;
pub mod render;
pub mod report;

// The I/O side: files, netns threads, netlink, the reconciler over them, the commands.
#[cfg(feature = "live")]
pub mod agent;
#[cfg(feature = "live")]
pub mod atomic_write;
#[cfg(feature = "live")]
pub mod cache;
#[cfg(feature = "live")]
pub mod cli;
#[cfg(feature = "live")]
pub mod cni;
#[cfg(feature = "live")]
pub mod confined;
#[cfg(feature = "live")]
pub mod conflict;
#[cfg(feature = "live")]
pub mod execute;
#[cfg(feature = "live")]
pub mod install;
#[cfg(feature = "live")]
pub mod live;
#[cfg(feature = "live")]
pub mod logging;
#[cfg(feature = "live")]
pub mod netlink;
#[cfg(feature = "live")]
pub mod netns;
#[cfg(feature = "live")]
pub mod operator;
#[cfg(feature = "live")]
pub mod reconcile;
#[cfg(feature = "live")]
pub mod record;
#[cfg(feature = "live")]
pub mod rollout;
#[cfg(feature = "live")]
pub mod signals;
#[cfg(feature = "live")]
pub mod snapshot;

// The test doubles and builders (the crate's own tests, or the `testkit` feature).
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
