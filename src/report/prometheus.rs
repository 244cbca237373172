//! report::prometheus: a `router check` report in the Prometheus text exposition format
//! (0.0.4), for node-exporter's textfile collector. Every value describes the last run, so
//! every metric is a gauge (a count per run is no counter: it does not only grow). Pure:
//! renders the value operator filled.

use super::{AttachmentReport, CheckReport, Status};
use crate::model::Side;
use crate::render::Drift;

/// One sample: its labels (name, value) and its value as written.
type Sample = (Vec<(&'static str, String)>, String);

impl CheckReport {
    /// The text exposition format, `# HELP` and `# TYPE` before each family:
    ///
    /// ```text
    /// router_attachments{status="clean|drift|repaired|gone|skipped|error"}  every status, 0 too
    /// router_attachment_drifts{container_id,ifname,network,netns="pod|host"}
    ///     drift left after the run (and any repair), per checked attachment (clean, drift,
    ///     repaired; 0 when clean) and side; gone, skipped and error ones have none
    /// router_repair_ops_applied          ops `--repair` applied in the run (0 without it)
    /// router_check_exit_code             0 clean, 2 drift, 1 error
    /// router_check_duration_seconds      how long the run took
    /// router_check_timestamp_seconds     when it finished (Unix time)
    /// ```
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "router_attachments",
            "Attachments the last router check looked at, by status.",
            Status::ALL
                .iter()
                .map(|s| {
                    (
                        vec![("status", s.word().to_string())],
                        self.count(*s).to_string(),
                    )
                })
                .collect(),
        );
        family(
            &mut out,
            "router_attachment_drifts",
            "Objects not as ADD would make them, left after the last router check (and any repair), per checked attachment and netns.",
            self.attachments.iter().flat_map(drift_samples).collect(),
        );
        let applied: usize = self
            .attachments
            .iter()
            .filter_map(|a| a.repair.as_ref())
            .map(|r| r.applied.len())
            .sum();
        family(
            &mut out,
            "router_repair_ops_applied",
            "Ops router check --repair applied in the last run.",
            vec![(Vec::new(), applied.to_string())],
        );
        family(
            &mut out,
            "router_check_exit_code",
            "Exit code of the last router check: 0 clean, 2 drift, 1 a check could not run.",
            vec![(Vec::new(), self.exit_code().to_string())],
        );
        family(
            &mut out,
            "router_check_duration_seconds",
            "How long the last router check took.",
            vec![(Vec::new(), self.run.took.as_secs_f64().to_string())],
        );
        let finished = self.run.started + self.run.took;
        family(
            &mut out,
            "router_check_timestamp_seconds",
            "When the last router check finished, in seconds since the Unix epoch.",
            vec![(Vec::new(), finished.as_secs_f64().to_string())],
        );
        out
    }
}

/// The drift an attachment still has: none once clean or repaired, what a repair left,
/// else what the check found.
fn drift_left(a: &AttachmentReport) -> &[Drift] {
    match (a.status, &a.repair) {
        (Status::Clean | Status::Repaired, _) => &[],
        (_, Some(repair)) => &repair.remaining,
        (_, None) => &a.drifts,
    }
}

/// A sample per side for an attachment that was checked; none for one that was not.
fn drift_samples(a: &AttachmentReport) -> Vec<Sample> {
    if !matches!(a.status, Status::Clean | Status::Drift | Status::Repaired) {
        return Vec::new();
    }
    let left = drift_left(a);
    [Side::Pod, Side::Host]
        .into_iter()
        .map(|side| {
            let labels = vec![
                ("container_id", a.container_id.clone()),
                ("ifname", a.ifname.clone()),
                ("network", a.network.clone().unwrap_or_default()),
                ("netns", side.to_string()),
            ];
            let n = left.iter().filter(|d| d.netns == side).count();
            (labels, n.to_string())
        })
        .collect()
}

fn family(out: &mut String, name: &str, help: &str, samples: Vec<Sample>) {
    out.push_str(&format!("# HELP {name} {}\n", escape_help(help)));
    out.push_str(&format!("# TYPE {name} gauge\n"));
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            out.push_str(&format!("{{{}}}", pairs.join(",")));
        }
        out.push_str(&format!(" {value}\n"));
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    escape_help(value).replace('"', "\\\"")
}

/// HELP text escapes backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::super::test_report::every_status;
    use super::*;
    use crate::report::Repair;

    #[test]
    fn every_status_is_counted_and_each_checked_attachment_has_its_drift_per_side() {
        assert_eq!(
            every_status().prometheus(),
            r#"# HELP router_attachments Attachments the last router check looked at, by status.
# TYPE router_attachments gauge
router_attachments{status="clean"} 1
router_attachments{status="drift"} 1
router_attachments{status="repaired"} 1
router_attachments{status="gone"} 1
router_attachments{status="stale"} 0
router_attachments{status="skipped"} 1
router_attachments{status="error"} 1
# HELP router_attachment_drifts Objects not as ADD would make them, left after the last router check (and any repair), per checked attachment and netns.
# TYPE router_attachment_drifts gauge
router_attachment_drifts{container_id="c1",ifname="net1",network="macvlan-net1",netns="pod"} 0
router_attachment_drifts{container_id="c1",ifname="net1",network="macvlan-net1",netns="host"} 0
router_attachment_drifts{container_id="c2",ifname="net1",network="macvlan-net1",netns="pod"} 1
router_attachment_drifts{container_id="c2",ifname="net1",network="macvlan-net1",netns="host"} 1
router_attachment_drifts{container_id="c3",ifname="net1",network="macvlan-net1",netns="pod"} 0
router_attachment_drifts{container_id="c3",ifname="net1",network="macvlan-net1",netns="host"} 0
# HELP router_repair_ops_applied Ops router check --repair applied in the last run.
# TYPE router_repair_ops_applied gauge
router_repair_ops_applied 1
# HELP router_check_exit_code Exit code of the last router check: 0 clean, 2 drift, 1 a check could not run.
# TYPE router_check_exit_code gauge
router_check_exit_code 1
# HELP router_check_duration_seconds How long the last router check took.
# TYPE router_check_duration_seconds gauge
router_check_duration_seconds 0.25
# HELP router_check_timestamp_seconds When the last router check finished, in seconds since the Unix epoch.
# TYPE router_check_timestamp_seconds gauge
router_check_timestamp_seconds 1764581000.25
"#
        );
    }

    #[test]
    fn an_empty_report_has_every_family_with_zero_counts() {
        let text = CheckReport::default().prometheus();
        for status in Status::ALL {
            assert!(
                text.contains(&format!(
                    "router_attachments{{status=\"{}\"}} 0\n",
                    status.word()
                )),
                "{text}"
            );
        }
        assert!(text
            .contains("# TYPE router_attachment_drifts gauge\n# HELP router_repair_ops_applied"));
        assert!(text.contains("\nrouter_repair_ops_applied 0\n"));
        assert!(text.contains("\nrouter_check_exit_code 0\n"));
        assert!(
            text.ends_with("router_check_timestamp_seconds 0\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_line_feed() {
        let mut report = every_status();
        let a = &mut report.attachments[0];
        a.container_id = "a\\b\"c\nd".into();
        a.network = None;
        assert!(report.prometheus().contains(
            "router_attachment_drifts{container_id=\"a\\\\b\\\"c\\nd\",ifname=\"net1\",network=\"\",netns=\"pod\"} 0\n"
        ));
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn the_drift_left_after_a_repair_is_what_it_could_not_fix() {
        let mut report = every_status();
        let drifted = &mut report.attachments[1];
        let remaining = vec![drifted.drifts[1].clone()];
        drifted.repair = Some(Repair {
            applied: vec!["ip rule add ...".into(), "ip route add ...".into()],
            remaining,
        });
        let text = report.prometheus();
        assert!(text.contains(
            "container_id=\"c2\",ifname=\"net1\",network=\"macvlan-net1\",netns=\"pod\"} 0\n"
        ));
        assert!(text.contains(
            "container_id=\"c2\",ifname=\"net1\",network=\"macvlan-net1\",netns=\"host\"} 1\n"
        ));
        assert!(text.contains("\nrouter_repair_ops_applied 3\n"));
    }
}
