//! Compile errors of the macros: `tests/ui/fail`, each case with the `.stderr` a user sees. One
//! test function, and no `pass` cases (those are in `tests/macros_pass.rs`): trybuild then builds
//! every case in one `cargo check`, which is what keeps this affordable on a small machine.
//!
//! After changing a message on purpose: `TRYBUILD=overwrite cargo test --test macros_ui`, then
//! read every changed `.stderr`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
}

/// The generated code names only `::canopy::…`, `::core::…` and `::std::…` paths, so a crate
/// that uses the macros depends on canopy alone.
#[test]
fn generated_code_names_only_canopy_core_and_std() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/macros/src");
    for entry in std::fs::read_dir(dir).expect("macros/src") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        for foreign in ["::ractor", "::tokio", "::futures", "::parking_lot"] {
            for (at, _) in text.match_indices(foreign) {
                let before = &text[..at];
                assert!(
                    before.ends_with("canopy"),
                    "{} names {foreign} outside ::canopy",
                    path.display()
                );
            }
        }
    }
}
