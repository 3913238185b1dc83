//! Label selector parsing never panics, and a parsed selector's canonical
//! string parses back to the same selector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuage_model::selector::LabelSelector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(selector) = LabelSelector::parse(text) {
        let canonical = selector.to_string();
        let reparsed = LabelSelector::parse(&canonical).expect("canonical form parses");
        assert_eq!(reparsed.to_string(), canonical);
    }
});
