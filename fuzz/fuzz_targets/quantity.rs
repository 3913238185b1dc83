//! Resource quantities from pod specs (`cpu: 100m`, `memory: 1Gi`) never
//! panic or overflow, and whole units never undercount thousandths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuage_model::quantity::Quantity;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(q) = Quantity::parse(text) {
        assert!(q.value() * 1000 >= q.milli());
    }
});
