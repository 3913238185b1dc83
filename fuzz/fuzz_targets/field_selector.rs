//! Field selector parsing never panics, and a parsed selector's canonical
//! string parses back to the same terms (possibly in another order: terms
//! are sorted by their raw text before parsing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuage_model::selector::{FieldRequirement, FieldSelector};

fn terms(selector: &FieldSelector) -> Vec<(String, bool, String)> {
    let mut terms: Vec<_> = selector
        .requirements()
        .iter()
        .map(|r: &FieldRequirement| (r.field.clone(), r.negated, r.value.clone()))
        .collect();
    terms.sort();
    terms
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(selector) = FieldSelector::parse(text) {
        let reparsed = FieldSelector::parse(&selector.to_string()).expect("canonical form parses");
        assert_eq!(terms(&reparsed), terms(&selector));
        let _ = selector.matches(|field| Some(field.to_string()));
    }
});
