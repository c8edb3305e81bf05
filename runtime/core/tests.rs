//! Unit tests of the pure core: one per rule of spec §1, no runtime.
#![allow(unused_imports)]
use super::*;
