//! How many cores this process may really use, as R's `parallelly::availableCores()`
//! answers it: the smallest of the machine's cores, the CPU affinity mask and cgroup
//! CPU quota (both through `std::thread::available_parallelism`), and the counts
//! schedulers and users set in the environment.

/// Environment variables that limit the cores a process should use, in the order
/// they are consulted (every one that is set to a positive whole number counts).
pub const CORE_LIMIT_VARIABLES: [&str; 5] = [
    "WHEREVER_CORES",
    "SLURM_CPUS_PER_TASK",
    "NSLOTS",
    "PBS_NUM_PPN",
    "OMP_NUM_THREADS",
];

/// The number of cores this process may use now; at least 1.
pub fn available_cores() -> usize {
    let allowed = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    cores_from(machine_cores(), allowed, |name| std::env::var(name).ok())
}

/// The smallest of `machine`, `allowed` and every limit variable set to a positive
/// whole number; values that are not positive whole numbers are ignored.
pub fn cores_from(
    machine: Option<usize>,
    allowed: usize,
    env: impl Fn(&str) -> Option<String>,
) -> usize {
    let from_env = CORE_LIMIT_VARIABLES
        .iter()
        .filter_map(|name| env(name))
        .filter_map(|value| value.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    from_env.chain(machine).fold(allowed, usize::min).max(1)
}

/// The number of online CPUs of the machine, from `/sys/devices/system/cpu/online`
/// (a list such as `0-3,6`); `None` where that file does not exist.
fn machine_cores() -> Option<usize> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    count_cpu_list(list.trim())
}

fn count_cpu_list(list: &str) -> Option<usize> {
    let mut count = 0;
    for range in list.split(',').filter(|r| !r.is_empty()) {
        count += match range.split_once('-') {
            Some((low, high)) => {
                high.parse::<usize>()
                    .ok()?
                    .checked_sub(low.parse::<usize>().ok()?)?
                    + 1
            }
            None => {
                range.parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_smallest_limit_wins() {
        assert_eq!(cores_from(Some(64), 64, env_of(&[])), 64);
        assert_eq!(
            cores_from(Some(64), 8, env_of(&[])),
            8,
            "affinity or cgroup quota"
        );
        assert_eq!(
            cores_from(Some(64), 64, env_of(&[("SLURM_CPUS_PER_TASK", "4")])),
            4
        );
        assert_eq!(
            cores_from(
                Some(64),
                64,
                env_of(&[("NSLOTS", "6"), ("OMP_NUM_THREADS", "3")])
            ),
            3
        );
        assert_eq!(cores_from(Some(64), 64, env_of(&[("PBS_NUM_PPN", "5")])), 5);
    }

    #[test]
    fn never_more_than_the_machine_and_never_zero() {
        assert_eq!(
            cores_from(Some(2), 2, env_of(&[("OMP_NUM_THREADS", "32")])),
            2
        );
        assert_eq!(
            cores_from(Some(2), 2, env_of(&[("OMP_NUM_THREADS", "0")])),
            2
        );
        assert_eq!(cores_from(None, 0, env_of(&[])), 1);
    }

    #[test]
    fn malformed_values_are_ignored() {
        assert_eq!(
            cores_from(
                Some(8),
                8,
                env_of(&[("SLURM_CPUS_PER_TASK", "four"), ("NSLOTS", "-2")])
            ),
            8
        );
    }

    #[test]
    fn counts_cpu_lists() {
        assert_eq!(count_cpu_list("0-3"), Some(4));
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn this_process_has_at_least_one_core() {
        assert!(available_cores() >= 1);
    }
}
