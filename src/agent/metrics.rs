//! agent::metrics: the agent's Prometheus metrics (prometheus-client families, typed label
//! sets) and their OpenMetrics text. It counts and encodes; it must not decide anything
//! or do I/O.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::render::{DriftState, ObjectKind};
use crate::report::RolloutStatus;

/// Where an attachment stands after the agent's latest look at it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttachmentState {
    Clean,
    Drift,
    Repaired,
    Gone,
    Error,
}

impl AttachmentState {
    pub const ALL: [AttachmentState; 5] = [
        AttachmentState::Clean,
        AttachmentState::Drift,
        AttachmentState::Repaired,
        AttachmentState::Gone,
        AttachmentState::Error,
    ];
}

/// The kind of object a drift or repair is about, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Kind {
    Route,
    Rule,
    Neighbour,
    Sysctl,
    Mac,
    Other,
}

impl From<ObjectKind> for Kind {
    fn from(kind: ObjectKind) -> Kind {
        match kind {
            ObjectKind::Route(_) => Kind::Route,
            ObjectKind::Rule(_) => Kind::Rule,
            ObjectKind::Neighbour => Kind::Neighbour,
            ObjectKind::Sysctl => Kind::Sysctl,
            ObjectKind::Mac => Kind::Mac,
            ObjectKind::Other => Kind::Other,
        }
    }
}

/// How a drift stood: wanted and missing, there and unwanted, other values, or an unowned
/// object in the way (reported, never touched).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum State {
    Missing,
    Unexpected,
    Differs,
    Blocked,
}

impl From<DriftState> for State {
    fn from(state: DriftState) -> State {
        match state {
            DriftState::Missing => State::Missing,
            DriftState::Unexpected => State::Unexpected,
            DriftState::Differs => State::Differs,
            DriftState::Blocked => State::Blocked,
        }
    }
}

/// Which netns a subscription listens in.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum NetnsKind {
    Node,
    Pod,
}

/// Label values in lower case, as Prometheus labels are written.
macro_rules! label_words {
    ($type:ty { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $type {
            pub fn word(self) -> &'static str {
                match self {
                    $(<$type>::$variant => $word),+
                }
            }
        }

        impl EncodeLabelValue for $type {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.word())
            }
        }
    };
}

label_words!(AttachmentState {
    Clean => "clean",
    Drift => "drift",
    Repaired => "repaired",
    Gone => "gone",
    Error => "error",
});
label_words!(Kind {
    Route => "route",
    Rule => "rule",
    Neighbour => "neighbour",
    Sysctl => "sysctl",
    Mac => "mac",
    Other => "other",
});
label_words!(State {
    Missing => "missing",
    Unexpected => "unexpected",
    Differs => "differs",
    Blocked => "blocked",
});
label_words!(NetnsKind {
    Node => "node",
    Pod => "pod",
});

/// A `--config-dir` rollout's outcome for one attachment, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Outcome(pub RolloutStatus);

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0.word().replace(' ', "_"))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: AttachmentState,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub kind: Kind,
    pub state: State,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: Kind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NetnsLabels {
    pub netns: NetnsKind,
}

/// Every metric the agent exports, and whether it is ready (its first full resync done).
pub struct Metrics {
    registry: Registry,
    pub attachments: Family<StateLabels, Gauge>,
    pub drifts: Family<DriftLabels, Counter>,
    pub repairs: Family<KindLabels, Counter>,
    pub repair_failures: Counter,
    pub event_to_repair: Histogram,
    pub resync_duration: Histogram,
    pub overflows: Family<NetnsLabels, Counter>,
    pub subscriptions: Family<NetnsLabels, Gauge>,
    /// When the latest full resync ended (Unix seconds): an alert tells a stuck agent by it.
    pub last_resync: Gauge,
    /// `--config-dir` rollouts, per attachment and outcome.
    pub rollouts: Family<OutcomeLabels, Counter>,
    /// `--config-dir` files that could not be read or rolled out at all.
    pub config_dir_errors: Counter,
    ready: AtomicBool,
    /// The text is encoded under this lock: a scrape sees one moment of every family.
    encoding: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("router_agent");
        let attachments = Family::<StateLabels, Gauge>::default();
        registry.register(
            "attachments",
            "Attachments kept, by the state the latest check found",
            attachments.clone(),
        );
        let drifts = Family::<DriftLabels, Counter>::default();
        registry.register(
            "drifts_found",
            "Drifted objects found, by kind and how they stood (blocked: an unowned object in the way, never touched)",
            drifts.clone(),
        );
        let repairs = Family::<KindLabels, Counter>::default();
        registry.register("repairs", "Objects repaired, by kind", repairs.clone());
        let repair_failures = Counter::default();
        registry.register(
            "repair_failures",
            "Repairs that failed or left drift behind",
            repair_failures.clone(),
        );
        // From 1 ms to about 16 s: a repair within a debounce is a few ms; the resync
        // backstop is a minute.
        let event_to_repair = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "event_to_repair_seconds",
            "Time from the first kernel event of a burst to the repair it caused",
            event_to_repair.clone(),
        );
        let resync_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "resync_duration_seconds",
            "Duration of full resyncs (every attachment checked)",
            resync_duration.clone(),
        );
        let overflows = Family::<NetnsLabels, Counter>::default();
        registry.register(
            "subscription_overflows",
            "Netlink subscriptions that lost events (ENOBUFS) or failed; each is answered by a resync of that netns",
            overflows.clone(),
        );
        let subscriptions = Family::<NetnsLabels, Gauge>::default();
        registry.register(
            "subscriptions",
            "Netlink subscriptions open, by netns kind",
            subscriptions.clone(),
        );
        let last_resync = Gauge::default();
        registry.register(
            "last_resync_timestamp_seconds",
            "When the latest full resync ended, in seconds since the Unix epoch",
            last_resync.clone(),
        );
        let rollouts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rollouts",
            "Attachments a --config-dir rollout reached, by outcome (refused: a change a live pod cannot take, or a removal without pruning; never forced)",
            rollouts.clone(),
        );
        let config_dir_errors = Counter::default();
        registry.register(
            "config_dir_errors",
            "--config-dir reads that failed, files that are no router config, rollouts that could not start",
            config_dir_errors.clone(),
        );
        for status in RolloutStatus::ALL {
            rollouts
                .get_or_create(&OutcomeLabels {
                    outcome: Outcome(status),
                })
                .inc_by(0);
        }
        for state in AttachmentState::ALL {
            attachments.get_or_create(&StateLabels { state }).set(0);
        }
        for netns in [NetnsKind::Node, NetnsKind::Pod] {
            overflows.get_or_create(&NetnsLabels { netns }).inc_by(0);
            subscriptions.get_or_create(&NetnsLabels { netns }).set(0);
        }
        Metrics {
            registry,
            attachments,
            drifts,
            repairs,
            repair_failures,
            event_to_repair,
            resync_duration,
            overflows,
            subscriptions,
            last_resync,
            rollouts,
            config_dir_errors,
            ready: AtomicBool::new(false),
            encoding: Mutex::new(()),
        }
    }

    /// One attachment a `--config-dir` rollout reached.
    pub fn rolled_out(&self, status: RolloutStatus) {
        self.rollouts
            .get_or_create(&OutcomeLabels {
                outcome: Outcome(status),
            })
            .inc();
    }

    pub fn drift_found(&self, kind: ObjectKind, state: DriftState) {
        let labels = DriftLabels {
            kind: kind.into(),
            state: state.into(),
        };
        self.drifts.get_or_create(&labels).inc();
    }

    pub fn repaired(&self, kind: ObjectKind) {
        self.repairs
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn overflowed(&self, netns: NetnsKind) {
        self.overflows.get_or_create(&NetnsLabels { netns }).inc();
    }

    pub fn set_subscriptions(&self, netns: NetnsKind, open: usize) {
        let open = i64::try_from(open).unwrap_or(i64::MAX);
        self.subscriptions
            .get_or_create(&NetnsLabels { netns })
            .set(open);
    }

    /// The number of attachments in each state, all states listed (zero included).
    pub fn set_states(&self, counts: impl Fn(AttachmentState) -> usize) {
        for state in AttachmentState::ALL {
            let n = i64::try_from(counts(state)).unwrap_or(i64::MAX);
            self.attachments
                .get_or_create(&StateLabels { state })
                .set(n);
        }
    }

    pub fn resynced(&self, took: Duration) {
        self.resync_duration.observe(took.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_resync
            .set(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let _one_at_a_time = self.encoding.lock();
        let mut text = String::new();
        // Writing into a String cannot fail; a failure would only truncate the text.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The sample names the agent exports (what PromQL names): a counter's with `_total`, a
/// histogram's `_bucket`, `_sum` and `_count`.
pub fn sample_names() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in Metrics::new().encode().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests;
