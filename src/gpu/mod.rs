//! GPU jobs: the scheduler's grant, and only it, reaches the job. Grid Engine counts a
//! consumable (`complex_values gpu=4`, `qsub -l gpu=2`); Son of Grid Engine says nothing of
//! which devices, so qdock picks them per host and records who holds each ([`ledger`]). How
//! many the job was granted comes from the execd's own copy of the job
//! ([`crate::packed_job`]): `CUDA_VISIBLE_DEVICES`, `SGE_HGR_*` and `SGE_BINDING` in the
//! job's environment are the caller's to set and count for nothing.

pub mod cdi;
mod found;
pub mod ledger;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::config::{GpuConfig, GpuMode};
use crate::job_proof::SpooledJob;
use crate::mount::MountSpec;
use crate::packed_job::Request;

pub use found::host_gpus;

/// The variable CUDA (and nvidia-smi) read to choose devices: set by qdock for a GPU job.
pub const VISIBLE: &str = "CUDA_VISIBLE_DEVICES";
/// The largest packed job read: far above any real one (a few KiB).
const PACKED_MAX: u64 = 16 << 20;

/// One GPU of this host, as `[gpus]` or the host's specs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// A device node (`devices`), a CDI name (`cdi`) or an engine device id (`toolkit`).
    pub id: String,
    /// The host's number for it: what a native job's `CUDA_VISIBLE_DEVICES` names.
    pub index: String,
}

impl Gpu {
    /// `id` as the `position`th GPU of the host: the number a node or CDI name ends in
    /// (`/dev/nvidia2`, `nvidia.com/gpu=2`), else its position; an engine id (a UUID, which
    /// CUDA takes as well) stands for itself.
    pub fn new(id: &str, position: usize, mode: GpuMode) -> Gpu {
        let tail = id.rsplit(['/', '=']).next().unwrap_or(id);
        let digits = tail.trim_start_matches(|c: char| !c.is_ascii_digit());
        let index = match mode {
            GpuMode::Toolkit => id.to_string(),
            _ if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => {
                digits.to_string()
            }
            _ => position.to_string(),
        };
        Gpu {
            id: id.to_string(),
            index,
        }
    }
}

/// What a container gets for the job's GPUs, as `[gpus] mode` says: each mode is one
/// translation here, and the spec hands the result to the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Share {
    pub gpus: Vec<Gpu>,
    /// Device nodes: on the host, in the container.
    pub nodes: Vec<(PathBuf, PathBuf)>,
    pub mounts: Vec<MountSpec>,
    pub env: Vec<String>,
    /// The NVIDIA container toolkit's device ids (`toolkit`).
    pub toolkit_ids: Vec<String>,
    /// What the engine's API cannot carry (CDI hooks): said in the job's `.e` file.
    pub unapplied: Vec<String>,
}

/// The share of `gpus`, the job's granted GPUs, under `config`.
pub fn share(gpus: Vec<Gpu>, config: &GpuConfig) -> Result<Share, String> {
    let mut share = Share::default();
    if gpus.is_empty() {
        return Ok(share);
    }
    let same = |p: &PathBuf| (p.clone(), p.clone());
    match config.mode {
        GpuMode::Devices => {
            share.nodes = gpus.iter().map(|g| same(&PathBuf::from(&g.id))).collect();
            let present = config.shared_devices.iter().filter(|p| p.exists());
            share.nodes.extend(present.map(same));
            share.mounts = config.libraries.clone();
        }
        GpuMode::Cdi => {
            let specs = cdi::specs(&config.cdi_kind);
            let mut used = Vec::new();
            for gpu in &gpus {
                let (spec, device) = specs
                    .iter()
                    .find_map(|spec| {
                        let name = gpu.id.strip_prefix(&format!("{}=", spec.kind))?;
                        Some((spec, spec.devices.iter().find(|d| d.name == name)?))
                    })
                    .ok_or_else(|| {
                        format!(
                            "{} is in no CDI spec of {} in {}",
                            gpu.id,
                            config.cdi_kind,
                            cdi::DIRS.join(", ")
                        )
                    })?;
                if !used.iter().any(|s| std::ptr::eq(*s, spec)) {
                    used.push(spec);
                    apply(&mut share, &spec.common);
                }
                apply(&mut share, &device.edits);
            }
        }
        GpuMode::Toolkit => share.toolkit_ids = gpus.iter().map(|g| g.id.clone()).collect(),
    }
    share.gpus = gpus;
    Ok(share)
}

fn apply(share: &mut Share, edits: &cdi::Edits) {
    share.env.extend(edits.env.iter().cloned());
    share.nodes.extend(edits.nodes.iter().map(|n| {
        let host = n.host_path.clone().unwrap_or_else(|| n.path.clone());
        (host, n.path.clone())
    }));
    share.mounts.extend(edits.mounts.iter().map(|m| MountSpec {
        source: m.host_path.clone(),
        target: m.container_path.clone(),
        read_only: m.options.iter().any(|o| o == "ro"),
    }));
    if !edits.hooks.is_empty() {
        share
            .unapplied
            .push(format!("{} CDI hook(s)", edits.hooks.len()));
    }
}

/// What `qdock check` says of this host's GPUs: which were found where, and whether the
/// mode can hand each of them over.
pub fn findings(config: &GpuConfig) -> Vec<(bool, String)> {
    let (gpus, source) = host_gpus(config);
    if gpus.is_empty() {
        return vec![(
            true,
            format!("gpus: none found ({source}); GPU jobs cannot run here"),
        )];
    }
    let ids: Vec<&str> = gpus.iter().map(|g| g.id.as_str()).collect();
    let mut out = vec![(
        true,
        format!("gpus: {} from {source}: {}", gpus.len(), ids.join(", ")),
    )];
    let mode = match config.mode {
        GpuMode::Devices => "devices",
        GpuMode::Cdi => "cdi",
        GpuMode::Toolkit => "toolkit",
    };
    match share(gpus.clone(), config) {
        Ok(share) => {
            let missing: Vec<String> = share
                .nodes
                .iter()
                .filter(|(host, _)| !is_char_device(host))
                .map(|(host, _)| host.display().to_string())
                .collect();
            if missing.is_empty() {
                out.push((true, format!("gpus: mode {mode} hands each of them over")));
            } else {
                out.push((
                    false,
                    format!(
                        "gpus: mode {mode}: {} is no character device; fix [gpus] devices",
                        missing.join(", ")
                    ),
                ));
            }
            if config.mode == GpuMode::Toolkit {
                out.push((
                    true,
                    "gpus: mode toolkit needs the NVIDIA container toolkit as the engine's runtime"
                        .into(),
                ));
            }
        }
        Err(problem) => out.push((false, format!("gpus: mode {mode}: {problem}"))),
    }
    let dir = &config.lock_dir;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() && m.uid() == 0 && m.mode() & 0o1777 == 0o770 => {
            out.push((true, format!("gpus: holdings in {}", dir.display())));
        }
        _ => out.push((
            false,
            format!(
                "gpus: {} is missing or not root's with mode 2770; sge-conf/setup-host install makes it",
                dir.display()
            ),
        )),
    }
    out
}

fn is_char_device(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// `CUDA_VISIBLE_DEVICES` for `gpus`: inside a container the devices are numbered from 0;
/// natively, the host's numbers.
pub fn visible(gpus: &[Gpu], in_container: bool) -> String {
    let names: Vec<String> = if in_container {
        (0..gpus.len()).map(|i| i.to_string()).collect()
    } else {
        gpus.iter().map(|g| g.index.clone()).collect()
    };
    names.join(",")
}

/// What job `job_id`, as its spool proves it, holds on this host: its hard request of
/// `config.complex` (`-l gpu=2`), once per slot here (a `YES` consumable) or once for the job
/// on its master host (`JOB`); or the ids an RSMAP grant names. Nothing for a job that asked
/// for none; no one else's word counts. The execd writes its copy of every job it
/// runs; where there is none (a starter tried by hand beside a stand-in spool) there is no
/// grant either. A copy that cannot be read is an error: the job may have asked for GPUs. One
/// of a format qdock does not read (another Grid Engine) is no grant, said in the job's `.e`
/// file: failing every job of a GPU host would break the whole queue.
pub fn granted(job: &SpooledJob, job_id: u64, config: &GpuConfig) -> Result<Granted, String> {
    let Some(packed) = read_packed(job)? else {
        return Ok(Granted::default());
    };
    let read = crate::packed_job::hard_requests(&packed, job_id)
        .map_err(|e| format!("the execd's copy of the job cannot be read ({e})"))?;
    let Some(requests) = read else {
        crate::report::warn(
            "this Grid Engine's copy of the job is in a format qdock reads no GPU grant from (Son of Grid Engine 8.1.9's and Open Cluster Scheduler 9.1's it reads): the job gets no GPU",
        );
        return Ok(Granted::default());
    };
    // A grant per host (Open Cluster Scheduler's) counts on its own host only.
    let here = |r: &&Request| {
        r.host.as_deref().is_none_or(|h| {
            h == job.spool_host || h.split('.').next() == Some(job.spool_host.as_str())
        })
    };
    let mine: Vec<&Request> = requests
        .iter()
        .filter(|r| r.name == config.complex)
        .filter(here)
        .collect();
    let Some(first) = mine.first() else {
        return Ok(Granted::default());
    };
    if mine.iter().any(|r| !r.ids.is_empty()) {
        let ids: Vec<String> = mine.iter().flat_map(|r| r.ids.iter().cloned()).collect();
        return Ok(Granted {
            count: ids.len(),
            ids,
        });
    }
    Ok(Granted {
        count: host_count(first, job)?,
        ids: Vec::new(),
    })
}

/// What the job holds here: a count, and the ids of the devices when Grid Engine chose them
/// (an RSMAP grant, which then names the host's GPUs by their numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    pub count: usize,
    pub ids: Vec<String>,
}

fn host_count(request: &Request, job: &SpooledJob) -> Result<usize, String> {
    let amount = request.amount;
    if amount < 0.0 || amount.fract() != 0.0 || amount > 1024.0 {
        return Err(format!(
            "the job asks for {}={}: GPUs are counted whole",
            request.name, request.text
        ));
    }
    let amount = amount as usize;
    Ok(if request.per_job {
        // Counted once, on the master host: a task on another host holds none of it.
        if job.pe_task.is_some() { 0 } else { amount }
    } else {
        amount * job.host_slots.unwrap_or(1) as usize
    })
}

/// The execd's packed copy of the job: None where the spool holds none that is the
/// execd's (checked at the proof).
fn read_packed(job: &SpooledJob) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = job.packed_job.as_ref() else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.take(PACKED_MAX).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {} ({e})", path.display()))?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_is_numbered_as_its_host_numbers_it() {
        let index = |id, pos, mode| Gpu::new(id, pos, mode).index;
        assert_eq!(index("/dev/nvidia2", 0, GpuMode::Devices), "2");
        assert_eq!(index("/dev/qdock-gpu3", 1, GpuMode::Devices), "3");
        assert_eq!(index("/dev/dri/renderD", 1, GpuMode::Devices), "1");
        assert_eq!(index("nvidia.com/gpu=1", 0, GpuMode::Cdi), "1");
        assert_eq!(index("nvidia.com/gpu=all", 4, GpuMode::Cdi), "4");
        assert_eq!(index("GPU-8a1b", 0, GpuMode::Toolkit), "GPU-8a1b");
    }

    #[test]
    fn a_container_counts_its_gpus_from_zero_a_native_job_as_the_host_does() {
        let gpus = [
            Gpu::new("/dev/nvidia2", 0, GpuMode::Devices),
            Gpu::new("/dev/nvidia3", 1, GpuMode::Devices),
        ];
        assert_eq!(visible(&gpus, true), "0,1");
        assert_eq!(visible(&gpus, false), "2,3");
    }
}
