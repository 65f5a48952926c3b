//! `packed_job::hard_requests` on anything: no panic, and no allocation a count in the file
//! asks for beyond what the file holds; a file it believes is job 2651's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qdock::packed_job::hard_requests;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(_)) = hard_requests(data, 2651) {
        // The job number is the first field after the header, the status and its bits.
        assert!(data.len() > 8, "{data:?}");
    }
});
