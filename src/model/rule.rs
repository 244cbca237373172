//! Policy rules: everything a rule matches on plus its action; its `ip rule` notation is
//! its `Display`.

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::notation::{ip_word, net_text, proto_text, push_opt, table_name, tos_text};
use super::{is_default, Family, ROUTER_PROTOCOL};

/// FR_ACT_TO_TBL is the only rule action router creates; other actions are carried so
/// that they never compare equal to a lookup rule.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    #[default]
    Lookup,
    Goto,
    Nop,
    Blackhole,
    Unreachable,
    Prohibit,
    Other,
}

/// The kernel's identity of a policy rule: everything it matches on plus its action.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    pub family: Family,
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmask: Option<u32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tos: u8,
    #[serde(default, skip_serializing_if = "is_default")]
    pub invert: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub action: RuleAction,
    pub table: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    #[serde(flatten)]
    pub key: RuleKey,
    pub protocol: u8,
}

impl Rule {
    pub fn is_owned(&self) -> bool {
        self.protocol == ROUTER_PROTOCOL
    }

    /// A `lookup` rule owned by router, selectors masked.
    pub fn owned_lookup(
        family: Family,
        priority: u32,
        from: Option<IpNet>,
        to: Option<IpNet>,
        table: u32,
    ) -> Rule {
        Rule {
            key: RuleKey {
                family,
                priority,
                from: from.map(|n| n.trunc()),
                to: to.map(|n| n.trunc()),
                iif: None,
                oif: None,
                fwmark: None,
                fwmask: None,
                tos: 0,
                invert: false,
                action: RuleAction::Lookup,
                table,
            },
            protocol: ROUTER_PROTOCOL,
        }
    }
}

impl RuleKey {
    fn action_text(&self) -> String {
        match self.action {
            RuleAction::Lookup => format!("lookup {}", table_name(self.table)),
            RuleAction::Goto => "goto".to_string(),
            RuleAction::Nop => "nop".to_string(),
            RuleAction::Blackhole => "blackhole".to_string(),
            RuleAction::Unreachable => "unreachable".to_string(),
            RuleAction::Prohibit => "prohibit".to_string(),
            RuleAction::Other => "other".to_string(),
        }
    }

    fn fwmark_text(&self) -> Option<String> {
        let mark = self.fwmark?;
        Some(match self.fwmask {
            Some(mask) => format!("{mark:#x}/{mask:#x}"),
            None => format!("{mark:#x}"),
        })
    }
}

impl Rule {
    /// The `ip rule` arguments naming this rule; with the protocol they also build it.
    pub fn ip_args(&self, with_proto: bool) -> String {
        let key = &self.key;
        let mut words = Vec::new();
        if key.invert {
            words.push("not".to_string());
        }
        let from = key.from.filter(|n| n.prefix_len() != 0);
        words.push(format!(
            "from {}",
            from.map_or("all".to_string(), |n| net_text(&n))
        ));
        push_opt(&mut words, "to", key.to.map(|n| net_text(&n)));
        push_opt(&mut words, "iif", key.iif.as_deref());
        push_opt(&mut words, "oif", key.oif.as_deref());
        push_opt(&mut words, "fwmark", key.fwmark_text());
        push_opt(&mut words, "tos", (key.tos != 0).then(|| tos_text(key.tos)));
        words.push(key.action_text());
        words.push(format!("pref {}", key.priority));
        // Protocol 0 is what a rule added without one carries: leaving it out reproduces it.
        let proto = (with_proto && self.protocol != 0).then(|| proto_text(self.protocol));
        push_opt(&mut words, "proto", proto);
        words.join(" ")
    }

    /// `ip [-6] rule <verb> <rule>`.
    pub fn ip_command(&self, verb: &str) -> String {
        let ip = ip_word(self.key.family == Family::Ipv6);
        format!("{ip} rule {verb} {self}")
    }
}

/// The `ip rule` arguments that name and build this rule (without `ip rule add`).
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ip_args(true))
    }
}
