//! GraphQL documents: parse, validate and plan any text within the default limits without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::graphql::{plan, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let services = vec!["users".to_string(), "user-svc".to_string()];
        let _ = plan(services, query, None, None, &Limits::default());
    }
});
