//! `/etc/qdock/qdock.toml`: typed keys, defaults, validation and trusted loading.
//! Every key is documented in `sge-conf/qdock.example.toml`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::mount::MountSpec;
use crate::pattern::ImagePattern;

pub const DEFAULT_PATH: &str = "/etc/qdock/qdock.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub job: JobConfig,
    pub container: ContainerConfig,
    pub images: ImageConfig,
    pub mounts: MountConfig,
    pub gridengine: GridEngineConfig,
    pub usage: UsageConfig,
    pub scheduling: SchedulingConfig,
    pub gpus: GpuConfig,
}

/// This host's GPUs and how a job's share reaches its container (see `gpu`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// The consumable that counts GPUs (`complex_values gpu=4` on the host).
    pub complex: String,
    pub mode: GpuMode,
    /// This host's GPUs, in the order they are handed out: device nodes (`devices`), CDI
    /// device names (`cdi`) or the engine's device ids (`toolkit`). Empty: the CDI specs'
    /// devices of `cdi_kind` (`cdi`), else the GPUs `nvidia-smi -L` lists.
    pub devices: Vec<String>,
    /// Nodes a GPU job's container gets besides its GPUs, those present (`devices`).
    pub shared_devices: Vec<PathBuf>,
    /// The driver's user-space libraries, mounted into a GPU job's container (`devices`).
    pub libraries: Vec<MountSpec>,
    /// The CDI kind of this host's GPUs (`cdi`).
    pub cdi_kind: String,
    /// Who holds which GPU: root's, with one file per device in use.
    pub lock_dir: PathBuf,
}

/// How GPUs reach a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// Plain device nodes and the admin's library mounts: no NVIDIA runtime needed.
    #[default]
    Devices,
    /// CDI device names, which the engine resolves from the host's CDI specs.
    Cdi,
    /// The NVIDIA container toolkit's device requests (`--gpus device=…`).
    Toolkit,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            complex: "gpu".into(),
            mode: GpuMode::Devices,
            devices: Vec::new(),
            shared_devices: ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"]
                .iter()
                .map(|n| Path::new("/dev").join(n))
                .collect(),
            libraries: Vec::new(),
            cdi_kind: "nvidia.com/gpu".into(),
            lock_dir: "/var/lib/qdock/gpus".into(),
        }
    }
}

/// The per-host usage record (see `usage::ledger`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// One line per job; created by bin/install, never by qdock.
    pub record: PathBuf,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            record: "/var/lib/qdock/usage.jsonl".into(),
        }
    }
}

/// How jobs find hosts that hold their image: what the load sensor advertises in
/// `qdock_images` and what `qdock jsv` asks for. Both read it, so it must be the same on
/// the qmaster's host and every execution host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingConfig {
    /// Which local images `qdock_images` names, highest priority first (see `advertise`).
    pub advertise: Vec<ImagePattern>,
    /// What `qdock jsv` asks for the job's image.
    pub image_request: ImageRequest,
    /// Whether `qdock jsv` adds `-l qdock_engine=1` to every job with an image.
    pub engine_request: bool,
    /// What `qdock jsv` does with a job whose hard image request no host can satisfy.
    pub image_unavailable: Unavailable,
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        SchedulingConfig {
            advertise: vec![ImagePattern::parse("*").expect("a valid pattern")],
            image_request: ImageRequest::Auto,
            engine_request: true,
            image_unavailable: Unavailable::Refuse,
        }
    }
}

/// A job whose image no execution host holds, and none may pull, by their load reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unavailable {
    /// `qsub` fails, saying why: the job would wait in `qw` for ever.
    #[default]
    Refuse,
    /// The job is let in and waits; the reason goes to the JSV's log.
    Warn,
    /// Not looked at: the JSV never asks the qmaster.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageRequest {
    /// Hard: a host holding the image or pulling it by its own config (its load sensor
    /// advertises `+pull`); soft: a host holding it. Each host's `images.pull` decides.
    #[default]
    Auto,
    Hard,
    Soft,
    None,
}

/// Where the execution daemon keeps what proves a job (see `job_proof`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridEngineConfig {
    /// The cell whose jobs this host runs: it names containers, labels and records (a spool
    /// that states its cell, as Open Cluster Scheduler's does, is believed over it).
    /// `SGE_CELL` is the caller's to set, so it never counts.
    pub cell: String,
    /// The cell's `execd_spool_dir` (`qconf -sconf`).
    pub execd_spool_dir: PathBuf,
    /// This host's directory below it; empty: the only one there, else the one named after
    /// this host.
    pub spool_host: String,
    /// The Grid Engine admin user, who owns the spool besides root.
    pub admin_user: String,
    /// Accept callers that are no Grid Engine job: for trying qdock outside Grid Engine only.
    /// Anyone can then run containers, and act on any job of their own uid.
    pub unsafe_skip_job_proof: bool,
    /// More cells whose execds run on this host (`[[gridengine.cells]]`): each job is proven
    /// against the spool of the cell that runs it, which names it.
    pub cells: Vec<CellSpool>,
}

/// One cell's execd spool on this host: the keys of `[gridengine]` that say where a job of
/// that cell is proven.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellSpool {
    pub cell: String,
    pub execd_spool_dir: PathBuf,
    #[serde(default)]
    pub spool_host: String,
    #[serde(default = "default_admin_user")]
    pub admin_user: String,
}

fn default_admin_user() -> String {
    GridEngineConfig::default().admin_user
}

impl GridEngineConfig {
    /// Every cell's spool, this host's main cell (the section's own keys) first.
    pub fn spools(&self) -> Vec<CellSpool> {
        let main = CellSpool {
            cell: self.cell.clone(),
            execd_spool_dir: self.execd_spool_dir.clone(),
            spool_host: self.spool_host.clone(),
            admin_user: self.admin_user.clone(),
        };
        std::iter::once(main)
            .chain(self.cells.iter().cloned())
            .collect()
    }
}

impl Default for GridEngineConfig {
    fn default() -> Self {
        GridEngineConfig {
            cell: "default".into(),
            execd_spool_dir: "/var/spool/gridengine/execd".into(),
            spool_host: String::new(),
            admin_user: "sgeadmin".into(),
            unsafe_skip_job_proof: false,
            cells: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub socket: PathBuf,
    /// How long one request may take before the engine counts as hung.
    pub timeout_secs: u64,
    /// How long a running job waits for an engine that went away (restarted) to come back.
    pub reconnect_secs: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            socket: "/var/run/docker.sock".into(),
            timeout_secs: 30,
            // An upgrade of the engine's package stops it, unpacks, then starts it again.
            reconnect_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// The job environment variable that names the image.
    pub image_variable: String,
    /// The job environment variable through which a job asks for extra bind mounts.
    pub mounts_variable: String,
    /// Variables never passed into the container (`*` is a wildcard).
    pub env_deny: Vec<String>,
    /// When not empty, only these variables are passed (before `env_deny` applies).
    pub env_pass: Vec<String>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            image_variable: "IMAGE".into(),
            mounts_variable: "QDOCK_MOUNTS".into(),
            env_deny: [
                "PATH",
                "LD_*",
                "DOCKER_*",
                "SSH_AUTH_SOCK",
                "DISPLAY",
                "XAUTHORITY",
                "DBUS_SESSION_BUS_ADDRESS",
                "SGE_STARTER_*",
                // qrsh_starter's own: the command line joined by 0xff bytes (not UTF-8,
                // so it only cost a line in every qrsh job's .e on Open Cluster Scheduler).
                "QRSH_COMMAND",
            ]
            .map(String::from)
            .to_vec(),
            env_pass: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerConfig {
    /// `host` (the default: the network a native job has), `none`, `bridge` or the name of
    /// a Docker network.
    pub network: String,
    /// Seconds between the stop signal and SIGKILL on terminate.
    pub stop_grace_secs: u64,
    /// Run Docker's init (tini) as PID 1 so signals reach the job and zombies are reaped.
    pub init: bool,
    /// Capabilities to keep; all others are dropped.
    pub cap_add: Vec<String>,
    /// A seccomp profile (JSON file) instead of the engine's default profile.
    pub seccomp_profile: Option<PathBuf>,
    /// Host devices the container may use (`/dev/x` or `/dev/x:/dev/y`).
    pub devices: Vec<String>,
    /// Limit the container to as many CPUs as the job has slots (`NSLOTS`).
    pub cpus_from_slots: bool,
    /// Maximum number of processes (threads included) in the container; 0 means no limit.
    pub pids_limit: i64,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            // What a native job has: the host's addresses, name, resolver and peers (MPI,
            // licence servers), and no namespace, veth pair or NAT rules to make per job.
            network: "host".into(),
            stop_grace_secs: 10,
            init: true,
            cap_add: Vec::new(),
            seccomp_profile: None,
            devices: Vec::new(),
            cpus_from_slots: true,
            // A fork bomb in one job must not take the node down.
            pids_limit: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Only images already on the host run (admins stage them).
    #[default]
    Never,
    /// Pull when the image is not on the host.
    Missing,
    /// Pull every time, so a moved tag is always followed.
    Always,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    /// Patterns on the normalized reference; empty allows any image.
    pub allow: Vec<ImagePattern>,
    pub require_digest: bool,
    pub pull: PullPolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MountConfig {
    /// Mount /etc/passwd and /etc/group read-only so the user's name and groups resolve.
    pub identity: bool,
    /// Mount the user's home directory at the same path.
    pub home: bool,
    /// Mount the job's working directory at the same path.
    pub cwd: bool,
    /// Mount the per-job TMPDIR at the same path.
    pub tmpdir: bool,
    /// Admin mounts for every job: `/src[:/dst][:ro|:rw]`.
    pub extra: Vec<MountSpec>,
    /// Prefixes under which a job may ask for bind mounts.
    pub user_allow: Vec<UserMountRule>,
}

impl Default for MountConfig {
    fn default() -> Self {
        MountConfig {
            identity: true,
            home: true,
            cwd: true,
            tmpdir: true,
            extra: Vec::new(),
            user_allow: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMountRule {
    pub prefix: PathBuf,
    #[serde(default)]
    pub writable: bool,
}

impl Config {
    /// Parses and validates; `path` only names the file in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: path.into(),
            problem: describe_toml_error(text, &e),
        })?;
        config.validate().map_err(|problem| Error::Config {
            path: path.into(),
            problem,
        })?;
        Ok(config)
    }

    /// Loads the config this process may trust: the fixed path while privileged, else the
    /// caller's choice (`--config`, then `QDOCK_CONFIG`). The file must exist.
    pub fn load(requested: Option<PathBuf>) -> Result<(Config, PathBuf)> {
        let path = choose_path(requested);
        if crate::privilege::is_elevated() {
            check_trusted(&path)?;
        }
        let text = fs::read_to_string(&path).map_err(|source| Error::ConfigUnreadable {
            path: path.clone(),
            source,
        })?;
        Ok((Config::parse(&text, &path)?, path))
    }

    /// Reads the config at `path` again, for a process that lives long (the load sensor, the
    /// server JSV) so an admin's change counts without a restart. One that cannot be trusted
    /// or read leaves the one in force; the problem is returned once, for the log, not at
    /// every reload.
    pub fn reload(&mut self, path: &Path, last_problem: &mut Option<String>) -> Option<String> {
        match Config::load(Some(path.to_path_buf())) {
            Ok((fresh, _)) => {
                *self = fresh;
                *last_problem = None;
                None
            }
            Err(e) => {
                let problem = e.to_string();
                if last_problem.as_ref() == Some(&problem) {
                    return None;
                }
                *last_problem = Some(problem.clone());
                Some(problem)
            }
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let var_ok = |v: &str| {
            !v.is_empty()
                && !v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !self.engine.socket.is_absolute() {
            return Err("engine.socket must be an absolute path".into());
        }
        if self.engine.timeout_secs == 0 {
            return Err("engine.timeout_secs must be at least 1".into());
        }
        if !var_ok(&self.job.image_variable) {
            return Err(format!(
                "job.image_variable {:?} is not a variable name",
                self.job.image_variable
            ));
        }
        if !var_ok(&self.job.mounts_variable) {
            return Err(format!(
                "job.mounts_variable {:?} is not a variable name",
                self.job.mounts_variable
            ));
        }
        let net = &self.container.network;
        if net.is_empty()
            || !net
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(format!(
                "container.network {net:?} is not a network name (host, none, bridge or a Docker network)"
            ));
        }
        if self.container.stop_grace_secs > 3600 {
            return Err("container.stop_grace_secs must be at most 3600".into());
        }
        for cap in &self.container.cap_add {
            let bare = cap.strip_prefix("CAP_").unwrap_or(cap);
            if bare.is_empty()
                || !bare.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                || cap == "ALL"
            {
                return Err(format!(
                    "container.cap_add: {cap:?} is not a capability name such as NET_RAW"
                ));
            }
        }
        if let Some(p) = &self.container.seccomp_profile
            && !p.is_absolute()
        {
            return Err("container.seccomp_profile must be an absolute path".into());
        }
        for dev in &self.container.devices {
            if !dev.starts_with("/dev/") {
                return Err(format!(
                    "container.devices: {dev:?} must be a path under /dev"
                ));
            }
        }
        if !self.usage.record.is_absolute() {
            return Err("usage.record must be an absolute path".into());
        }
        self.gpus.validate()?;
        let spools = self.gridengine.spools();
        for (i, spool) in spools.iter().enumerate() {
            validate_spool(spool)?;
            if spools[..i].iter().any(|other| other.cell == spool.cell) {
                return Err(format!(
                    "gridengine.cells: cell {:?} is named twice",
                    spool.cell
                ));
            }
        }
        for rule in &self.mounts.user_allow {
            if !rule.prefix.is_absolute() || rule.prefix == Path::new("/") {
                return Err(format!(
                    "mounts.user_allow: prefix {:?} must be an absolute path other than /",
                    rule.prefix
                ));
            }
        }
        Ok(())
    }
}

impl GpuConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.complex.is_empty() || self.complex.contains(char::is_whitespace) {
            return Err(format!(
                "gpus.complex {:?} is not a complex name",
                self.complex
            ));
        }
        if !self.lock_dir.is_absolute() {
            return Err("gpus.lock_dir must be an absolute path".into());
        }
        for (i, dev) in self.devices.iter().enumerate() {
            if self.mode == GpuMode::Devices && !dev.starts_with("/dev/") {
                return Err(format!(
                    "gpus.devices: {dev:?} must be a device node under /dev in mode devices"
                ));
            }
            if dev.is_empty() || self.devices[..i].contains(dev) {
                return Err(format!("gpus.devices: {dev:?} is empty or named twice"));
            }
        }
        if let Some(p) = self.shared_devices.iter().find(|p| !p.starts_with("/dev/")) {
            return Err(format!(
                "gpus.shared_devices: {p:?} must be a path under /dev"
            ));
        }
        Ok(())
    }
}

fn choose_path(requested: Option<PathBuf>) -> PathBuf {
    if crate::privilege::is_secure() {
        let ignored: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("DOCKER_"))
            .collect();
        if !ignored.is_empty() {
            crate::report::debug(&format!(
                "ignoring {} while running setgid",
                ignored.join(", ")
            ));
        }
    }
    let asked = requested.or_else(|| std::env::var_os("QDOCK_CONFIG").map(PathBuf::from));
    match asked {
        Some(path) if !crate::privilege::is_secure() => path,
        Some(path) => {
            crate::report::debug(&format!(
                "ignoring config {} while running setgid",
                path.display()
            ));
            DEFAULT_PATH.into()
        }
        None => DEFAULT_PATH.into(),
    }
}

/// A config that an ordinary user could write would let them choose what the setgid binary does.
pub fn check_trusted(path: &Path) -> Result<()> {
    fs::symlink_metadata(path).map_err(|source| Error::ConfigUnreadable {
        path: path.into(),
        source,
    })?;
    crate::trust::check_path(path, &[0]).map_err(|problem| Error::ConfigInsecure {
        path: path.into(),
        problem,
    })
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    let Some(span) = e.span() else { return message };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    // Name the key the way the example file does: `section.key`.
    let section = before
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('[')
                .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string())
        })
        .next_back();
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_string());
    match (section, key) {
        (Some(s), Some(k)) => format!("line {line}, key {s}.{k}: {message}"),
        (None, Some(k)) => format!("line {line}, key {k}: {message}"),
        _ => format!("line {line}: {message}"),
    }
}

fn validate_spool(spool: &CellSpool) -> std::result::Result<(), String> {
    if !is_cell_name(&spool.cell) {
        return Err(format!(
            "gridengine.cell {:?} must be a cell name (letters, digits, _ . -, at most 64)",
            spool.cell
        ));
    }
    if !spool.execd_spool_dir.is_absolute() {
        return Err("gridengine.execd_spool_dir must be an absolute path".into());
    }
    let host = &spool.spool_host;
    if host.starts_with('.') || host.contains('/') {
        return Err(format!(
            "gridengine.spool_host {host:?} must be a host name, not a path"
        ));
    }
    Ok(())
}

/// A cell name that is safe in a container name and a label: Grid Engine's own are plain.
pub fn is_cell_name(cell: &str) -> bool {
    cell.len() <= 64
        && cell.starts_with(|c: char| c.is_ascii_alphanumeric())
        && cell
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/qdock/qdock.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.job.image_variable, "IMAGE");
        assert_eq!(c.engine.socket, Path::new("/var/run/docker.sock"));
        assert_eq!(c.images.pull, PullPolicy::Never);
        assert!(c.container.init);
        // A native job's network; the others stay the admin's choice.
        assert_eq!(c.container.network, "host");
        for net in ["bridge", "none", "lab-net_1.a"] {
            let c = parse(&format!("[container]\nnetwork = \"{net}\"\n")).unwrap();
            assert_eq!(c.container.network, net);
        }
    }

    #[test]
    fn example_config_documents_the_defaults() {
        let example = include_str!("../sge-conf/qdock.example.toml");
        let c = parse(example).unwrap();
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    #[test]
    fn more_cells_on_this_host_have_spools_of_their_own() {
        let c = parse(
            "[gridengine]\n[[gridengine.cells]]\ncell = \"ocs\"\nexecd_spool_dir = \"/opt/ocs/spool\"\n",
        )
        .unwrap();
        let spools = c.gridengine.spools();
        assert_eq!(spools.len(), 2);
        assert_eq!(spools[0].cell, "default");
        assert_eq!(spools[1].cell, "ocs");
        assert_eq!(spools[1].admin_user, "sgeadmin");
        for (bad, needle) in [
            ("cell = \"default\"", "named twice"),
            ("cell = \"../x\"", "cell name"),
            ("cell = \"x\"\nspool_host = \"a/b\"", "host name"),
        ] {
            let text = format!("[[gridengine.cells]]\n{bad}\nexecd_spool_dir = \"/s\"\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse("[container]\nstop_grace_secs = 5\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        assert!(e.contains("/etc/qdock/qdock.toml"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = parse("[container]\nstop_grace_secs = \"ten\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2, key container.stop_grace_secs") && e.contains("u64"),
            "{e}"
        );
    }

    #[test]
    fn not_toml_is_refused() {
        let e = parse("this is not toml").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_NEVER);
    }

    #[test]
    fn invalid_values_are_refused() {
        for (text, needle) in [
            ("[engine]\nsocket = \"docker.sock\"", "engine.socket"),
            ("[job]\nimage_variable = \"1X\"", "image_variable"),
            ("[container]\nnetwork = \"a b\"", "network"),
            ("[container]\ncap_add = [\"ALL\"]", "cap_add"),
            ("[images]\nallow = [\"UPPER/case\"]", "images.allow"),
            ("[images]\npull = \"sometimes\"", "pull"),
            ("[mounts]\nextra = [\"relative:/x\"]", "mounts.extra"),
            ("[[mounts.user_allow]]\nprefix = \"/\"", "user_allow"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn bad_patterns_and_mounts_name_line_and_key() {
        for (text, needles) in [
            (
                "[images]\nallow = [\n  \"qdock/*\",\n  \"UPPER/case\",\n]\n",
                ["line 2, key images.allow", "\"UPPER/case\""],
            ),
            (
                "[mounts]\nhome = true\nextra = [\"/a\", \"relative:/x\"]\n",
                ["line 3, key mounts.extra", "\"relative:/x\""],
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(needles.iter().all(|n| e.contains(n)), "{e}");
        }
    }

    #[test]
    fn patterns_and_mounts_are_parsed_at_load() {
        let c = parse("[images]\nallow = [\"qdock/*\"]\n[mounts]\nextra = [\"/ref:/db:ro\"]\n")
            .unwrap();
        assert_eq!(c.images.allow[0].to_string(), "qdock/*");
        assert_eq!(c.mounts.extra, [MountSpec::parse("/ref:/db:ro").unwrap()]);
    }
}
