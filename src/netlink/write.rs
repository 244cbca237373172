//! netlink::write: the writes (`Write`, one ACKed request per model object) and sending
//! them, many in flight at once, with errnos that mean "already so" read as such. It must
//! not choose which objects to write nor order, batch or undo them (`execute` does).

use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourState};
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::RuleAction as NlRuleAction;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{
    NetlinkMessage, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};

use super::encode::{
    ifindex, inet_conf_message, inet_devconf_index, kernel_rule_action, neighbour_message,
    route_message, rule_message, RouteWrite,
};
use super::transport::{collect, refused, Failure, Reply};
use super::{Links, Netlink};
use crate::error::{Error, Result};
use crate::model::{MacAddr, Neighbour, Route, Rule, SysctlKey};

/// What a write did to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    /// Nothing to do: EEXIST on an add, ESRCH/ENOENT on a delete, or a delete of an
    /// object whose device is gone.
    AlreadySo,
}

/// One write request, built from a model object with its device names resolved against
/// the `Links` of the netns it is for, and named by its `ip` command for errors.
#[derive(Debug)]
pub struct Write {
    object: String,
    /// None: nothing to send, the object is already so.
    request: Option<Request>,
}

#[derive(Debug)]
struct Request {
    message: RouteNetlinkMessage,
    /// NLM_F_* flags besides REQUEST and ACK.
    flags: u16,
    /// Errnos that mean the kernel already is as asked.
    already_so: &'static [i32],
}

const GONE: &[i32] = &[libc::ESRCH, libc::ENOENT];
const EXISTS: &[i32] = &[libc::EEXIST];

impl Write {
    /// The `ip` command this write does, as errors name it.
    pub fn object(&self) -> &str {
        &self.object
    }

    fn send(
        object: String,
        message: RouteNetlinkMessage,
        flags: u16,
        already_so: &'static [i32],
    ) -> Write {
        Write {
            object,
            request: Some(Request {
                message,
                flags,
                already_so,
            }),
        }
    }

    /// `ip route append`: RTM_NEWROUTE with CREATE|APPEND. An IPv4 route joins the others
    /// of its slot as another alias; an IPv6 route through a gateway joins the multipath
    /// route of its slot as a hop. The same route again (EEXIST) is already so.
    pub fn add_route(route: &Route, links: &Links) -> Result<Write> {
        Write::new_route(route, links, "add", NLM_F_APPEND)
    }

    /// `ip route add` (CREATE|EXCL): the route's slot (table, destination, tos, metric)
    /// must be empty. EEXIST, whatever holds the slot, is "already so" for the caller to
    /// look into: the same route, or another one that a read did not show.
    pub fn add_route_alone(route: &Route, links: &Links) -> Result<Write> {
        Write::new_route(route, links, "add", NLM_F_EXCL)
    }

    /// `ip route replace`: RTM_NEWROUTE with CREATE|REPLACE. Kernel semantics to know: an
    /// IPv4 replace takes the first alias of the slot (whichever it is); an IPv6 replace of
    /// a multipath route takes the whole group. Which other routes of the slot to remove
    /// afterwards is the caller's decision. EEXIST (IPv4: the same route is in the slot,
    /// not as its first alias) is already so.
    pub fn replace_route(route: &Route, links: &Links) -> Result<Write> {
        Write::new_route(route, links, "replace", NLM_F_REPLACE)
    }

    /// RTM_NEWROUTE with CREATE and `flags` (how it meets its slot), named as `ip route
    /// <verb>`; EEXIST is already so.
    fn new_route(route: &Route, links: &Links, verb: &str, flags: u16) -> Result<Write> {
        let object = route.ip_command(verb);
        let message = route_message(route, links, RouteWrite::Create, &object)?;
        Ok(Write::send(
            object,
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | flags,
            EXISTS,
        ))
    }

    /// `ip route del` (RTM_DELROUTE) naming table, destination, tos, metric, device,
    /// gateway and protocol: only that route goes (one hop of an IPv6 multipath route).
    /// Gone already is fine; a route through a device that is gone is gone with it:
    /// nothing to send.
    pub fn del_route(route: &Route, links: &Links) -> Result<Write> {
        let object = route.ip_command("del");
        if let Some(dev) = &route.key.dev {
            if !links.links.contains_key(dev) {
                return Ok(Write {
                    object,
                    request: None,
                });
            }
        }
        let message = route_message(route, links, RouteWrite::Delete, &object)?;
        Ok(Write::send(
            object,
            RouteNetlinkMessage::DelRoute(message),
            0,
            GONE,
        ))
    }

    /// `ip rule add`: RTM_NEWRULE with CREATE|EXCL; the same rule again (EEXIST) is
    /// already so.
    pub fn add_rule(rule: &Rule) -> Result<Write> {
        let object = rule.ip_command("add");
        let action = kernel_rule_action(rule.key.action).ok_or_else(|| {
            refused(
                &object,
                "a rule of an unknown action cannot be created".into(),
            )
        })?;
        let message = rule_message(rule, action);
        Ok(Write::send(
            object,
            RouteNetlinkMessage::NewRule(message),
            NLM_F_CREATE | NLM_F_EXCL,
            EXISTS,
        ))
    }

    /// `ip rule del`: RTM_DELRULE matching every selector, the action, table and protocol;
    /// a rule of an action the model cannot name matches any action.
    pub fn del_rule(rule: &Rule) -> Write {
        let object = rule.ip_command("del");
        // FR_ACT_UNSPEC in a delete matches any action.
        let action = kernel_rule_action(rule.key.action).unwrap_or(NlRuleAction::Unspec);
        let message = rule_message(rule, action);
        Write::send(object, RouteNetlinkMessage::DelRule(message), 0, GONE)
    }

    /// `ip neigh replace ... nud permanent`: RTM_NEWNEIGH with CREATE|REPLACE,
    /// NUD_PERMANENT; also overrides a dynamic entry.
    pub fn replace_neighbour(neighbour: &Neighbour, links: &Links) -> Result<Write> {
        let object = neighbour.ip_replace_command();
        let ifindex = ifindex(links, &neighbour.key.dev, &object)?;
        let mut message = neighbour_message(neighbour, ifindex);
        message.header.state = NeighbourState::Permanent;
        if let Some(mac) = neighbour.lladdr {
            message
                .attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        }
        if neighbour.protocol != 0 {
            message
                .attributes
                .push(NeighbourAttribute::Protocol(RouteProtocol::from(
                    neighbour.protocol,
                )));
        }
        Ok(Write::send(
            object,
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            &[],
        ))
    }

    /// `ip neigh del`: RTM_DELNEIGH with the device and address; gone already is fine, and
    /// a neighbour whose device is gone is gone.
    pub fn del_neighbour(neighbour: &Neighbour, links: &Links) -> Write {
        let object = neighbour.ip_del_command();
        match links.links.get(&neighbour.key.dev) {
            None => Write {
                object,
                request: None,
            },
            Some(link) => Write::send(
                object,
                RouteNetlinkMessage::DelNeighbour(neighbour_message(neighbour, link.index)),
                0,
                GONE,
            ),
        }
    }

    /// `ip link set dev <dev> address <mac>`: RTM_SETLINK with the link's index and
    /// IFLA_ADDRESS.
    pub fn set_mac(dev: &str, mac: MacAddr, links: &Links) -> Result<Write> {
        let object = mac.ip_command(dev);
        let mut message = LinkMessage::default();
        message.header.index = ifindex(links, dev, &object)?;
        message
            .attributes
            .push(LinkAttribute::Address(mac.0.to_vec()));
        Ok(Write::send(
            object,
            RouteNetlinkMessage::SetLink(message),
            0,
            &[],
        ))
    }

    /// `sysctl -w net.ipv4.conf.<dev>.<name>=<value>` as one RTM_SETLINK (`encode`'s
    /// `inet_conf_message`): the kernel sets the value the file shows, on the calling
    /// thread's socket, without opening the file (a `/proc/sys/net` lookup is slow in a new
    /// netns, and the file must be opened inside the netns). None for a sysctl only its file
    /// sets (`Write::sets_sysctl`).
    pub fn set_sysctl(key: &SysctlKey, value: i64, links: &Links) -> Option<Result<Write>> {
        let index = inet_devconf_index(key)?;
        let object = format!("sysctl -w {key}={value}");
        let message = u32::try_from(value)
            .map_err(|_| Error::Kernel {
                object: object.clone(),
                reason: "the kernel holds this sysctl as an unsigned 32-bit value".to_string(),
            })
            .and_then(|value| {
                let link = ifindex(links, &key.iface, &object)?;
                Ok(inet_conf_message(link, index, value))
            });
        Some(
            message
                .map(|message| Write::send(object, RouteNetlinkMessage::SetLink(message), 0, &[])),
        )
    }

    /// Whether `set_sysctl` writes this sysctl over netlink.
    pub fn sets_sysctl(key: &SysctlKey) -> bool {
        inet_devconf_index(key).is_some()
    }
}

/// Writes in flight at once: their ACKs wait in the socket's receive queue until read,
/// and a batch of thousands (a rule per CIDR) would overflow it; this many fit with room.
const IN_FLIGHT: usize = 64;

/// One write sent, named for errors; `sent` is None when there was nothing to send.
struct Issued {
    object: String,
    sent: Option<Sent>,
}

/// A request on its way: the sequence number its answer carries (or why it could not be
/// sent), and the errnos that mean the kernel already is as asked.
struct Sent {
    seq: std::result::Result<u32, Failure>,
    already_so: &'static [i32],
}

impl Netlink {
    /// Sends one write and waits for its ACK.
    pub fn write(&self, write: Write) -> Result<Outcome> {
        self.write_many(vec![write]).pop().unwrap_or_else(|| {
            Err(Error::Kernel {
                object: "netlink write".to_string(),
                reason: "no result for the request".to_string(),
            })
        })
    }

    /// Sends the writes before waiting for their ACKs (up to IN_FLIGHT at a time, the
    /// kernel applies them in order), then collects the ACKs in order: one result per
    /// write. A failure does not stop the kernel from applying the writes after it; the
    /// caller decides what to do with those (`execute` undoes them to stop at the first
    /// failure).
    pub fn write_many(&self, writes: Vec<Write>) -> Vec<Result<Outcome>> {
        let mut patience = Patience::default();
        let mut results = Vec::with_capacity(writes.len());
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            let issued: Vec<Issued> = writes
                .by_ref()
                .take(IN_FLIGHT)
                .map(|write| self.issue_write(write))
                .collect();
            for Issued { object, sent } in issued {
                let outcome = match sent {
                    // Nothing to send: the object is already so (its device is gone).
                    None => Ok(Outcome::AlreadySo),
                    Some(Sent {
                        seq: Err(failure), ..
                    }) => Err(failure),
                    Some(Sent {
                        seq: Ok(seq),
                        already_so,
                    }) => patience.await_answer(self, seq, already_so),
                };
                results.push(outcome.map_err(|failure| failure.into_error(&object)));
            }
        }
        results
    }

    /// Sends one write as an ACKed request.
    fn issue_write(&self, write: Write) -> Issued {
        let Write { object, request } = write;
        let sent = request.map(
            |Request {
                 message,
                 flags,
                 already_so,
             }| {
                let mut message = NetlinkMessage::from(message);
                message.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
                Sent {
                    seq: self.channel.send(message),
                    already_so,
                }
            },
        );
        Issued { object, sent }
    }
}

/// The stalled rule of a batch: after one request went unanswered for the request
/// timeout, the later ones are not waited for in turn (each would wait as long): they
/// fail at once as timed out.
#[derive(Default)]
struct Patience {
    stalled: bool,
}

impl Patience {
    fn await_answer(
        &mut self,
        nl: &Netlink,
        seq: u32,
        already_so: &[i32],
    ) -> std::result::Result<Outcome, Failure> {
        if self.stalled {
            return Err(Failure::Timeout);
        }
        let outcome = await_one(nl, seq, already_so);
        self.stalled = matches!(outcome, Err(Failure::Timeout));
        outcome
    }
}

/// The ACK of one write: an errno in `already_so` means the kernel already is as asked.
fn await_one(nl: &Netlink, seq: u32, already_so: &[i32]) -> std::result::Result<Outcome, Failure> {
    match collect(|| nl.channel.next(seq), false) {
        Ok(Reply::Complete(_)) => Ok(Outcome::Changed),
        // A write's answer is never a dump's: only a lost answer reads as interrupted.
        Ok(Reply::Interrupted) => Err(Failure::Lost),
        Err(Failure::Errno(errno)) if already_so.contains(&errno) => Ok(Outcome::AlreadySo),
        Err(failure) => Err(failure),
    }
}

#[cfg(test)]
mod tests;
