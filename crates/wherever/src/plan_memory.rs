//! The memory sizes of plan options (`processes:2,mem=200MB`): a number and a
//! unit, decimal (`KB`, `MB`, `GB`, `TB`, as Dask reads them) or binary (`KiB`,
//! `MiB`, `GiB`, `TiB`), or plain bytes (`B`).

/// The largest memory size a plan may give: 1 PB.
pub const MAX_MEMORY_SIZE: u64 = 1_000_000_000_000_000;

use wherever_core::byte_units::{byte_unit_factor, BYTE_UNITS as UNITS};

/// The bytes `text` says (`200MB`, `1.5GiB`); the error says what was expected.
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let expected = || {
        format!("expected a size with a unit, e.g. 4GB or 512MiB (units: {UNITS}), got `{text}`")
    };
    let value: f64 = number.parse().map_err(|_| expected())?;
    if unit.is_empty() {
        return Err(format!(
            "`{text}` has no unit: expected a size with a unit, e.g. {text}MB (units: {UNITS})"
        ));
    }
    let factor = byte_unit_factor(unit).ok_or_else(expected)?;
    let bytes = value * factor;
    if bytes < 1.0 {
        return Err(format!(
            "`{text}` is zero: a memory limit must be at least 1 byte"
        ));
    }
    if bytes > MAX_MEMORY_SIZE as f64 {
        return Err(format!("`{text}` is too large (at most 1000TB)"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_decimal_and_binary_units() {
        assert_eq!(parse_memory_size("200MB"), Ok(200_000_000));
        assert_eq!(parse_memory_size("4GB"), Ok(4_000_000_000));
        assert_eq!(parse_memory_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_memory_size("100 kb"), Ok(100_000));
        assert_eq!(parse_memory_size("4096B"), Ok(4096));
    }

    #[test]
    fn malformed_sizes_say_what_was_expected() {
        for (text, expected) in [
            ("200", "`200` has no unit"),
            ("0MB", "`0MB` is zero"),
            ("0.1B", "is zero"),
            ("lots", "expected a size with a unit, e.g. 4GB or 512MiB"),
            ("", "expected a size with a unit"),
            ("12XB", "got `12XB`"),
            ("1.2.3GB", "got `1.2.3GB`"),
            ("-5MB", "got `-5MB`"),
            ("2000TB", "too large"),
            ("99999999999999999999999GB", "too large"),
        ] {
            let error = parse_memory_size(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
