//! router: a chained CNI meta plugin built as a declarative reconciler.
//! config + prevResult -> compile -> DesiredState; snapshot -> ActualState; plan -> ops;
//! execute applies them; render shows them. See ARCHITECTURE.md.

pub mod agent;
pub mod atomic_write;
pub mod cache;
pub mod cli;
pub mod cni;
pub mod compile;
pub mod config;
pub mod confined;
pub mod conflict;
pub mod error;
pub mod execute;
pub mod install;
pub mod live;
pub mod logging;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod operator;
pub mod plan;
pub mod reconcile;
pub mod record;
pub mod render;
pub mod report;
pub mod signals;
pub mod snapshot;
