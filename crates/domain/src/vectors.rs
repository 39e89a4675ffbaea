//! Loads `shared/vectors/conventions.json` for the unit tests.

use alloy_primitives::U256;
use std::str::FromStr;

/// The worked examples of SPEC §5. The file lives in the shared folder beside the
/// repository; a copy is vendored in `tests/vectors/` so the crate builds alone.
pub fn conventions() -> serde_json::Value {
    let text = include_str!("../tests/vectors/conventions.json");
    serde_json::from_str(text).expect("conventions.json is valid JSON")
}

pub fn u256(text: &str) -> U256 {
    U256::from_str(text).expect("a decimal uint256")
}

/// Compares decimal strings as exact numbers: trailing fractional zeros do not matter.
pub fn decimal_eq(a: &str, b: &str) -> bool {
    fn normalize(s: &str) -> String {
        match s.split_once('.') {
            Some((whole, fraction)) => {
                let fraction = fraction.trim_end_matches('0');
                if fraction.is_empty() { whole.to_owned() } else { format!("{whole}.{fraction}") }
            }
            None => s.to_owned(),
        }
    }
    normalize(a) == normalize(b)
}

#[test]
fn vendored_vectors_equal_the_shared_ones() {
    // The shared folder sits beside the repository on developer machines and in CI.
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors/conventions.json");
    if let Ok(text) = std::fs::read_to_string(shared) {
        assert_eq!(text, include_str!("../tests/vectors/conventions.json"), "re-copy shared/vectors/conventions.json");
    }
}
