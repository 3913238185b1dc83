//! Image references from pod specs never panic the parser, and a parsed
//! reference's normalized name parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuage_agent::images::Reference;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = Reference::parse(text) {
        let name = reference.name();
        let again = Reference::parse(&name).expect("a normalized name parses");
        assert_eq!(again.name(), name);
    }
});
