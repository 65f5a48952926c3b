//! The host's CDI specs (Container Device Interface: `/etc/cdi`, `/var/run/cdi`), read by
//! qdock itself. Podman 4.3 resolves CDI names only on its own command line: its
//! Docker-compatible API takes a CDI name in `Devices` for a path ("stat nvidia.com/gpu=1: no
//! such file or directory") and ignores a `DeviceRequests` entry of driver `cdi` (both
//! checked here), and dockerd before 25 knows no CDI at all. So qdock applies a device's
//! edits (its nodes, mounts and variables) through the API every engine speaks.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where CDI specs live (the CDI specification's two directories).
pub const DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// One spec of a kind (`nvidia.com/gpu`): the edits every device of it needs, and each
/// device's own.
#[derive(Debug, Deserialize)]
pub struct Spec {
    pub kind: String,
    #[serde(default, rename = "containerEdits")]
    pub common: Edits,
    #[serde(default)]
    pub devices: Vec<Device>,
}

#[derive(Debug, Deserialize)]
pub struct Device {
    pub name: String,
    #[serde(default, rename = "containerEdits")]
    pub edits: Edits,
}

#[derive(Debug, Default, Deserialize)]
pub struct Edits {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default, rename = "deviceNodes")]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Programs the engine would run at container creation (NVIDIA's `update-ldcache`):
    /// qdock cannot run them through the engine's API, and says so.
    #[serde(default)]
    pub hooks: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Node {
    pub path: PathBuf,
    #[serde(rename = "hostPath")]
    pub host_path: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
pub struct Mount {
    #[serde(rename = "hostPath")]
    pub host_path: PathBuf,
    #[serde(rename = "containerPath")]
    pub container_path: PathBuf,
    #[serde(default)]
    pub options: Vec<String>,
}

/// The JSON specs of `kind` in [`DIRS`], in file-name order. A spec the admin writes as YAML
/// is not read: `nvidia-ctk cdi generate --format=json` writes JSON.
pub fn specs(kind: &str) -> Vec<Spec> {
    let mut files: Vec<PathBuf> = DIRS
        .iter()
        .filter_map(|d| std::fs::read_dir(Path::new(d)).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter_map(|text| parse(&text, kind))
        .collect()
}

pub fn parse(text: &[u8], kind: &str) -> Option<Spec> {
    serde_json::from_slice::<Spec>(text)
        .ok()
        .filter(|s| s.kind == kind)
}

/// The CDI names (`kind=name`) of a spec's devices; the catch-all `all` is no one GPU.
pub fn names(spec: &Spec) -> impl Iterator<Item = String> + '_ {
    spec.devices
        .iter()
        .filter(|d| d.name != "all")
        .map(|d| format!("{}={}", spec.kind, d.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_gives_its_kinds_devices_but_all() {
        let text = br#"{"cdiVersion":"0.5.0","kind":"qdock.test/gpu",
            "containerEdits":{"env":["A=1"]},
            "devices":[{"name":"0","containerEdits":{"deviceNodes":[{"path":"/dev/g0"}]}},
            {"name":"1","containerEdits":{"deviceNodes":[{"path":"/dev/g1","hostPath":"/dev/h1"}],
              "mounts":[{"hostPath":"/l","containerPath":"/c","options":["ro","bind"]}]}},
            {"name":"all"}]}"#;
        let spec = parse(text, "qdock.test/gpu").unwrap();
        assert_eq!(
            names(&spec).collect::<Vec<_>>(),
            vec!["qdock.test/gpu=0", "qdock.test/gpu=1"]
        );
        assert_eq!(spec.common.env, vec!["A=1"]);
        assert_eq!(
            spec.devices[1].edits.nodes[0].host_path,
            Some("/dev/h1".into())
        );
        assert!(parse(text, "nvidia.com/gpu").is_none());
        assert!(parse(b"kind: qdock.test/gpu", "qdock.test/gpu").is_none());
    }
}
