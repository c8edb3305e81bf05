//! Procedural macros for canopy. The derives land with the macros issue; this crate exists so the
//! workspace layout is the one DESIGN.md fixes.
