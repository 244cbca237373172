//! Permanent neighbour entries; their `ip neigh` notation is their `Display`.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::notation::{proto_text, push_opt};
use super::{MacAddr, ROUTER_PROTOCOL};

/// A permanent neighbour entry. Only permanent entries are modelled: dynamic ones are the
/// kernel's cache, owned by nobody, and an add with replace overrides them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourKey {
    pub dev: String,
    pub addr: IpAddr,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    #[serde(flatten)]
    pub key: NeighbourKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lladdr: Option<MacAddr>,
    pub protocol: u8,
}

impl Neighbour {
    pub fn is_owned(&self) -> bool {
        self.protocol == ROUTER_PROTOCOL
    }
}

impl Neighbour {
    /// `replace` for adds too: it also overrides a dynamic entry the kernel cached meanwhile.
    pub fn ip_replace_command(&self) -> String {
        let mut words = vec![format!("ip neigh replace {}", self.key.addr)];
        push_opt(&mut words, "lladdr", self.lladdr);
        words.push(format!("dev {} nud permanent", self.key.dev));
        push_opt(
            &mut words,
            "proto",
            (self.protocol != 0).then(|| proto_text(self.protocol)),
        );
        words.join(" ")
    }

    pub fn ip_del_command(&self) -> String {
        format!("ip neigh del {} dev {}", self.key.addr, self.key.dev)
    }
}

/// `<addr> [lladdr <mac>] dev <dev> proto <n>`: a neighbour with all it holds.
impl fmt::Display for Neighbour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lladdr = self
            .lladdr
            .map(|mac| format!(" lladdr {mac}"))
            .unwrap_or_default();
        let (addr, dev, proto) = (self.key.addr, &self.key.dev, proto_text(self.protocol));
        write!(f, "{addr}{lladdr} dev {dev} proto {proto}")
    }
}
