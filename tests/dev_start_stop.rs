mod common;
#[path = "conformance/start_stop.rs"]
mod start_stop;
