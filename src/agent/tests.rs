//! Unit tests of agent.

use super::*;

#[test]
fn durations_take_the_units_an_operator_writes_and_refuse_the_rest() {
    assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    for bad in ["", "0s", "-1s", "1h", "abc", "1e9"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}
