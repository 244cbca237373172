//! cli: the operator commands (BEHAVIOUR 8) when the binary runs without CNI_COMMAND:
//! `router plan` (offline) and `router snapshot` (and, as the live side lands, `check`). Parses arguments,
//! reads the files they name, and prints; every decision is made by reconcile.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::config::{parse_netconf, plugin_from_conflist_or_plugin, Config, PrevView};
use crate::error::{Error, Result};
use crate::model::{Mode, Record};
use crate::reconcile::{prepare, snapshot_request, Attachment, Prepared};
use crate::record::MemRecords;
use crate::render::{plan_json, render_text, state_diff, NetnsLabels};
use crate::snapshot::{FileSnapshot, LiveSnapshot, SnapshotRequest, SnapshotSource};

/// Exit codes of `plan` and `check`.
const EXIT_CLEAN: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_PENDING: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "router",
    version,
    about = "Chained CNI meta plugin for pods with an overlay eth0 plus macvlan/SR-IOV interfaces. Run by a CNI runtime when CNI_COMMAND is set; otherwise these operator commands."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the netlink changes an ADD (or, with --del, a DEL) would make, without making them.
    Plan(PlanArgs),
    /// Print the actual state of a pod netns and of this (host) netns as JSON, the format
    /// `plan --snapshot` reads.
    Snapshot(SnapshotArgs),
}

#[derive(clap::Args, Debug)]
struct SnapshotArgs {
    /// The pod netns (e.g. /var/run/netns/NAME); without it only the host is read.
    #[arg(long)]
    netns: Option<PathBuf>,
    /// Read the tables this attachment uses (its T and host_rule_table), as ADD would.
    #[arg(long, requires = "ifname")]
    config: Option<PathBuf>,
    /// The chained interface, with --config.
    #[arg(long)]
    ifname: Option<String>,
    /// The previous result (with --config): the host's source addresses toward C are read.
    #[arg(long)]
    prev_result: Option<PathBuf>,
    /// More pod route tables to read (main is always read).
    #[arg(long = "table")]
    tables: Vec<u32>,
    /// Host route tables to read.
    #[arg(long = "host-table")]
    host_tables: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// `ip` commands grouped by netns: `+` add, `-` remove, `~` change.
    Text,
    /// The plan as JSON (schema router.plan/v1).
    Json,
    /// A unified diff of the objects before and after the plan.
    Diff,
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    /// The plugin config: a plugin object or a whole conflist (its `router` entry is used).
    #[arg(long)]
    config: PathBuf,
    /// The chained interface (CNI_IFNAME).
    #[arg(long)]
    ifname: String,
    /// The previous plugin's result; defaults to the config's own prevResult.
    #[arg(long)]
    prev_result: Option<PathBuf>,
    /// An ActualState JSON file (what `router snapshot` prints).
    #[arg(long)]
    snapshot: PathBuf,
    /// The attachment record an earlier ADD wrote (data_dir/<id>-<ifname>.json).
    #[arg(long)]
    record: Option<PathBuf>,
    /// The container id the record belongs to.
    #[arg(long, default_value = "offline")]
    container_id: String,
    /// Plan a DEL instead of an ADD.
    #[arg(long)]
    del: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Plan(args) => plan_command(&args),
        Command::Snapshot(args) => snapshot_command(&args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("router: error (code {}): {e}", e.code());
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn read_json(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {what} {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| Error::Decode {
        what: format!("{what} {}", path.display()),
        reason: e.to_string(),
    })
}

/// The config and prevResult as a runtime would pass them.
fn load_inputs(config: &Path, prev_result: Option<&Path>) -> Result<(Config, Option<Value>)> {
    let plugin = plugin_from_conflist_or_plugin(read_json(config, "config")?)?;
    let netconf = parse_netconf(&plugin)?;
    let prev = match prev_result {
        Some(path) => Some(read_json(path, "prevResult")?),
        None => netconf.prev_result,
    };
    Ok((netconf.config, prev))
}

fn load_record(path: Option<&Path>) -> Result<Vec<Record>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let value = read_json(path, "record")?;
    let record = serde_json::from_value(value).map_err(|e| Error::Decode {
        what: format!("record {}", path.display()),
        reason: e.to_string(),
    })?;
    Ok(vec![record])
}

fn plan_command(args: &PlanArgs) -> Result<u8> {
    let (config, prev_json) = load_inputs(&args.config, args.prev_result.as_deref())?;
    let mode = if args.del { Mode::Del } else { Mode::Add };
    let prev = prev_json.as_ref().map(PrevView::parse).transpose()?;
    if mode == Mode::Add && prev.is_none() {
        return Err(Error::InvalidPrevResult(
            "an ADD plan needs --prev-result (or a prevResult in the config)".into(),
        ));
    }
    let mut records = load_record(args.record.as_deref())?;
    for record in &mut records {
        record.container_id = args.container_id.clone();
    }
    let att = Attachment {
        container_id: args.container_id.clone(),
        ifname: args.ifname.clone(),
        netns: None,
    };
    let snapshots = FileSnapshot {
        path: args.snapshot.clone(),
    };
    let prepared = prepare(
        mode,
        &config,
        &att,
        prev.as_ref(),
        &snapshots,
        &MemRecords::with(records),
    )?;
    let labels = NetnsLabels {
        pod: format!("(snapshot {})", args.snapshot.display()),
        host: format!("(snapshot {})", args.snapshot.display()),
    };
    print!("{}", render_plan(&prepared, &labels, args.output));
    Ok(if prepared.plan.is_empty() {
        EXIT_CLEAN
    } else {
        EXIT_PENDING
    })
}

fn snapshot_command(args: &SnapshotArgs) -> Result<u8> {
    let mut request = match (&args.config, &args.ifname) {
        (Some(config), Some(ifname)) => {
            let (config, prev_json) = load_inputs(config, args.prev_result.as_deref())?;
            let prev = prev_json.as_ref().map(PrevView::parse).transpose()?;
            let att = Attachment {
                container_id: "snapshot".into(),
                ifname: ifname.clone(),
                netns: args.netns.clone(),
            };
            let chained = prev.map(|p| p.addresses_of(ifname)).unwrap_or_default();
            snapshot_request(&config, &att, &chained, None)
        }
        _ => SnapshotRequest {
            pod_netns: args.netns.clone(),
            ..SnapshotRequest::default()
        },
    };
    request.pod_tables.extend(&args.tables);
    request.host_tables.extend(&args.host_tables);
    let state = LiveSnapshot.snapshot(&request)?;
    let text =
        serde_json::to_string_pretty(&state).map_err(|e| Error::io("printing the snapshot", e))?;
    println!("{text}");
    Ok(EXIT_CLEAN)
}

fn render_plan(prepared: &Prepared, labels: &NetnsLabels, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => render_text(&prepared.plan, labels, colour_wanted()),
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&plan_json(&prepared.plan, labels)).unwrap_or_default()
        ),
        OutputFormat::Diff => {
            let mut after = prepared.actual.clone();
            after.apply(&prepared.plan.ops);
            state_diff(&prepared.actual, &after)
        }
    }
}

/// Colour on a terminal only, and never when NO_COLOR is set.
fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
