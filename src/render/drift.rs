//! Drift: one way the kernel differs from what an attachment wants (CNI CHECK, `router
//! check`), its one-line wording and its JSON.

use std::fmt::{self, Display};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Change, Family, Neighbour, Op, Route, Rule, Side, MAIN_TABLE};
use crate::plan::{Blocked, Cause, NodeObject, Object, Plan};

use super::json::to_json;
use super::{lladdr_text, object_text, or_word, route_specs};

const PRESENT: &str = "present";
const ABSENT: &str = "absent";
const MISSING: &str = "missing";
const HELD_BY: &str = "held by unowned ";
/// Items named in a drift summary; the rest are counted, so a CNI error stays one line.
const SUMMARY_ITEMS: usize = 5;

/// One way the kernel differs from what this attachment wants (CNI CHECK, `router check`).
/// `object` is what people and the JSON read; `kind`, `name` and `state` are the same facts
/// typed, so that the summary is made from them rather than from `object`'s words.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "DriftJson")]
pub struct Drift {
    pub netns: Side,
    pub object: String,
    pub expected: String,
    pub actual: String,
    /// Why it is drift, when the node changed rather than the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    #[serde(skip)]
    pub kind: ObjectKind,
    /// The object without its kind word (`10.0.0.0/8 dev net1`, `net.ipv4.conf.all.rp_filter`).
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub state: DriftState,
}

/// A drift as the JSON holds it (`drifts_json`, the `router check` report).
#[derive(Deserialize)]
struct DriftJson {
    netns: Side,
    object: String,
    expected: String,
    actual: String,
    #[serde(default)]
    cause: Option<Cause>,
}

/// Reading drifts back is the one place their words are parsed: the JSON is made for
/// programs that have only the words; in-process drifts carry the typed facts.
impl From<DriftJson> for Drift {
    fn from(json: DriftJson) -> Drift {
        const KINDS: [ObjectKind; 7] = [
            ObjectKind::Route(Family::Ipv6),
            ObjectKind::Rule(Family::Ipv6),
            ObjectKind::Route(Family::Ipv4),
            ObjectKind::Rule(Family::Ipv4),
            ObjectKind::Neighbour,
            ObjectKind::Sysctl,
            ObjectKind::Mac,
        ];
        // `route -6` before `route`: the longest kind word that prefixes the object.
        let (kind, name) = KINDS
            .into_iter()
            .find_map(|kind| {
                let name = json
                    .object
                    .strip_prefix(&kind.to_string())?
                    .strip_prefix(' ')?;
                Some((kind, name.to_string()))
            })
            .unwrap_or((ObjectKind::Other, json.object.clone()));
        let state = if json.actual.starts_with(HELD_BY) {
            DriftState::Blocked
        } else if json.actual == MISSING {
            DriftState::Missing
        } else if json.expected == ABSENT {
            DriftState::Unexpected
        } else {
            DriftState::Differs
        };
        Drift {
            netns: json.netns,
            object: json.object,
            expected: json.expected,
            actual: json.actual,
            cause: json.cause,
            kind,
            name,
            state,
        }
    }
}

/// What a drift is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Route(Family),
    Rule(Family),
    Neighbour,
    Sysctl,
    Mac,
    /// Words of no kind above, read back from JSON.
    Other,
}

/// `route -6` and `rule -6` keep an IPv6 `default dev eth0` from reading like its IPv4
/// twin outside a command, as `ip -6` does in one.
impl Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Route(Family::Ipv4) => "route",
            ObjectKind::Route(Family::Ipv6) => "route -6",
            ObjectKind::Rule(Family::Ipv4) => "rule",
            ObjectKind::Rule(Family::Ipv6) => "rule -6",
            ObjectKind::Neighbour => "neighbour",
            ObjectKind::Sysctl => "sysctl",
            ObjectKind::Mac => "mac of",
            ObjectKind::Other => "object",
        })
    }
}

/// How the kernel's object stands against the wanted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftState {
    /// Wanted, not there.
    Missing,
    /// There, not wanted.
    Unexpected,
    /// There with other values.
    Differs,
    /// Wanted, but an unowned object is in its place.
    Blocked,
}

impl Display for DriftState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriftState::Missing => "missing",
            DriftState::Unexpected => "unexpected",
            DriftState::Differs => "differs",
            DriftState::Blocked => "blocked",
        })
    }
}

impl Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let in_table = |object: &NodeObject| match object {
            NodeObject::Route { table } if *table != MAIN_TABLE => format!(" in table {table}"),
            _ => String::new(),
        };
        match self {
            Cause::NodeAddressAdded {
                address,
                via,
                object: object @ NodeObject::Route { .. },
            } => write!(
                f,
                "node address {address} (added since ADD) has no route through {via}{}",
                in_table(object)
            ),
            Cause::NodeAddressAdded {
                address,
                via,
                object: NodeObject::Neighbour,
            } => write!(
                f,
                "node address {address} (added since ADD) has no neighbour entry on {via}"
            ),
            Cause::NodeAddressRemoved {
                address,
                via,
                object: object @ NodeObject::Route { .. },
            } => write!(
                f,
                "route toward {address} through {via}{}, no longer a node address",
                in_table(object)
            ),
            Cause::NodeAddressRemoved {
                address,
                via,
                object: NodeObject::Neighbour,
            } => write!(
                f,
                "neighbour entry for {address} on {via}, no longer a node address"
            ),
        }
    }
}
impl Drift {
    /// A drift of the object `<kind> <name>`, with no cause.
    pub fn new(
        netns: Side,
        (kind, name): (ObjectKind, String),
        state: DriftState,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Drift {
        Drift {
            netns,
            object: format!("{kind} {name}"),
            expected: expected.into(),
            actual: actual.into(),
            cause: None,
            kind,
            name,
            state,
        }
    }
}

/// An object's kind and its name without the values a drift is about.
fn route(r: &Route) -> (ObjectKind, String) {
    (ObjectKind::Route(r.key.family()), r.ip_args(false))
}

fn rule(r: &Rule) -> (ObjectKind, String) {
    (ObjectKind::Rule(r.key.family), r.ip_args(false))
}

fn neighbour(n: &Neighbour) -> (ObjectKind, String) {
    (
        ObjectKind::Neighbour,
        format!("{} dev {}", n.key.addr, n.key.dev),
    )
}

fn named(object: &Object) -> (ObjectKind, String) {
    match object {
        Object::Route(r) => route(r),
        Object::Rule(r) => rule(r),
        Object::Neighbour(n) => neighbour(n),
    }
}

fn neighbour_expected(n: &Neighbour) -> String {
    n.lladdr
        .map_or(PRESENT.to_string(), |mac| format!("lladdr {mac}"))
}

fn op_drift(op: &Op) -> Drift {
    use DriftState::{Differs, Missing, Unexpected};
    let side = op.netns;
    match &op.change {
        Change::AddRoute { route: r } => Drift::new(side, route(r), Missing, PRESENT, MISSING),
        Change::DelRoute { route: r } => Drift::new(side, route(r), Unexpected, ABSENT, PRESENT),
        Change::ReplaceRoute { old, new } if old.is_empty() => {
            Drift::new(side, route(new), Missing, new.to_string(), MISSING)
        }
        Change::ReplaceRoute { old, new } => {
            Drift::new(side, route(new), Differs, new.to_string(), route_specs(old))
        }
        Change::AddRule { rule: r } => Drift::new(side, rule(r), Missing, PRESENT, MISSING),
        Change::DelRule { rule: r } => Drift::new(side, rule(r), Unexpected, ABSENT, PRESENT),
        Change::AddNeighbour { neighbour: n } => {
            Drift::new(side, neighbour(n), Missing, neighbour_expected(n), MISSING)
        }
        Change::ReplaceNeighbour { old, new } => {
            let (expected, actual) = (lladdr_text(new.lladdr), lladdr_text(old.lladdr));
            Drift::new(side, neighbour(new), Differs, expected, actual)
        }
        Change::DelNeighbour { neighbour: n } => {
            Drift::new(side, neighbour(n), Unexpected, ABSENT, PRESENT)
        }
        Change::SetSysctl { key, old, new } => Drift::new(
            side,
            (ObjectKind::Sysctl, key.to_string()),
            Differs,
            new.to_string(),
            or_word(*old, "unset"),
        ),
        Change::SetMac { dev, old, new } => Drift::new(
            side,
            (ObjectKind::Mac, dev.clone()),
            Differs,
            new.to_string(),
            or_word(*old, "unknown"),
        ),
    }
}

fn blocked_drift(blocked: &Blocked) -> Drift {
    let actual = format!("{HELD_BY}{}", object_text(&blocked.found));
    let wanted = named(&blocked.wanted);
    Drift::new(blocked.netns, wanted, DriftState::Blocked, PRESENT, actual)
}

/// One drift per op of the plan (in order), then one per blocked object.
pub fn drifts(plan: &Plan) -> Vec<Drift> {
    let ops = plan.ops.iter().map(|op| Drift {
        cause: plan.cause_of(op),
        ..op_drift(op)
    });
    ops.chain(plan.blocked.iter().map(blocked_drift)).collect()
}

fn drift_item(d: &Drift) -> String {
    if let Some(cause) = &d.cause {
        return cause.to_string();
    }
    format!("{} `{}` {} in {}", d.kind, d.name, d.state, d.netns)
}

/// One drift on one line: netns, object, expected, actual, and the cause when known.
pub fn drift_detail(d: &Drift) -> String {
    let line = format!(
        "{} netns: {}: expected {}, actual {}",
        d.netns, d.object, d.expected, d.actual
    );
    match &d.cause {
        Some(cause) => format!("{line}; {cause}"),
        None => line,
    }
}

/// One line for a CNI error message or a log: `1 drift: ...`, `N drifts: a, b, ...`
/// (at most five named, then `, and K more`), or `no drift`.
pub fn drift_summary(drifts: &[Drift]) -> String {
    match drifts {
        [] => "no drift".to_string(),
        [one] => format!("1 drift: {}", drift_item(one)),
        many => {
            let items: Vec<String> = many.iter().take(SUMMARY_ITEMS).map(drift_item).collect();
            let mut line = format!("{} drifts: {}", many.len(), items.join(", "));
            if many.len() > SUMMARY_ITEMS {
                line.push_str(&format!(", and {} more", many.len() - SUMMARY_ITEMS));
            }
            line
        }
    }
}

/// The drifts as a JSON array of `{"netns", "object", "expected", "actual"}`.
pub fn drifts_json(drifts: &[Drift]) -> Value {
    Value::Array(drifts.iter().map(to_json).collect())
}
