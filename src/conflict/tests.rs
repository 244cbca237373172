//! conflict tests: a derived MAC in use explained, and the probe schedule.

use super::*;

#[test]
fn a_derived_mac_in_use_names_the_address_shared_by_two_pods() {
    use crate::model::Side;
    let new: MacAddr = "0a:0b:c0:a8:32:0a".parse().unwrap();
    let op = Op::new(
        Side::Pod,
        Change::SetMac {
            dev: "net1".into(),
            old: None,
            new,
        },
    );
    let in_use = Error::InUse {
        object: "ip link set dev net1 address 0a:0b:c0:a8:32:0a".into(),
        reason: "Address already in use (os error 98)".into(),
    };
    let addrs: Vec<IpNet> = vec!["192.168.50.10/24".parse().unwrap()];
    let error = explain_failure(Some(&op), in_use.clone(), &addrs);
    assert_eq!(error.code(), crate::error::Code::Kernel);
    let text = error.to_string();
    assert!(
        text.contains("the derived MAC 0a:0b:c0:a8:32:0a for net1 is taken"),
        "{text}"
    );
    assert!(
        text.contains("another pod holds 192.168.50.10 on the same master"),
        "{text}"
    );
    assert!(text.contains("Address already in use"), "{text}");
    // Another op, or another error, is left as it is.
    let sysctl = Op::new(
        Side::Pod,
        Change::SetSysctl {
            key: crate::model::SysctlKey::new("all", crate::model::SysctlName::RpFilter),
            old: None,
            new: 0,
        },
    );
    assert_eq!(
        explain_failure(Some(&sysctl), in_use.clone(), &addrs),
        in_use
    );
    let other = Error::Kernel {
        object: "x".into(),
        reason: "y".into(),
    };
    assert_eq!(explain_failure(Some(&op), other.clone(), &addrs), other);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs a schedule against a clock that jumps to each deadline, plus `lag` per step.
fn trace(interval: u64, retries: u32, lag: u64) -> Vec<(u64, Step)> {
    let mut schedule = Schedule::new(ms(interval), retries);
    let mut now = ms(0);
    let mut out = Vec::new();
    for _ in 0..100 {
        let step = schedule.step(now);
        out.push((now.as_millis() as u64, step));
        match step {
            Step::Send => now += ms(lag),
            Step::Wait(d) => now += d + ms(lag),
            Step::Done => break,
        }
    }
    out
}

#[test]
fn rounds_go_out_interval_apart_and_listening_ends_interval_after_the_last() {
    let sends: Vec<u64> = trace(100, 3, 0)
        .iter()
        .filter(|(_, s)| *s == Step::Send)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(sends, vec![0, 100, 200]);
    assert_eq!(trace(100, 3, 0).last(), Some(&(300, Step::Done)));
    assert_eq!(trace(250, 1, 0).last(), Some(&(250, Step::Done)));
}

#[test]
fn a_late_thread_keeps_the_spacing_and_still_listens_a_full_interval() {
    let steps = trace(100, 3, 30);
    let sends: Vec<u64> = steps
        .iter()
        .filter(|(_, s)| *s == Step::Send)
        .map(|(t, _)| *t)
        .collect();
    assert!(sends.windows(2).all(|w| w[1] - w[0] >= 100), "{sends:?}");
    let (end, step) = steps.last().copied().unwrap();
    assert_eq!(step, Step::Done);
    assert!(end >= sends[2] + 100, "{steps:?}");
}

#[test]
fn a_wait_is_never_zero_so_the_loop_cannot_spin() {
    for (_, step) in trace(100, 5, 0) {
        assert_ne!(step, Step::Wait(Duration::ZERO));
    }
}

#[test]
fn only_another_macs_claim_on_one_of_the_addresses_is_a_conflict() {
    let own = MacAddr([2, 0x50, 0, 0, 0, 2]);
    let other = MacAddr([2, 0, 0, 0, 0, 0x0e]);
    let addr: IpAddr = "192.168.50.11".parse().unwrap();
    let reply = packet::gratuitous_arp(other, "192.168.50.11".parse().unwrap());
    assert_eq!(
        conflict_in(&reply, own, &[addr]),
        Some(Conflict { addr, mac: other })
    );
    assert_eq!(conflict_in(&reply, other, &[addr]), None, "our own MAC");
    let elsewhere: IpAddr = "192.168.50.12".parse().unwrap();
    assert_eq!(conflict_in(&reply, own, &[elsewhere]), None);
    let ours = packet::probe(own, addr);
    assert_eq!(conflict_in(&ours, own, &[addr]), None, "our own probe");
}

#[test]
fn a_conflict_is_error_101_naming_the_address_and_the_mac() {
    let err = Error::from(Conflict {
        addr: "fd50::11".parse().unwrap(),
        mac: MacAddr([2, 0, 0, 0, 0, 0x0e]),
    });
    assert_eq!(err.code().number(), 101);
    let msg = err.to_string();
    assert!(
        msg.contains("fd50::11") && msg.contains("02:00:00:00:00:0e"),
        "{msg}"
    );
}
