//! The plan for people: per netns a header and one `<sign> <command>` line per op.

use crate::model::{Op, Side};
use crate::plan::{Blocked, Plan};

use super::{object_text, op_comment, op_sign, NetnsLabels};

pub(super) const BOLD: &str = "\x1b[1m";
pub(super) const GREEN: &str = "\x1b[32m";
pub(super) const RED: &str = "\x1b[31m";
pub(super) const YELLOW: &str = "\x1b[33m";
pub(super) const MAGENTA: &str = "\x1b[35m";
pub(super) const RESET: &str = "\x1b[0m";

fn paint(line: String, code: &str, colour: bool) -> String {
    if colour {
        format!("{code}{line}{RESET}")
    } else {
        line
    }
}

fn op_line(op: &Op, colour: bool) -> String {
    let comment = op_comment(op)
        .map(|c| format!("  # {c}"))
        .unwrap_or_default();
    let line = format!("  {} {op}{comment}", op_sign(op));
    let code = match op_sign(op) {
        '+' => GREEN,
        '-' => RED,
        _ => YELLOW,
    };
    paint(line, code, colour)
}

pub(super) fn blocked_description(blocked: &Blocked) -> String {
    format!(
        "{} wanted, but {} is in the way (not touched)",
        object_text(&blocked.wanted),
        object_text(&blocked.found)
    )
}

fn render_group(plan: &Plan, side: Side, labels: &NetnsLabels, colour: bool) -> String {
    let ops = plan.ops.iter().filter(|op| op.netns == side);
    let blocked = plan.blocked.iter().filter(|b| b.netns == side);
    let mut lines: Vec<String> = ops.map(|op| op_line(op, colour)).collect();
    lines
        .extend(blocked.map(|b| paint(format!("  ! {}", blocked_description(b)), MAGENTA, colour)));
    if lines.is_empty() {
        return String::new();
    }
    let header = paint(format!("{side} netns {}:", labels.of(side)), BOLD, colour);
    let mut out = header + "\n";
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary_line(plan: &Plan) -> String {
    let mut line = format!("{} pending", plural(plan.ops.len(), "op", "ops"));
    if !plan.blocked.is_empty() {
        line.push_str(&format!(", {} blocked", plan.blocked.len()));
    }
    line
}

/// The plan for people: per netns (pod first, then host) a header, one `<sign> <command>`
/// line per op in plan order with the overwritten value as a `#` comment, then the
/// blocked objects as `!` lines; a summary line last. ANSI colour only when `colour`.
pub fn render_text(plan: &Plan, labels: &NetnsLabels, colour: bool) -> String {
    if plan.is_empty() {
        return "nothing to do\n".to_string();
    }
    let mut out: String = [Side::Pod, Side::Host]
        .into_iter()
        .map(|side| render_group(plan, side, labels, colour))
        .collect();
    out.push_str(&summary_line(plan));
    out.push('\n');
    out
}
