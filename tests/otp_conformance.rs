//! OTP conformance: the cases of OTP's `supervisor_SUITE`, static and dynamic, each test
//! named after its OTP case. Where Rust's types make a case impossible, the test keeps the name and
//! checks the nearest Rust equivalent, with a comment saying so.

mod common;

#[path = "conformance/api_significant.rs"]
mod api_significant;
#[path = "conformance/dynamic.rs"]
mod dynamic;
#[path = "conformance/restarts.rs"]
mod restarts;
#[path = "conformance/start_stop.rs"]
mod start_stop;
