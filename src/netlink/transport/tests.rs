//! netlink::transport tests: what an answer means, errno by errno.

use netlink_packet_route::route::RouteMessage;
use rtnetlink::packet_core::DoneMessage;

use super::*;

fn message(
    flags: u16,
    payload: NetlinkPayload<RouteNetlinkMessage>,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut message = NetlinkMessage::new(NetlinkHeader::default(), payload);
    message.header.flags = flags;
    message
}

fn route_payload() -> NetlinkPayload<RouteNetlinkMessage> {
    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(RouteMessage::default()))
}

fn done(code: i32) -> NetlinkPayload<RouteNetlinkMessage> {
    let mut done = DoneMessage::default();
    done.code = code;
    NetlinkPayload::Done(done)
}

/// What `collect` makes of `messages`, as the socket would hand them out; once they run
/// out, the socket's receive timeout.
fn collect_now(
    messages: Vec<NetlinkMessage<RouteNetlinkMessage>>,
    dump: bool,
) -> Result<Reply, Failure> {
    let mut messages = messages.into_iter();
    collect(|| messages.next().ok_or(Failure::Timeout), dump)
}

#[test]
fn a_complete_dump_needs_done() {
    let reply = collect_now(vec![message(2, route_payload()), message(2, done(0))], true);
    assert!(
        matches!(reply, Ok(Reply::Complete(ref m)) if m.len() == 1),
        "{reply:?}"
    );
    let reply = collect_now(vec![message(2, route_payload())], true);
    assert_eq!(reply, Err(Failure::Timeout));
}

#[test]
fn a_get_is_answered_by_its_one_message_and_a_write_by_its_ack() {
    let reply = collect_now(vec![message(0, route_payload())], false);
    assert!(
        matches!(reply, Ok(Reply::Complete(ref m)) if m.len() == 1),
        "{reply:?}"
    );
    let reply = collect_now(
        vec![message(0, NetlinkPayload::Error(ErrorMessage::default()))],
        false,
    );
    assert_eq!(reply, Ok(Reply::Complete(Vec::new())));
}

#[test]
fn answers_the_kernel_dropped_make_the_dump_read_again() {
    let mut given = vec![Ok(message(2, route_payload())), Err(Failure::Lost)].into_iter();
    let reply = collect(|| given.next().unwrap_or(Err(Failure::Timeout)), true);
    assert_eq!(reply, Ok(Reply::Interrupted));
}

#[test]
fn dump_intr_on_any_message_reads_again() {
    let reply = collect_now(
        vec![
            message(2 | NLM_F_DUMP_INTR, route_payload()),
            message(2, done(0)),
        ],
        true,
    );
    assert_eq!(reply, Ok(Reply::Interrupted));
    let reply = collect_now(
        vec![
            message(2, route_payload()),
            message(2 | NLM_F_DUMP_INTR, done(0)),
        ],
        true,
    );
    assert_eq!(reply, Ok(Reply::Interrupted));
}

#[test]
fn errors_in_done_and_error_messages_carry_the_errno() {
    let reply = collect_now(vec![message(2, done(-libc::ENOENT))], true);
    assert_eq!(reply, Err(Failure::Errno(libc::ENOENT)));
    let mut error = ErrorMessage::default();
    error.code = NonZeroI32::new(-libc::EBUSY);
    let reply = collect_now(vec![message(0, NetlinkPayload::Error(error))], false);
    assert_eq!(reply, Err(Failure::Errno(libc::EBUSY)));
}

#[test]
fn errno_maps_busy_and_again_to_try_again() {
    assert!(matches!(errno_error("x", libc::EBUSY), Error::TryAgain(_)));
    assert!(matches!(errno_error("x", libc::EAGAIN), Error::TryAgain(_)));
    let err = errno_error("ipv4 routes of table 7", libc::EPERM);
    let Error::Kernel { object, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(object, "ipv4 routes of table 7");
    assert!(reason.contains("not permitted"), "{reason}");
}

#[test]
fn the_codec_turns_an_undecodable_message_into_an_error_for_its_request() {
    // RTM_NEWLINK (16) with a 2-byte payload: too short for ifinfomsg.
    let mut bytes = BytesMut::new();
    let len: u32 = 16 + 4;
    bytes.extend_from_slice(&len.to_ne_bytes());
    bytes.extend_from_slice(&16u16.to_ne_bytes());
    bytes.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
    bytes.extend_from_slice(&77u32.to_ne_bytes());
    bytes.extend_from_slice(&4242u32.to_ne_bytes());
    bytes.extend_from_slice(&[1, 2, 0, 0]);
    let message = LoudCodec::decode::<RouteNetlinkMessage>(&mut bytes)
        .unwrap()
        .unwrap();
    assert_eq!(message.header.sequence_number, 77);
    assert_eq!(message.header.port_number, 4242);
    match message.payload {
        NetlinkPayload::Error(e) => assert_eq!(e.raw_code(), -libc::EBADMSG),
        other => panic!("{other:?}"),
    }
    assert!(bytes.is_empty());
}
