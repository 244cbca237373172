//! rollout::safety: the config keys a live attachment cannot take (where its objects live,
//! whether router manages it at all). Pure: two configs in, the refusals out; must not judge
//! removals (reconcile does, on the plan it applies).

use std::path::Path;

use crate::config::Config;
use crate::error::Error;

/// Each key whose value differs between the attachment's config and the new one and that a
/// live pod cannot take: the pod must be recreated. Empty when the new config may be
/// planned against the pod.
pub fn live_key_changes(current: &Config, new: &Config, ifname: &str) -> Vec<Error> {
    let table = |c: &Config| {
        c.table_for(ifname)
            .map_or_else(|_| "<none>".to_string(), |t| t.to_string())
    };
    let mac = |c: &Config| {
        c.mac_prefix
            .map_or_else(|| "unset".to_string(), |[a, b]| format!("{a:02x}:{b:02x}"))
    };
    let dir = |p: &Path| p.display().to_string();
    let flag = |b: bool| b.to_string();
    let keys: [(&'static str, String, String); 9] = [
        ("route_table", table(current), table(new)),
        (
            "host_rule_table",
            current.host_rule_table.to_string(),
            new.host_rule_table.to_string(),
        ),
        (
            "overlay_interface",
            current.overlay_interface.clone(),
            new.overlay_interface.clone(),
        ),
        (
            "migrate_route",
            format!("{:?}", current.migrate_route),
            format!("{:?}", new.migrate_route),
        ),
        ("sriov", current.sriov.to_string(), new.sriov.to_string()),
        ("mac_prefix", mac(current), mac(new)),
        ("data_dir", dir(&current.data_dir), dir(&new.data_dir)),
        // These two say whether router manages the attachment at all, or only its MAC: a
        // live pod made one way has nothing the other way could take over or hand back.
        ("skip_call", flag(current.skip_call), flag(new.skip_call)),
        (
            "only_op_mac",
            flag(current.only_op_mac),
            flag(new.only_op_mac),
        ),
    ];
    keys.into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(key, from, to)| Error::CannotChangeLive { key, from, to })
        .collect()
}

#[cfg(test)]
mod tests;
