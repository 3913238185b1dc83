//! Request decoding and admission: any bytes, as any content type, for any
//! resource, must give an object or a 4xx, never a panic.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use nuage_api::request::FieldValidation;
use nuage_model::registry::RESOURCES;

const TYPES: [&str; 4] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let [r, t, body @ ..] = data else {
        return;
    };
    let rt = &RESOURCES[*r as usize % RESOURCES.len()];
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TYPES[*t as usize % TYPES.len()]),
    );
    for fv in [FieldValidation::Strict, FieldValidation::Warn] {
        if let Err(e) = nuage_api::rest::check_write(rt, &headers, body, fv) {
            assert!((400..500).contains(&e.code), "{} for {:?}", e.code, e.message);
        }
    }
});
