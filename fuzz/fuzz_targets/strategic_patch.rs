//! Strategic merge patch and apply never panic: the input is two JSON
//! documents (live object, patch) separated by a NUL byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuage_model::patch::{apply::apply, strategic::strategic_merge_patch};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(live), Some(patch)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(live), Ok(patch)) = (
        serde_json::from_slice::<Value>(live),
        serde_json::from_slice::<Value>(patch),
    ) else {
        return;
    };
    let _ = strategic_merge_patch(&live, &patch);
    let _ = apply(Some(&live), &patch);
});
