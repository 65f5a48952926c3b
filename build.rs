//! Builds `qdock-stdio` (helper/qdock-stdio.rs), the job-side end of the output pipes, with
//! the C runtime linked statically so it runs in any image (`FROM scratch` too), and puts it
//! beside the package's binaries, where the starter looks for it. Cargo cannot link one
//! binary of a package statically and the others not, hence rustc by hand; the helper uses
//! std only, so no dependency is needed.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "helper/qdock-stdio.rs";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let built = out_dir.join("qdock-stdio");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--target",
            &target,
            "--crate-name",
            "qdock_stdio",
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "opt-level=s"])
        .args(["-C", "panic=abort", "-C", "strip=symbols", "-o"])
        .arg(&built)
        .arg(SOURCE)
        .status()
        .expect("run rustc for the qdock-stdio helper");
    assert!(status.success(), "building {SOURCE} failed");
    // OUT_DIR is <profile dir>/build/<package>-<hash>/out: the binaries live in the profile dir.
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR lies three levels below the profile directory");
    let installed = profile_dir.join("qdock-stdio");
    // Replace by rename: a test process may be running the old one.
    let staged = profile_dir.join(".qdock-stdio.new");
    std::fs::copy(&built, &staged).expect("copy qdock-stdio beside the binaries");
    std::fs::rename(&staged, &installed).expect("move qdock-stdio into place");
}
