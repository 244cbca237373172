//! report::junit: a `router check` report as JUnit XML, what CI systems (GitLab, Jenkins,
//! GitHub test reporters) read. One testsuite per run, one testcase per attachment; the
//! verdicts are the report's own (drift a failure, error an error), so the XML says what
//! the exit code says. Pure: renders the value operator filled.

use std::time::Duration;

use super::{AttachmentReport, CheckReport, Status};

const SUITE_NAME: &str = "router check";

/// What one testcase says beyond passing.
enum Verdict {
    Pass,
    Failure,
    Error,
    Skipped,
}

impl CheckReport {
    fn verdict(&self, a: &AttachmentReport) -> Verdict {
        if self.is_error(a) {
            return Verdict::Error;
        }
        match a.status {
            Status::Clean | Status::Repaired => Verdict::Pass,
            Status::Drift => Verdict::Failure,
            Status::Error => Verdict::Error,
            Status::Gone | Status::Stale | Status::Skipped => Verdict::Skipped,
        }
    }

    /// JUnit XML (the schema Jenkins, GitLab and junitparser read):
    ///
    /// ```text
    /// <testsuites name="router check" tests failures errors skipped time>
    ///   <testsuite name="router check[ on HOST]" tests failures errors skipped time
    ///              timestamp="YYYY-MM-DDTHH:MM:SS" (UTC) [hostname]>
    ///     <testcase name="<container id>/<ifname>" classname="<network>" time>
    ///       clean: nothing; repaired: <system-out> with the drift found and the ops applied
    ///       drift: <failure type="drift" message="<the text line's details>">drift lines</failure>
    ///       error: <error type="CNI error code N" message="<the error>">drift lines</error>
    ///       gone, skipped: <skipped message="<the reason>"/>
    /// ```
    ///
    /// A gone attachment the operator named is an error, as its exit code is 1. Times are
    /// seconds with millisecond precision; a testcase that was not checked takes 0.
    pub fn junit(&self) -> String {
        let tally = Tally::of(self);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuites name=\"{SUITE_NAME}\" {}>\n",
            tally.attributes()
        ));
        let name = match &self.run.host {
            Some(host) => format!("{SUITE_NAME} on {host}"),
            None => SUITE_NAME.to_string(),
        };
        out.push_str(&format!(
            "  <testsuite name=\"{}\" {} timestamp=\"{}\"",
            attribute(&name),
            tally.attributes(),
            timestamp(self.run.started)
        ));
        if let Some(host) = &self.run.host {
            out.push_str(&format!(" hostname=\"{}\"", attribute(host)));
        }
        out.push_str(">\n");
        for a in &self.attachments {
            out.push_str(&self.testcase(a));
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    fn testcase(&self, a: &AttachmentReport) -> String {
        let open = format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
            attribute(&a.name()),
            attribute(a.network.as_deref().unwrap_or_default()),
            seconds(a.duration)
        );
        let body = a.body_lines(false).join("\n");
        let child = match self.verdict(a) {
            Verdict::Pass if body.is_empty() => return format!("{open}/>\n"),
            Verdict::Pass => format!("<system-out>{}</system-out>", text(&body)),
            Verdict::Failure => element("failure", "drift", &a.detail(), &body),
            Verdict::Error => {
                let kind = match a.error_code {
                    Some(code) => format!("CNI error code {code}"),
                    None => "error".to_string(),
                };
                let message = a.message.clone().unwrap_or_else(|| a.detail());
                element("error", &kind, &message, &body)
            }
            Verdict::Skipped => {
                let reason = a.message.as_deref().unwrap_or(a.status.word());
                format!("<skipped message=\"{}\"/>", attribute(reason))
            }
        };
        format!("{open}>\n      {child}\n    </testcase>\n")
    }
}

/// `<failure>` or `<error>`: a type, a one-line message, the lines as text.
pub(super) fn element(tag: &str, kind: &str, message: &str, body: &str) -> String {
    format!(
        "<{tag} type=\"{}\" message=\"{}\">{}</{tag}>",
        attribute(kind),
        attribute(message),
        text(body)
    )
}

/// The counts every suite element carries.
struct Tally {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    took: Duration,
}

impl Tally {
    fn of(report: &CheckReport) -> Tally {
        let mut tally = Tally {
            tests: report.attachments.len(),
            failures: 0,
            errors: 0,
            skipped: 0,
            took: report.run.took,
        };
        for a in &report.attachments {
            match report.verdict(a) {
                Verdict::Pass => {}
                Verdict::Failure => tally.failures += 1,
                Verdict::Error => tally.errors += 1,
                Verdict::Skipped => tally.skipped += 1,
            }
        }
        tally
    }

    fn attributes(&self) -> String {
        format!(
            "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\"",
            self.tests,
            self.failures,
            self.errors,
            self.skipped,
            seconds(self.took)
        )
    }
}

pub(super) fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// ISO 8601 in UTC without a zone, the form the JUnit schema's `timestamp` allows.
pub fn timestamp(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let in_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that a timestamp needs no date crate.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Character data: markup escaped, and characters XML 1.0 cannot hold at all (most C0
/// controls, an ANSI escape for one) replaced, so any message makes a well-formed file.
fn text(s: &str) -> String {
    escape(s, false)
}

/// An attribute value in double quotes; line breaks and tabs as character references,
/// which a parser keeps (a literal one would be normalised to a space).
pub(super) fn attribute(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if in_attribute => out.push_str("&quot;"),
            '\n' | '\r' | '\t' if in_attribute => out.push_str(&format!("&#{};", c as u32)),
            c if allowed_in_xml(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    out
}

/// XML 1.0's `Char` production.
fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests;
