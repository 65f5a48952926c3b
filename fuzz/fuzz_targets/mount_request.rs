//! `parse_mount_request` and `authorize_mount` on anything: never a panic; an accepted mount
//! is absolute, without `.`/`..`, commas or NUL, under an allowed prefix, read-only unless
//! the prefix allows writes, and never onto a system directory.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use qdock::config::UserMountRule;
use qdock::mount::MountSpec;
use qdock::policy::{authorize_mount, parse_mount_request};

fn clean(p: &Path) -> bool {
    let s = p.to_string_lossy();
    p.is_absolute()
        && !p
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        && !s.contains("/./")
        && !s.contains([',', '\0', ':'])
}

fuzz_target!(|request: &str| {
    let _ = MountSpec::parse(request);
    let Ok(mounts) = parse_mount_request(request) else {
        return;
    };
    let rules = [
        UserMountRule {
            prefix: "/data".into(),
            writable: false,
        },
        UserMountRule {
            prefix: "/scratch/users".into(),
            writable: true,
        },
    ];
    for m in &mounts {
        assert!(clean(&m.source), "{m:?} from {request:?}");
        assert!(clean(&m.target), "{m:?} from {request:?}");
        // The fuzzer plays the resolved path too: the request itself, as if no link.
        if let Ok(ok) = authorize_mount(m, &m.source, &rules) {
            let rule = rules
                .iter()
                .find(|r| ok.source.starts_with(&r.prefix))
                .unwrap_or_else(|| panic!("{ok:?} is under no prefix"));
            assert!(ok.read_only || rule.writable, "{ok:?}");
            assert_eq!(ok.read_only, m.read_only);
            assert!(ok.target != Path::new("/"), "{ok:?}");
            for system in ["/proc", "/sys", "/dev", "/etc"] {
                assert!(!ok.target.starts_with(system), "{ok:?}");
            }
        }
    }
});
