//! model::addr tests: MAC addresses parsed and printed.

use super::*;

#[test]
fn mac_parses_and_prints_with_leading_zeros() {
    let mac: MacAddr = "0a:0b:00:00:01:01".parse().unwrap();
    assert_eq!(mac.0, [0x0a, 0x0b, 0, 0, 1, 1]);
    assert_eq!(mac.to_string(), "0a:0b:00:00:01:01");
}

#[test]
fn mac_rejects_short_long_and_signed_parts() {
    for bad in [
        "0a:0b",
        "0a:0b:0c:0d:0e:0f:10",
        "-1:0b:0c:0d:0e:0f",
        "0a:0b:0c:0d:0e:g0",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
    }
}
