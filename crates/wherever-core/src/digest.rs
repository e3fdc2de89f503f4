//! Small shared helpers: a stable FNV-1a digest and the host name.

/// A 64-bit FNV-1a digest, stable across builds and platforms (unlike `std`'s
/// `DefaultHasher`): used where two processes must agree on a value.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Adds `bytes` to the digest.
    pub fn eat(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The digest so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// This machine's host name, for naming where tasks run.
pub fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        let mut digest = Fnv1a::default();
        assert_eq!(digest.finish(), 0xcbf2_9ce4_8422_2325);
        digest.eat(b"a");
        assert_eq!(digest.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
