//! The job's environment exactly as execd passed it. Running setgid, glibc strips variables such
//! as TMPDIR and LD_LIBRARY_PATH from `environ` before main; those belong to the job all the
//! same, so they are read back from the strings the kernel copied at exec, which glibc leaves
//! untouched. They are only ever handed on (to the container, or to a native job after the
//! privilege is dropped), never used by this process.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use crate::job::Env;

pub fn original() -> Env {
    exec_environment().unwrap_or_else(Env::from_process)
}

fn exec_environment() -> Option<Env> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // env_start and env_end are fields 50 and 51; fields[0] is field 3.
    let start: usize = fields.get(47)?.parse().ok()?;
    let end: usize = fields.get(48)?.parse().ok()?;
    if start == 0 || end <= start || end - start > 64 << 20 {
        return None;
    }
    // SAFETY: [env_start, env_end) is this process's own environment block, mapped readable
    // on the initial stack for the life of the process and never freed or moved. (The safe
    // way, /proc/self/environ, is root's once a setgid exec made the process undumpable.)
    let block = unsafe { std::slice::from_raw_parts(start as *const u8, end - start) };
    let pairs = block
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let eq = entry.iter().position(|&b| b == b'=')?;
            (eq > 0).then(|| {
                (
                    OsString::from_vec(entry[..eq].to_vec()),
                    OsString::from_vec(entry[eq + 1..].to_vec()),
                )
            })
        })
        .collect();
    Some(Env(pairs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_exec_environment() {
        let env = super::exec_environment().expect("/proc/self/stat gives env_start/env_end");
        // PATH is set for every test run by cargo.
        assert!(env.get("PATH").is_some());
        assert_eq!(
            env.get("CARGO_PKG_NAME").map(|v| v.to_os_string()),
            Some("qdock".into())
        );
    }
}
