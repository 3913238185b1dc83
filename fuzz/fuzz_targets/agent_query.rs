//! The agent's `/containerLogs` and `/exec` query strings (forwarded from
//! kubectl through the API server) never panic their parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuage_agent::server::logs::options::LogOptions;
use nuage_agent::server::ExecOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return;
    };
    let _ = LogOptions::parse(&query, time::OffsetDateTime::UNIX_EPOCH);
    let _ = ExecOptions::parse(&query);
});
