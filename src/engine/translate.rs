//! The pure container spec in the engine's types: a translation only, every choice was
//! made in the spec (src/spec.rs); and the engine's own limits as `/proc` gives them.

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, HostConfigLogConfig, Mount,
    MountType, ResourcesUlimits,
};

use crate::spec::{ContainerSpec, Stdin, WindowSize};

/// The ulimits (`nofile`, `nproc`; soft, hard, -1 unlimited) a `/proc/<pid>/limits` text
/// gives for the rows named `rows` ("Max open files", "Max processes").
pub(super) fn process_limits(text: &str, rows: &[&str]) -> Vec<(String, i64, i64)> {
    let value = |v: &str| match v {
        "unlimited" => Some(-1),
        v => v.parse().ok(),
    };
    text.lines()
        .filter_map(|line| {
            let row = rows.iter().find(|r| line.starts_with(*r))?;
            let mut values = line[row.len()..].split_whitespace();
            let soft = value(values.next()?)?;
            let hard = value(values.next()?)?;
            let name = match *row {
                "Max open files" => "nofile",
                _ => "nproc",
            };
            Some((name.to_string(), soft, hard))
        })
        .collect()
}

/// `extra` ulimits for what the spec does not name itself.
pub(super) fn create_body(
    spec: &ContainerSpec,
    extra: &[(String, i64, i64)],
) -> ContainerCreateBody {
    let mounts = spec
        .mounts
        .iter()
        .map(|m| Mount {
            typ: Some(MountType::BIND),
            source: Some(m.source.display().to_string()),
            target: Some(m.target.display().to_string()),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    let devices = spec
        .devices
        .iter()
        .map(|d| {
            let (host, inside) = d.split_once(':').unwrap_or((d, d));
            DeviceMapping {
                path_on_host: Some(host.to_string()),
                path_in_container: Some(inside.to_string()),
                cgroup_permissions: Some("rwm".into()),
            }
        })
        .collect();
    let unnamed = extra
        .iter()
        .filter(|(name, _, _)| !spec.ulimits.iter().any(|(n, _, _)| n == name));
    let ulimits = spec
        .ulimits
        .iter()
        .chain(unnamed)
        .map(|(name, soft, hard)| ResourcesUlimits {
            name: Some(name.clone()),
            soft: Some(*soft),
            hard: Some(*hard),
        })
        .collect();
    let terminal = match spec.stdin {
        Stdin::Terminal(size) => Some(size),
        Stdin::Script | Stdin::Relayed => None,
    };
    // A translation only: every choice was made in the spec.
    let host_config = HostConfig {
        mounts: Some(mounts),
        network_mode: Some(spec.network.clone()),
        init: Some(spec.init),
        cap_drop: Some(spec.cap_drop.clone()),
        cap_add: Some(spec.cap_add.clone()),
        security_opt: Some(spec.security_opt.clone()),
        privileged: Some(spec.privileged),
        ipc_mode: Some(spec.ipc_mode.clone()),
        pid_mode: spec.pid_mode.clone(),
        readonly_rootfs: Some(spec.readonly_rootfs),
        group_add: Some(spec.groups.clone()),
        devices: Some(devices),
        // `toolkit`: the NVIDIA runtime hands over exactly these (`--gpus device=…`).
        device_requests: (!spec.gpu_ids.is_empty()).then(|| {
            vec![DeviceRequest {
                driver: Some("nvidia".into()),
                device_ids: Some(spec.gpu_ids.clone()),
                capabilities: Some(vec![vec!["gpu".into()]]),
                ..Default::default()
            }]
        }),
        console_size: terminal
            .and_then(WindowSize::known)
            .map(|s| vec![s.rows.into(), s.cols.into()]),
        memory: spec.memory,
        memory_swap: spec.memory_swap,
        nano_cpus: spec.nano_cpus,
        cpuset_cpus: spec.cpuset_cpus.clone(),
        pids_limit: spec.pids_limit,
        ulimits: Some(ulimits),
        // The starter inspects the container after its exit, then removes it.
        auto_remove: Some(false),
        log_config: Some(HostConfigLogConfig {
            typ: Some(spec.log_driver.clone()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(spec.user.clone()),
        entrypoint: Some(spec.entrypoint.clone()),
        cmd: Some(spec.cmd.clone()),
        working_dir: Some(spec.workdir.clone()),
        hostname: spec.hostname.clone(),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        // Every job's stdin is connected; closing it ends the container's. Its output goes
        // through the starter's own pipes, or, on a terminal, through the engine.
        attach_stdin: Some(true),
        attach_stdout: Some(terminal.is_some()),
        attach_stderr: Some(terminal.is_some()),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(terminal.is_some()),
        stop_timeout: Some(i64::try_from(spec.stop_grace_secs).unwrap_or(i64::MAX)),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_own_limits_are_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             32768                32768                processes \n\
                    Max open files            1024                 unlimited            files     \n\
                    Max locked memory         8388608              8388608              bytes     \n";
        assert_eq!(
            process_limits(text, &["Max open files", "Max processes"]),
            vec![("nproc".into(), 32768, 32768), ("nofile".into(), 1024, -1)]
        );
    }
}
