//! Large test values made and checked cheaply (block fills and compares, no
//! per-byte loop): byte `i` of a value is `(i / BLOCK) % 251`.

/// The size of a block of equal bytes.
const BLOCK: usize = 1 << 20;

/// A value of `len` bytes in the pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut value = vec![0u8; len];
    for (index, block) in value.chunks_mut(BLOCK).enumerate() {
        block.fill((index % 251) as u8);
    }
    value
}

/// Whether `value` is `len` bytes in the pattern.
pub fn has_pattern(value: &[u8], len: usize) -> bool {
    let mut reference = vec![0u8; BLOCK];
    value.len() == len
        && value.chunks(BLOCK).enumerate().all(|(index, block)| {
            reference.fill((index % 251) as u8);
            block == &reference[..block.len()]
        })
}

/// This process's peak resident memory (`VmHWM`) in MiB; 0 where unknown.
pub fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}
