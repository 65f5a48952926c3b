//! This host's GPUs: the ones `[gpus] devices` lists, else those of the host's CDI specs
//! (`cdi`), else those `nvidia-smi -L` lists.

use std::path::Path;
use std::process::{Command, Stdio};

use super::Gpu;
use crate::config::{GpuConfig, GpuMode};

const NVIDIA_SMI: &str = "/usr/bin/nvidia-smi";

/// This host's GPUs in the order they are handed out; with where they were found.
pub fn host_gpus(config: &GpuConfig) -> (Vec<Gpu>, String) {
    let (ids, source) = if !config.devices.is_empty() {
        (config.devices.clone(), "[gpus] devices".to_string())
    } else if config.mode == GpuMode::Cdi {
        let ids = super::cdi::specs(&config.cdi_kind)
            .iter()
            .flat_map(|spec| super::cdi::names(spec).collect::<Vec<_>>())
            .collect();
        let dirs = super::cdi::DIRS.join(", ");
        (
            ids,
            format!("the CDI specs of {} in {dirs}", config.cdi_kind),
        )
    } else {
        (nvidia_smi(config), format!("{NVIDIA_SMI} -L"))
    };
    let gpus = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Gpu::new(id, i, config.mode))
        .collect();
    (gpus, source)
}

/// The GPUs `nvidia-smi -L` lists, named as `mode` hands them to the engine.
fn nvidia_smi(config: &GpuConfig) -> Vec<String> {
    if !Path::new(NVIDIA_SMI).exists() {
        return Vec::new();
    }
    let out = Command::new(NVIDIA_SMI)
        .arg("-L")
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let text = out.map(|o| o.stdout).unwrap_or_default();
    smi_gpus(&String::from_utf8_lossy(&text))
        .into_iter()
        .map(|(index, uuid)| match config.mode {
            GpuMode::Devices => format!("/dev/nvidia{index}"),
            GpuMode::Cdi => format!("{}={index}", config.cdi_kind),
            GpuMode::Toolkit => uuid,
        })
        .collect()
}

/// `GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-8a1b…)` lines: index and UUID. MIG lines (with
/// two leading spaces) are no GPU of their own here.
fn smi_gpus(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("GPU ")?;
            let (index, rest) = rest.split_once(':')?;
            let uuid = rest.rsplit_once("(UUID: ")?.1.strip_suffix(')')?;
            Some((index.parse().ok()?, uuid.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_give_index_and_uuid() {
        let text = "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-8a1b)\n  MIG 1g.5gb Device 0: (UUID: MIG-1)\nGPU 1: Tesla T4 (UUID: GPU-9c2d)\n";
        assert_eq!(
            smi_gpus(text),
            vec![(0, "GPU-8a1b".into()), (1, "GPU-9c2d".into())]
        );
    }
}
