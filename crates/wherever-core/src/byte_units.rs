//! The byte units that sizes in plans and resources take: decimal (`KB`, `MB`,
//! `GB`, `TB`, as Dask reads them), binary (`KiB`, `MiB`, `GiB`, `TiB`) and `B`.

/// The units [`byte_unit_factor`] knows, for error messages.
pub const BYTE_UNITS: &str = "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB";

/// Bytes per `unit` (any case, surrounding blanks ignored); `None` for an
/// unknown unit or an empty one.
pub fn byte_unit_factor(unit: &str) -> Option<f64> {
    Some(match unit.trim().to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::byte_unit_factor;

    #[test]
    fn decimal_and_binary_units_in_any_case() {
        assert_eq!(byte_unit_factor("MB"), Some(1e6));
        assert_eq!(byte_unit_factor(" gib "), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(byte_unit_factor("b"), Some(1.0));
        assert_eq!(byte_unit_factor(""), None);
        assert_eq!(byte_unit_factor("MBB"), None);
    }
}
