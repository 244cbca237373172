//! report::junit tests: the JUnit XML verdicts, counts, times and escaping.

use super::*;
use crate::report::tests::reports::{every_status, named_gone};

#[test]
fn every_status_renders_as_its_junit_verdict_with_counts_times_and_escaping() {
    assert_eq!(
        every_status().junit(),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="router check" tests="6" failures="1" errors="1" skipped="2" time="0.250">
  <testsuite name="router check on node-1" tests="6" failures="1" errors="1" skipped="2" time="0.250" timestamp="2025-12-01T09:23:20" hostname="node-1">
    <testcase name="c1/net1" classname="macvlan-net1" time="0.012"/>
    <testcase name="c2/net1" classname="macvlan-net1" time="0.034">
      <failure type="drift" message="network macvlan-net1, netns /run/netns/p2, 2 drifts">pod netns: rule from all to 10.96.0.0/12 lookup 100 pref 1000: expected present, actual missing
host netns: route 192.168.50.12 dev veth1 table 500 scope link: expected present, actual missing</failure>
    </testcase>
    <testcase name="c3/net1" classname="macvlan-net1" time="0.056">
      <system-out>pod netns: sysctl net.ipv4.conf.net1.rp_filter: expected 0, actual 1
applied: sysctl -w net.ipv4.conf.net1.rp_filter=0</system-out>
    </testcase>
    <testcase name="c4/net1" classname="macvlan-net1" time="0.001">
      <skipped message="the pod netns is gone"/>
    </testcase>
    <testcase name="/var/lib/cni/results/legacy-c9-eth0" classname="" time="0.000">
      <skipped message="not a readable cniCacheV1 entry"/>
    </testcase>
    <testcase name="c&quot;5&lt;/net1" classname="a&amp;b" time="0.002">
      <error type="CNI error code 7" message="invalid &lt;config&gt; &amp; &quot;more&quot;&#10;second line">pod netns: drift &lt;b&gt;: expected &amp;, actual �</error>
    </testcase>
  </testsuite>
</testsuites>
"#
    );
}

#[test]
fn an_empty_report_is_a_suite_without_testcases() {
    assert_eq!(
        CheckReport::default().junit(),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="router check" tests="0" failures="0" errors="0" skipped="0" time="0.000">
  <testsuite name="router check" tests="0" failures="0" errors="0" skipped="0" time="0.000" timestamp="1970-01-01T00:00:00">
  </testsuite>
</testsuites>
"#
    );
}

#[test]
fn a_named_attachment_that_is_gone_is_an_error_as_its_exit_code_says() {
    let xml = named_gone().junit();
    assert!(
        xml.contains(r#"tests="1" failures="0" errors="1" skipped="0""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<error type="error" message="the pod netns is gone"></error>"#),
        "{xml}"
    );
}

#[test]
fn dates_before_and_after_leap_days_and_centuries() {
    let day = |d: i64| civil_from_days(d);
    assert_eq!(day(0), (1970, 1, 1));
    assert_eq!(day(59), (1970, 3, 1));
    assert_eq!(day(11_016), (2000, 2, 29));
    assert_eq!(day(11_017), (2000, 3, 1));
    assert_eq!(day(20_423), (2025, 12, 1));
    assert_eq!(day(-1), (1969, 12, 31));
    assert_eq!(
        timestamp(Duration::from_secs(951_782_399)),
        "2000-02-28T23:59:59"
    );
}
