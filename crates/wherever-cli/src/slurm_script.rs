//! `wherever slurm-script --plan 'slurm:jobs=N,...' [--program PATH]`: prints the
//! batch script a `slurm:jobs=...` (or `slurm:per-task,...`) plan submits for
//! PROGRAM, byte for byte (as dask-jobqueue's `cluster.job_script()`).

use std::path::{Path, PathBuf};
use wherever_cluster::launcher::{job_script, SlurmJobsSpec};

/// The program a script names when `--program` is not given.
pub const PLACEHOLDER_PROGRAM: &str = "/path/to/your/program";

/// The script of `plan` (a `slurm:jobs=N,...` plan string; nested levels after
/// `/` do not change it) for `program` (made absolute); an error says what is
/// wrong with the plan.
pub fn script_for(plan: &str, program: Option<&Path>) -> Result<String, String> {
    let level = plan.trim().split('/').next().unwrap_or_default().trim();
    let Some(options) = level.strip_prefix("slurm:") else {
        return Err(format!(
            "invalid plan `{plan}`: slurm-script needs a plan `slurm:jobs=N,KEY=VALUE,...`"
        ));
    };
    let per_task_word = wherever_cluster::launcher::slurm_spec::PER_TASK_WORD;
    let (per_task, options) = match options.split_once(',') {
        _ if options == per_task_word => (true, ""),
        Some((first, rest)) if first == per_task_word => (true, rest),
        _ => (false, options),
    };
    let options = options
        .split(',')
        .filter(|pair| !(per_task && options.is_empty() && pair.is_empty()))
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
                Ok((key.trim().to_string(), value.trim().to_string()))
            }
            _ => Err(format!(
                "invalid plan `{plan}`: expected slurm:KEY=VALUE[,KEY=VALUE...], got `{pair}`"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec = if per_task {
        SlurmJobsSpec::per_task_from_options(&options)
    } else {
        SlurmJobsSpec::from_options(&options)
    }
    .map_err(|why| format!("invalid plan `{plan}`: {why}"))?;
    let program = match program {
        Some(path) => std::path::absolute(path)
            .map_err(|e| format!("cannot make `{}` absolute: {e}", path.display()))?,
        None => PathBuf::from(PLACEHOLDER_PROGRAM),
    };
    job_script(&spec, &program)
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
            ("slurm:partition=debug", "needs jobs=N"),
            ("slurm:jobs=2,,", "got ``"),
            ("slurm:jobs=2,qos", "got `qos`"),
            ("slurm:jobs=0", "jobs=`0`"),
        ] {
            let error = script_for(plan, None).unwrap_err();
            assert!(error.contains(expected), "{plan}: {error}");
        }
    }
}
