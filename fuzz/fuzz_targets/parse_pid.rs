//! `parse_pid` on anything: a pid it accepts is a plain decimal above 1, never 0, 1 or a
//! negative number (which would signal every process, init, or a whole group).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qdock::process::parse_pid;

fuzz_target!(|text: &str| {
    if let Ok(pid) = parse_pid(text) {
        assert!(pid > 1, "{text:?} -> {pid}");
        assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
        assert_eq!(text.trim_start_matches('0'), pid.to_string(), "{text:?}");
    }
});
