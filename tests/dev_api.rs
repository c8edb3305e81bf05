#[path = "conformance/api_significant.rs"]
mod api_significant;
mod common;
