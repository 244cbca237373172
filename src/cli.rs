//! cli: the operator commands (BEHAVIOUR 8) when the binary runs without CNI_COMMAND:
//! `router plan` (live or offline), `router check` (one attachment or `--all`, optionally
//! `--repair`), `router rollout`, `router snapshot` and `router install`. Parses arguments, prints, and maps
//! outcomes to exit codes; operator and reconcile do the work and make every decision.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::atomic_write;
use crate::cache::DEFAULT_CACHE_DIRS;
use crate::config::{AllowedDirs, ALLOWED_DIRS_VAR};
use crate::error::{Error, Result};
use crate::install::{self, Installed};
use crate::model::Mode;
use crate::operator::{self, Resolved, Scan, Sources, StateSource, DEFAULT_DATA_DIR};
use crate::reconcile::Prepared;
use crate::render::{plan_json, render_text, state_diff, NetnsLabels};
use crate::report::{CheckReport, EXIT_CLEAN, EXIT_DRIFT, EXIT_ERROR};
use crate::rollout::{rollout_all, RolloutOptions, Source};
use crate::snapshot::{LiveSnapshot, SnapshotRequest, SnapshotSource};

/// `check --write` files are read by collectors running as another user (node-exporter).
const WRITTEN_MODE: u32 = 0o644;
/// How the host netns is labelled in a live plan: the netns `router` runs in.
const LOCAL_HOST_LABEL: &str = "(local)";

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
    /// Show the netlink changes an ADD (or, with --del, a DEL) would make, without making
    /// them. Exit 0 nothing pending, 2 pending, 1 error.
    Plan(PlanArgs),
    /// CHECK one attachment, or with --all every attachment router made on this node (the
    /// result caches and router's records); report the drift (and with --repair, fix it).
    /// Exit 0 clean, 2 drift, 1 error.
    Check(CheckArgs),
    /// Print the actual state of a pod netns and of this (host) netns as JSON, the format
    /// `plan --snapshot` reads. Without an attachment every route table of both is read;
    /// the JSON's `tables` says which tables it holds.
    Snapshot(SnapshotArgs),
    /// Roll a new config (a plugin object, a conflist, or a NetworkAttachmentDefinition in
    /// YAML or JSON) out to the running attachments of its network on this node, one at a
    /// time: additions and value changes applied, removals only with --prune, keys a live
    /// pod cannot take refused. Exit 0 all rolled out or unchanged, 2 something refused,
    /// 1 a failure.
    Rollout(RolloutArgs),
    /// Copy this binary into a CNI bin dir atomically (temporary name, fsync, rename); a
    /// no-op when the same binary is there.
    Install(InstallArgs),
    /// Keep every attachment `check --all` finds at its desired state, repairing drift as
    /// kernel events show it (a DaemonSet). Serves /metrics, /healthz and /readyz.
    Agent(AgentArgs),
}

/// The inputs that name one attachment, shared by plan, check and snapshot.
#[derive(clap::Args, Debug)]
struct AttachmentArgs {
    /// The plugin config: a plugin object or a whole conflist (its `router` entry is
    /// used). Default: the conflist cached with the result (needs --container-id).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The chained interface (CNI_IFNAME).
    #[arg(long)]
    ifname: Option<String>,
    /// The previous plugin's result. Default: the cached result when --container-id is
    /// given, else the config's own prevResult.
    #[arg(long)]
    prev_result: Option<PathBuf>,
    /// A result cache (libcni's `DIR/results/<network>-<id>-<ifname>`); repeat it for
    /// several. Default: the runtime's and Multus's (`cniDir`).
    #[arg(long = "cache-dir", default_values = DEFAULT_CACHE_DIRS)]
    cache_dirs: Vec<PathBuf>,
    /// The pod's container id (CNI_CONTAINERID): finds the cache entry and the record.
    #[arg(long)]
    container_id: Option<String>,
}

impl AttachmentArgs {
    fn sources<'a>(&'a self, allowed: &'a AllowedDirs) -> Result<Sources<'a>> {
        let ifname = self
            .ifname
            .as_deref()
            .ok_or_else(|| Error::InvalidEnv("missing input: --ifname".into()))?;
        Ok(Sources {
            config: self.config.as_deref(),
            prev_result: self.prev_result.as_deref(),
            cache_dirs: &self.cache_dirs,
            container_id: self.container_id.as_deref(),
            ifname,
            allowed,
        })
    }

    /// Whether these name an attachment at all (snapshot can also read a bare netns).
    fn names_attachment(&self) -> bool {
        self.ifname.is_some() && (self.config.is_some() || self.container_id.is_some())
    }
}

#[derive(clap::Args, Debug)]
struct SnapshotArgs {
    /// The pod netns (e.g. /run/netns/NAME); without it (and no cached netns) only the host
    /// is read.
    #[arg(long)]
    netns: Option<PathBuf>,
    /// With --ifname and --config or --container-id: read what ADD would read for that
    /// attachment (its tables, the host's source addresses toward it, its record) instead
    /// of every table.
    #[command(flatten)]
    attachment: AttachmentArgs,
    /// More pod route tables to read with an attachment (main is always read).
    #[arg(long = "table")]
    tables: Vec<u32>,
    /// More host route tables to read with an attachment.
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
    #[command(flatten)]
    attachment: AttachmentArgs,
    /// The live pod netns (the host is the netns this runs in). Default: the netns
    /// recorded in the cache entry.
    #[arg(long, conflicts_with = "snapshot")]
    netns: Option<PathBuf>,
    /// An ActualState JSON file (what `router snapshot` prints): plan offline.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// The attachment record an earlier ADD wrote (data_dir/<id>-<ifname>.json). Live
    /// plans read it from the config's data_dir without this.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Plan a DEL instead of an ADD.
    #[arg(long)]
    del: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CheckFormat {
    /// A line per attachment, then each drift (netns, object, expected, actual).
    Text,
    /// One JSON document, schema router.check/v1: an object per attachment.
    Json,
    /// JUnit XML for CI: a testcase per attachment, drift a failure, error an error.
    Junit,
    /// The Prometheus text format, for node-exporter's textfile collector.
    Prometheus,
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    attachment: AttachmentArgs,
    /// The pod netns. Default: the netns recorded in the cache entry, else in the record.
    #[arg(long)]
    netns: Option<PathBuf>,
    /// Every attachment router made on this node: each cache entry whose chain runs
    /// router, joined with its record, and each record no entry names.
    #[arg(long, conflicts_with_all = ["config", "ifname", "prev_result", "container_id", "netns"])]
    all: bool,
    /// With --all: a data_dir to read records from (repeat it for several), besides the
    /// data_dirs the cached configs name. Default: router's default data_dir,
    /// /run/cni/router.
    #[arg(long = "data-dir")]
    data_dirs: Vec<PathBuf>,
    /// Apply the plan of each drifted attachment (under the host lock, rolled back on
    /// failure), then check again: exit 0 only when everything is clean afterwards.
    #[arg(long)]
    repair: bool,
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    output: CheckFormat,
    /// Write the output to FILE atomically (a temporary file in its directory, fsync,
    /// rename; mode 0644) instead of printing it: what node-exporter's textfile collector
    /// needs. The exit code is the same.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

impl CheckArgs {
    /// The data_dirs `--all` reads besides the cached configs': those given, else the
    /// default one.
    fn data_dirs(&self) -> Vec<PathBuf> {
        if self.data_dirs.is_empty() {
            vec![PathBuf::from(DEFAULT_DATA_DIR)]
        } else {
            self.data_dirs.clone()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RolloutFormat {
    /// A line per attachment, then its plan, applied ops or reasons; a summary.
    Text,
    /// One JSON document, schema router.rollout/v1; each plan as `router plan --output
    /// json` prints it.
    Json,
    /// JUnit XML for CI: a testcase per attachment, refused a failure, failed an error.
    Junit,
}

#[derive(clap::Args, Debug)]
struct RolloutArgs {
    /// The new config: a file, or `-` for stdin. A router plugin object, a conflist (its
    /// router entry), or a NetworkAttachmentDefinition as `kubectl get
    /// network-attachment-definitions NAME -o yaml` (or `-o json`) prints it.
    #[arg(long, value_name = "SOURCE")]
    config: PathBuf,
    /// The network whose attachments get the config (which then carries that name).
    /// Default: the config's `name`.
    #[arg(long)]
    network: Option<String>,
    /// Also apply plans that remove owned objects a pod has (a hijack CIDR dropped, a rule
    /// priority moved). Without it such an attachment is refused, the objects named.
    #[arg(long)]
    prune: bool,
    /// Print each attachment's plan and touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// How many attachments are rolled out at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    max_parallel: u32,
    /// Go on past an attachment that failed (by default the rollout stops there and the
    /// rest are "not reached").
    #[arg(long)]
    continue_on_error: bool,
    /// A result cache to find attachments in, as for `check --all`.
    #[arg(long = "cache-dir", default_values = DEFAULT_CACHE_DIRS)]
    cache_dirs: Vec<PathBuf>,
    /// A data_dir to read records from, as for `check --all`. Default: /run/cni/router.
    #[arg(long = "data-dir")]
    data_dirs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = RolloutFormat::Text)]
    output: RolloutFormat,
}

/// The agent's log levels (the plugin's `log_level` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AgentLogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl From<AgentLogLevel> for crate::config::LogLevel {
    fn from(level: AgentLogLevel) -> crate::config::LogLevel {
        use crate::config::LogLevel;
        match level {
            AgentLogLevel::Trace => LogLevel::Trace,
            AgentLogLevel::Debug => LogLevel::Debug,
            AgentLogLevel::Info => LogLevel::Info,
            AgentLogLevel::Warn => LogLevel::Warn,
            AgentLogLevel::Error => LogLevel::Error,
        }
    }
}

#[derive(clap::Args, Debug)]
struct AgentArgs {
    /// A result cache to find attachments in (repeat it for several), as `check --all`.
    #[arg(long = "cache-dir", default_values = DEFAULT_CACHE_DIRS)]
    cache_dirs: Vec<PathBuf>,
    /// A data_dir to read records from (repeat it for several), besides the data_dirs the
    /// cached configs name. Default: router's default data_dir, /run/cni/router.
    #[arg(long = "data-dir", default_value = DEFAULT_DATA_DIR)]
    data_dirs: Vec<PathBuf>,
    /// The mean time between full resyncs, each jittered by up to a tenth (e.g. 60s, 500ms,
    /// 2m).
    #[arg(long, default_value = "60s", value_parser = crate::agent::parse_duration)]
    resync_interval: std::time::Duration,
    /// Where /metrics, /healthz and /readyz are served. The default answers on the node
    /// itself only; a DaemonSet with hostNetwork sets the node's address (see
    /// deploy/agent.yaml) so that Prometheus and the kubelet's probes reach it.
    #[arg(long, default_value = "127.0.0.1:9641")]
    listen: std::net::SocketAddr,
    /// Find and report drift (logs, metrics); change nothing.
    #[arg(long)]
    report_only: bool,
    #[arg(long, value_enum, default_value_t = AgentLogLevel::Info)]
    log_level: AgentLogLevel,
    /// A directory of network configs (a ConfigMap mounted into the DaemonSet; each file a
    /// plugin object, a conflist or a NetworkAttachmentDefinition): each file whose
    /// content changes is rolled out to its network's attachments as `router rollout`
    /// does by default (no pruning; changes a live pod cannot take refused, never forced).
    #[arg(long)]
    config_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct InstallArgs {
    /// The CNI bin dir to install into (e.g. /opt/cni/bin, mounted at /host/opt/cni/bin).
    #[arg(long)]
    cni_bin_dir: PathBuf,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Plan(args) => plan_command(&args),
        Command::Check(args) => check_command(&args),
        Command::Snapshot(args) => snapshot_command(&args),
        Command::Rollout(args) => rollout_command(&args),
        Command::Install(args) => install_command(&args),
        Command::Agent(args) => agent_command(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("router: error (code {}): {e}", e.code());
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Where configs may name files: the defaults plus ROUTER_ALLOWED_DIRS, as for the plugin.
fn allowed_dirs() -> AllowedDirs {
    AllowedDirs::from_var(std::env::var(ALLOWED_DIRS_VAR).ok().as_deref())
}

fn missing(what: &str) -> Error {
    Error::InvalidEnv(format!("missing input: {what}"))
}

/// The state source of a plan: the snapshot file, else the live netns given or cached.
fn state_source(args: &PlanArgs, target: &Resolved) -> Result<StateSource> {
    if let Some(file) = &args.snapshot {
        return Ok(StateSource::File(file.clone()));
    }
    target
        .netns_known(args.netns.as_deref())
        .map(StateSource::Live)
        .ok_or_else(|| {
            missing("--netns or --snapshot (neither the cache entry nor a record names the netns)")
        })
}

fn labels_of(source: &StateSource) -> NetnsLabels {
    match source {
        StateSource::Live(netns) => NetnsLabels {
            pod: netns.display().to_string(),
            host: LOCAL_HOST_LABEL.to_string(),
        },
        StateSource::File(file) => NetnsLabels {
            pod: format!("(snapshot {})", file.display()),
            host: format!("(snapshot {})", file.display()),
        },
    }
}

fn plan_command(args: &PlanArgs) -> Result<u8> {
    let target = operator::resolve(&args.attachment.sources(&allowed_dirs())?)?;
    let source = state_source(args, &target)?;
    let record = args
        .record
        .as_deref()
        .map(operator::read_record)
        .transpose()?;
    let mode = if args.del { Mode::Del } else { Mode::Add };
    let prepared = operator::plan(&target, &source, record, mode)?;
    print!(
        "{}",
        render_plan(&prepared, &labels_of(&source), args.output)
    );
    Ok(if prepared.plan.is_empty() {
        EXIT_CLEAN
    } else {
        EXIT_DRIFT
    })
}

fn check_command(args: &CheckArgs) -> Result<u8> {
    if !args.all && !args.data_dirs.is_empty() {
        // clap's `requires` counts --all's implicit `false` as present.
        return Err(Error::InvalidEnv(
            "--data-dir is for --all: one attachment's records are in its config's data_dir".into(),
        ));
    }
    let report = if args.all {
        let data_dirs = args.data_dirs();
        let scan = Scan {
            cache_dirs: &args.attachment.cache_dirs,
            data_dirs: &data_dirs,
        };
        operator::check_all(&scan, args.repair, &allowed_dirs())?
    } else {
        let target = operator::resolve(&args.attachment.sources(&allowed_dirs())?)?;
        let netns = target.netns_known(args.netns.as_deref()).ok_or_else(|| {
            missing("--netns (neither the cache entry nor a record names the netns)")
        })?;
        operator::check_named(&target, &netns, args.repair)
    };
    match &args.write {
        Some(file) => {
            let output = render_check(&report, args.output, false)?;
            atomic_write::write(file, output.as_bytes(), WRITTEN_MODE)?;
        }
        None => print!("{}", render_check(&report, args.output, colour_wanted())?),
    }
    Ok(report.exit_code())
}

fn render_check(report: &CheckReport, format: CheckFormat, colour: bool) -> Result<String> {
    Ok(match format {
        CheckFormat::Text => report.text(colour),
        CheckFormat::Json => format!("{}\n", pretty(&report.json())?),
        CheckFormat::Junit => report.junit(),
        CheckFormat::Prometheus => report.prometheus(),
    })
}

fn rollout_command(args: &RolloutArgs) -> Result<u8> {
    let text = match args.config.as_os_str() == "-" {
        // Bounded as the plugin's stdin is: a NAD is a few kilobytes.
        true => String::from_utf8(crate::cni::read_stdin(&mut std::io::stdin())?).map_err(|e| {
            Error::Decode {
                what: "the config on stdin".into(),
                reason: e.to_string(),
            }
        })?,
        false => std::fs::read_to_string(&args.config)
            .map_err(|e| Error::io(format!("reading {}", args.config.display()), e))?,
    };
    let source = Source::parse(&text)?;
    let data_dirs = match args.data_dirs.is_empty() {
        true => vec![PathBuf::from(DEFAULT_DATA_DIR)],
        false => args.data_dirs.clone(),
    };
    let allowed = allowed_dirs();
    let options = RolloutOptions {
        scan: Scan {
            cache_dirs: &args.cache_dirs,
            data_dirs: &data_dirs,
        },
        allowed: &allowed,
        network: args.network.as_deref(),
        prune: args.prune,
        dry_run: args.dry_run,
        max_parallel: usize::try_from(args.max_parallel).unwrap_or(1),
        continue_on_error: args.continue_on_error,
    };
    let report = rollout_all(&source, &options)?;
    let output = match args.output {
        RolloutFormat::Text => report.text(),
        RolloutFormat::Json => format!("{}\n", pretty(&report.json())?),
        RolloutFormat::Junit => report.junit(),
    };
    print!("{output}");
    Ok(report.exit_code())
}

fn snapshot_command(args: &SnapshotArgs) -> Result<u8> {
    let mut request = if args.attachment.names_attachment() {
        let target = operator::resolve(&args.attachment.sources(&allowed_dirs())?)?;
        let netns = target.netns_known(args.netns.as_deref());
        operator::snapshot_request_for(&target, netns)?
    } else {
        SnapshotRequest {
            pod_netns: args.netns.clone(),
            every_table: true,
            ..SnapshotRequest::default()
        }
    };
    request.pod_tables.extend(&args.tables);
    request.host_tables.extend(&args.host_tables);
    let state = LiveSnapshot::default().snapshot(&request)?;
    println!("{}", pretty(&state)?);
    Ok(EXIT_CLEAN)
}

/// Runs until killed; returns only when the agent cannot start (or its loop ends).
fn agent_command(args: AgentArgs) -> Result<u8> {
    crate::agent::run(crate::agent::Options {
        cache_dirs: args.cache_dirs,
        data_dirs: args.data_dirs,
        resync_interval: args.resync_interval,
        listen: args.listen,
        report_only: args.report_only,
        log_level: args.log_level.into(),
        allowed: allowed_dirs(),
        config_dir: args.config_dir,
    })?;
    Ok(EXIT_ERROR)
}

fn install_command(args: &InstallArgs) -> Result<u8> {
    let source = install::current_binary()?;
    let outcome = install::install(&source, &args.cni_bin_dir)?;
    let target = args.cni_bin_dir.join(install::BINARY_NAME);
    let what = match outcome {
        Installed::Fresh => "installed",
        Installed::Replaced => "replaced",
        Installed::Unchanged => "unchanged (the same binary is installed)",
    };
    println!("{}: {what}", display(&target));
    Ok(EXIT_CLEAN)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn pretty<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::io_other("printing JSON", e))
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

#[cfg(test)]
mod tests;
