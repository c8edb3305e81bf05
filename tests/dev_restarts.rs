mod common;
#[path = "conformance/restarts.rs"]
mod restarts;
