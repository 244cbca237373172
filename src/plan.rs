//! plan: DesiredState x ActualState -> ordered ops. Pure; touches only owned objects plus
//! the documented moves, and reports (never changes) unowned objects in the way.

use serde::{Deserialize, Serialize};

use crate::model::{Neighbour, Op, Route, Rule, Side};

/// An object named in a report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Object {
    Route(Route),
    Rule(Rule),
    Neighbour(Neighbour),
}

/// A wanted object that an unowned object stands in the way of. Never touched; reported.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub netns: Side,
    pub wanted: Object,
    pub found: Object,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub blocked: Vec<Blocked>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.blocked.is_empty()
    }
}
