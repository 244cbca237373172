//! The state model: one type for what the kernel holds (ActualState) and what this plugin
//! wants (DesiredState), per netns, keyed by the kernel's own identity and normalised so
//! that "equal" means what the kernel means. It is also the snapshot/fixture JSON format.
//! Pure data plus what the kernel does with an op (`apply`); no I/O here. One file per kind:
//! `addr` (families, host prefixes, MACs), `route`, `rule`, `neighbour`, `sysctl`, `netns`
//! (a netns's state and a snapshot of both), `ownership` (what an attachment may touch),
//! `desired`, `record`, `op`, `apply`. Each object's `Display` is its `ip` notation
//! (`notation` holds the shared words), so naming an object needs no presentation module.
//! Every type is re-exported here: `model::X`.

mod addr;
mod apply;
mod desired;
mod neighbour;
mod netns;
pub(crate) mod notation;
mod op;
mod ownership;
mod record;
mod route;
mod rule;
mod sysctl;

pub use addr::*;
pub use desired::*;
pub use neighbour::*;
pub use netns::*;
pub use op::*;
pub use ownership::*;
pub use record::*;
pub use route::*;
pub use rule::*;
pub use sysctl::*;

/// The protocol number stamped on every route, rule and neighbour router creates, so that
/// ownership is provable from the kernel alone. Not used by iproute2's rt_protos nor by a
/// well-known routing daemon (bird 12, zebra/FRR 11 and 186-198, Calico 80, babel 42).
pub const ROUTER_PROTOCOL: u8 = 176;
/// RTPROT_BOOT: what `ip route add` stamps; used for routes restored without a record.
pub const PROTOCOL_BOOT: u8 = 3;
/// RTPROT_KERNEL: routes the kernel derives from addresses.
pub const PROTOCOL_KERNEL: u8 = 2;
pub const MAIN_TABLE: u32 = 254;
/// The metric the kernel gives an IPv6 route added without one.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
