//! Compile-fail tests: every misuse of the macros is rejected with an error pointing at
//! the offending token. Regenerate the `.stderr` files with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
