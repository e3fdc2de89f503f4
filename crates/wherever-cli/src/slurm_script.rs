//! `wherever slurm-script --plan 'slurm:jobs=N,...' [--program PATH]`: prints the
//! batch script a `slurm:jobs=...` (or `slurm:per-task,...`) plan submits for
//! PROGRAM, byte for byte (as dask-jobqueue's `cluster.job_script()`).

use std::path::{Path, PathBuf};
use wherever::{Level, Plan};
use wherever_cluster::launcher::job_script;
#[cfg(test)]
use wherever_cluster::launcher::SlurmJobsSpec;

/// The program a script names when `--program` is not given.
pub const PLACEHOLDER_PROGRAM: &str = "/path/to/your/program";

/// The script of `plan` (a `slurm:jobs=N,...` plan string; nested levels after
/// `/` do not change it) for `program` (made absolute); an error says what is
/// wrong with the plan.
pub fn script_for(plan: &str, program: Option<&Path>) -> Result<String, String> {
    let parsed = Plan::parse(plan).map_err(|e| e.to_string())?;
    let Level::SlurmJobs(spec) = parsed.first() else {
        let hint = match parsed.first() {
            Level::Slurm(_) => {
                " (a `slurm:` plan without jobs=N starts its workers with srun \
                                inside an allocation, and submits no script: add jobs=N)"
            }
            _ => "",
        };
        return Err(format!(
            "invalid plan `{plan}`: slurm-script needs a plan `slurm:jobs=N,KEY=VALUE,...` or \
             `slurm:per-task,KEY=VALUE,...`{hint}"
        ));
    };
    let program = match program {
        Some(path) => std::path::absolute(path)
            .map_err(|e| format!("cannot make `{}` absolute: {e}", path.display()))?,
        None => PathBuf::from(PLACEHOLDER_PROGRAM),
    };
    job_script(spec, &program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_launchers_script() {
        let script = script_for(
            "slurm:jobs=2,partition=debug/threads:2",
            Some(Path::new("/bin/prog")),
        )
        .unwrap();
        let spec = SlurmJobsSpec::from_options(&[
            ("jobs".into(), "2".into()),
            ("partition".into(), "debug".into()),
        ])
        .unwrap();
        assert_eq!(script, job_script(&spec, Path::new("/bin/prog")).unwrap());
    }

    #[test]
    fn prints_a_per_task_script() {
        for plan in [
            "slurm:per-task",
            "slurm:per-task,partition=debug,max-pending=2",
        ] {
            let script = script_for(plan, Some(Path::new("/bin/prog"))).unwrap();
            assert!(
                script.contains("export WHEREVER_WORKER_MAX_TASKS=1\n"),
                "{script}"
            );
        }
        let error = script_for("slurm:per-task,jobs=2", None).unwrap_err();
        assert!(error.contains("`jobs` is not one of per-task's"), "{error}");
        let error = script_for("slurm:per-task,,", None).unwrap_err();
        assert!(error.contains("got ``"), "{error}");
    }

    #[test]
    fn malformed_plans_are_errors() {
        for (plan, expected) in [
            ("processes:2", "needs a plan `slurm:jobs=N"),
            ("slurm:partition=debug", "add jobs=N"),
            ("slurm:jobs=2,,", "got ``"),
            ("slurm:jobs=2,qos", "got `qos`"),
            ("slurm:jobs=0", "jobs=`0`"),
        ] {
            let error = script_for(plan, None).unwrap_err();
            assert!(error.contains(expected), "{plan}: {error}");
        }
    }
}
