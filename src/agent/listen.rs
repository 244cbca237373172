//! agent::listen: the agent's subscribe-only rtnetlink sockets, one in the node netns and
//! one per pod netns it keeps attachments in, each driven by a task of the event loop
//! (tokio's AsyncFd), forwarding decoded events, overflows (ENOBUFS) and failures to the
//! event loop. A pod's socket is opened by a thread that enters the pod netns
//! (`netns::run_in_netns`) and is then read from the event loop's thread, which never
//! enters it. Dropping a `Listening` ends its task and closes its socket at once, so the
//! netns it is bound to is not kept alive. Must not decide what an event means (the
//! triggers do).

use std::path::Path;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::Msg;
use crate::error::{Error, Result};
use crate::netlink::subscribe::{decode_events, is_overflow, Subscription};
use crate::netns::{self, NetnsId};

/// Which netns a subscription listens in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Node,
    Pod(NetnsId),
}

/// A subscription being read; dropped, its socket is closed.
#[derive(Debug)]
pub struct Listening {
    task: JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        // The task owns the socket: aborted, it is dropped with it (on a current-thread
        // runtime, before the event loop's next turn).
        self.task.abort();
    }
}

/// Listens in the calling thread's netns (the node's).
pub fn node(tx: UnboundedSender<Msg>) -> Result<Listening> {
    listen(Subscription::open_here()?, Scope::Node, tx)
}

/// Listens in the pod netns at `path`, which must still be the netns `id`: the socket is
/// opened by a thread inside it.
pub fn pod(path: &Path, id: NetnsId, tx: UnboundedSender<Msg>) -> Result<Listening> {
    let subscription = netns::run_in_netns(path, Subscription::open_here)?;
    if netns_id(path)? != id {
        return Err(Error::UnknownContainer(format!(
            "{} names another netns by now",
            path.display()
        )));
    }
    listen(subscription, Scope::Pod(id), tx)
}

/// The netns a path names now (its nsfs inode).
pub fn netns_id(path: &Path) -> Result<NetnsId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading netns {}", path.display()), e))?;
    Ok((meta.dev(), meta.ino()))
}

fn listen(subscription: Subscription, scope: Scope, tx: UnboundedSender<Msg>) -> Result<Listening> {
    let socket = super::async_fd(subscription)
        .map_err(|e| Error::io("watching a netlink subscription", e))?;
    let task = tokio::spawn(async move {
        // Multicast notifications are one small message per datagram; 64 KiB holds any.
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            let mut guard = match socket.readable().await {
                Ok(guard) => guard,
                Err(e) => {
                    let _ = tx.send(Msg::Lost {
                        scope,
                        overflow: false,
                        error: e.to_string(),
                    });
                    return;
                }
            };
            match guard.try_io(|s| s.get_ref().recv(&mut buf)) {
                Ok(Ok(len)) => {
                    let at = Instant::now();
                    let events = decode_events(&buf[..len.min(buf.len())]);
                    if !events.is_empty() && tx.send(Msg::Heard { scope, events, at }).is_err() {
                        return;
                    }
                }
                Ok(Err(e)) if is_overflow(&e) => {
                    if tx
                        .send(Msg::Lost {
                            scope,
                            overflow: true,
                            error: e.to_string(),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    let _ = tx.send(Msg::Lost {
                        scope,
                        overflow: false,
                        error: e.to_string(),
                    });
                    return;
                }
                Err(_would_block) => {}
            }
        }
    });
    Ok(Listening { task })
}
