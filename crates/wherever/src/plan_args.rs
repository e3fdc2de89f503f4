//! [`PlanArgs`]: the `--plan`, `--seed` and `--interface` flags as a `clap` argument group, to
//! `#[command(flatten)]` into a program's own parser (feature `clap`).

use crate::{Client, Error, Plan};

/// The `--plan PLAN` and `--seed SEED` flags, with the environment variables
/// `WHEREVER_PLAN` and `WHEREVER_SEED` as fallbacks, for a program's own `clap`
/// parser (enable the `clap` feature of `wherever`). Malformed values and unknown
/// flags (`--paln`) are `clap` errors with the usual usage message.
///
/// ```
/// use clap::Parser;
/// use wherever::PlanArgs;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     wherever: PlanArgs,
///     /// Items per task.
///     #[arg(long, default_value_t = 1000)]
///     n: usize,
/// }
///
/// let cli = Cli::parse_from(["study", "--plan", "threads:2", "--seed", "7", "--n", "10"]);
/// let client = cli.wherever.start_or("threads")?;
/// assert_eq!(client.workers(), 2);
/// assert!(Cli::try_parse_from(["study", "--paln", "sequential"]).is_err());
/// # Ok::<(), wherever::Error>(())
/// ```
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
// The doc comment above is for rustdoc, not the `--help` of the program it joins.
#[command(about = None, long_about = None)]
pub struct PlanArgs {
    /// How and where tasks run: sequential, threads, threads:N, processes:N,
    /// tcp://HOST:PORT, or nested levels joined with `/` (default: the program's).
    #[arg(long, env = "WHEREVER_PLAN", value_name = "PLAN", value_parser = parse_plan)]
    pub plan: Option<Plan>,
    /// Root seed of the tasks' random streams, a whole number from 0 to 2^64 - 1
    /// (default: unseeded).
    #[arg(long, env = "WHEREVER_SEED", value_name = "SEED", value_parser = parse_seed)]
    pub seed: Option<u64>,
    /// The network interface (e.g. `eth0`, `ib0`) or IP address that workers on
    /// other machines reach the scheduler at, for plans that launch them (as
    /// Dask's `--interface`; default: $WHEREVER_INTERFACE, else the address that
    /// routes to the first worker host).
    #[arg(long, value_name = "INTERFACE", value_parser = parse_interface)]
    pub interface: Option<String>,
}

impl PlanArgs {
    /// The plan given with `--plan` (or `WHEREVER_PLAN`), else `default`.
    pub fn plan_or(&self, default: &str) -> Result<Plan, Error> {
        match &self.plan {
            Some(plan) => Ok(plan.clone()),
            None => Ok(Plan::parse(default)?),
        }
    }

    /// Starts the plan given with `--plan` (or `WHEREVER_PLAN`, else `default`), with
    /// the seed given with `--seed` (or `WHEREVER_SEED`) when there is one, and
    /// the scheduler's advertised address on `--interface` when given.
    pub fn start_or(&self, default: &str) -> Result<Client, Error> {
        let plan = self.plan_or(default)?;
        if let Some(interface) = &self.interface {
            wherever_cluster::launcher::choose_interface(interface).map_err(|reason| {
                Error::Start {
                    plan: plan.to_string(),
                    reason: format!("--interface {reason}"),
                }
            })?;
        }
        Ok(plan.start()?.with_seed_option(self.seed))
    }
}

fn parse_plan(text: &str) -> Result<Plan, String> {
    Plan::parse(text).map_err(|e| e.to_string())
}

/// Checks `--interface` (an IP address or an interface of this machine); the
/// value is kept as given, so an interface name follows its current address.
fn parse_interface(text: &str) -> Result<String, String> {
    wherever_cluster::launcher::interface_address(text)?;
    Ok(text.trim().to_string())
}

fn parse_seed(text: &str) -> Result<u64, String> {
    crate::args::parse_seed(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        wherever: PlanArgs,
        #[arg(long, default_value_t = 8)]
        tasks: u64,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("prog").chain(args.iter().copied()))
    }

    #[test]
    fn reads_plan_and_seed_in_both_forms() {
        let cli = parse(&["--plan", "threads:2", "--seed=5", "--tasks", "3"]).unwrap();
        assert_eq!(cli.wherever.plan, Some(Plan::parse("threads:2").unwrap()));
        assert_eq!(cli.wherever.seed, Some(5));
        assert_eq!(cli.tasks, 3);
        assert_eq!(
            cli.wherever.plan_or("sequential").unwrap(),
            Plan::parse("threads:2").unwrap()
        );
    }

    #[test]
    fn malformed_flags_are_errors() {
        let typo = parse(&["--paln", "sequential"]).unwrap_err();
        assert_eq!(typo.kind(), clap::error::ErrorKind::UnknownArgument);
        let plan = parse(&["--plan", "thread"]).unwrap_err();
        assert_eq!(plan.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(plan.to_string().contains("thread"), "{plan}");
        for seed in ["-1", "x", "1.5", "18446744073709551616"] {
            let error = parse(&[&format!("--seed={seed}")]).unwrap_err();
            assert!(error.to_string().contains("invalid seed"), "{error}");
        }
        assert!(parse(&["--seed", "-1"]).is_err(), "`-1` is not a value");
        let missing = parse(&["--plan"]).unwrap_err();
        assert_eq!(missing.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn interface_takes_an_address_or_an_interface_name_and_refuses_others() {
        let cli = parse(&["--interface", "lo"]).unwrap();
        assert_eq!(cli.wherever.interface.as_deref(), Some("lo"));
        let cli = parse(&["--interface=10.0.0.7"]).unwrap();
        assert_eq!(cli.wherever.interface.as_deref(), Some("10.0.0.7"));
        for bad in ["no-such-nic0", "", "10.0.0"] {
            let error = parse(&["--interface", bad]).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
            let text = error.to_string();
            assert!(
                text.contains("neither an IP address nor a network interface")
                    && text.contains("lo"),
                "{text}"
            );
        }
        assert!(parse(&["--interface"]).is_err());
    }

    #[test]
    fn help_names_the_flags_and_their_variables() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for word in [
            "--plan <PLAN>",
            "WHEREVER_PLAN",
            "--seed <SEED>",
            "WHEREVER_SEED",
            "--interface <INTERFACE>",
        ] {
            assert!(help.contains(word), "{word} missing from:\n{help}");
        }
    }
}
