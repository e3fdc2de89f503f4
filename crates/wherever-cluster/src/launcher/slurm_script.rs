//! The batch script of a `slurm:jobs=N,...` plan: the same text for every run of
//! a program, so that what [`job_script`] shows beforehand is byte for byte what
//! `sbatch` receives. Run-specific values (the scheduler's address, the secret
//! file's path) reach the job as environment variables on the `sbatch` command
//! (`--export=ALL`), never in the text.
//!
//! Inside a job, one `srun --ntasks=W` runs the W workers, one Slurm task each
//! (the job asks for W tasks): each worker is named `JOBID.PROCID`, its group is
//! the job id, and with a walltime it knows when the job ends
//! (`WHEREVER_WORKER_DEADLINE`, [`DEADLINE_VARIABLE`], Unix seconds, computed when
//! the job starts).

use super::slurm_spec::SlurmJobsSpec;
use super::{WORKER_GROUP_VARIABLE, WORKER_NAME_VARIABLE};
use crate::worker::{
    DEADLINE_VARIABLE, DEATH_TIMEOUT_VARIABLE, MAX_TASKS_VARIABLE, THREADS_VARIABLE,
};
use std::fmt::Write as _;
use std::path::Path;

/// The batch script that runs the workers of `spec` from `executable` (an
/// absolute path): see the [module documentation](self).
pub fn job_script(spec: &SlurmJobsSpec, executable: &Path) -> Result<String, String> {
    if !executable.is_absolute() {
        return Err(format!(
            "the worker program must be given by absolute path, got `{}`",
            executable.display()
        ));
    }
    let program = executable
        .to_str()
        .ok_or_else(|| format!("the path `{}` is not UTF-8", executable.display()))?;
    let program = shlex::try_quote(program)
        .map_err(|_| format!("the path `{program}` holds a NUL character"))?;
    let workers = spec.workers_per_job();
    let (extra_lines, modules, prologue) = spec.extras();
    let mut script = String::from("#!/bin/bash\n");
    let mut sbatch = |line: String| {
        let _ = writeln!(script, "#SBATCH {line}");
    };
    sbatch(format!("--job-name={}", spec.job_name()));
    sbatch(format!("--ntasks={workers}"));
    if let Some(cpus) = spec.cpus_per_task() {
        sbatch(format!("--cpus-per-task={cpus}"));
    }
    for (key, value) in spec.options() {
        if super::slurm_spec::SBATCH_OPTIONS.contains(&key.as_str())
            && key != "job-name"
            && key != "cpus-per-task"
        {
            sbatch(format!("--{key}={value}"));
        }
    }
    for line in extra_lines {
        sbatch(line.clone());
    }
    for module in modules {
        let _ = writeln!(script, "module load {module}");
    }
    for text in prologue {
        let _ = writeln!(script, "{text}");
    }
    script.push_str(
        "# wherever: the scheduler's address (WHEREVER_WORKER) and the secret's file\n\
         # (WHEREVER_SECRET_FILE) come from the sbatch command line.\n",
    );
    let _ = writeln!(script, "export {WORKER_GROUP_VARIABLE}=\"$SLURM_JOB_ID\"");
    let _ = writeln!(
        script,
        "export {THREADS_VARIABLE}={}",
        spec.threads_per_worker()
    );
    let _ = writeln!(
        script,
        "export {DEATH_TIMEOUT_VARIABLE}={}",
        spec.death_timeout()
    );
    if spec.is_per_task() {
        // One task, then the worker retires and the job ends.
        let _ = writeln!(script, "export {MAX_TASKS_VARIABLE}=1");
    }
    if let Some(seconds) = spec.walltime_seconds() {
        let _ = writeln!(
            script,
            "export {DEADLINE_VARIABLE}=$(( $(date +%s) + {seconds} ))"
        );
    }
    // A per-task job goes on after its worker, to be named after its task.
    let exec = if spec.is_per_task() { "" } else { "exec " };
    let mut srun = format!("{exec}srun --ntasks={workers} --kill-on-bad-exit=0");
    if let Some(cpus) = spec.cpus_per_task() {
        let _ = write!(srun, " --cpus-per-task={cpus}");
    }
    let _ = writeln!(
        script,
        "{srun} \\\n  /bin/sh -c '{WORKER_NAME_VARIABLE}=\"$SLURM_JOB_ID.$SLURM_PROCID\" exec \"$0\"' \\\n  {program}"
    );
    if spec.is_per_task() {
        script.push_str(&per_task_epilogue());
    }
    Ok(script)
}

/// The environment variable giving a per-task job its run directory, where the
/// client writes `JOBID.task`: the name the job takes once its worker is done.
pub const RUN_DIR_VARIABLE: &str = "WHEREVER_SLURM_RUN_DIR";

/// How many tenths of a second a per-task job waits for its name file after its
/// worker ended (the client writes it when it sends the task, so it is there
/// unless the client is gone).
pub const NAME_WAIT_TENTHS: u32 = 50;

/// The end of a per-task job's script: keep the worker's exit status, take the
/// name the client wrote for the job (its task's), and exit with that status.
/// The job renames itself while it still runs (Slurm renames no ended job).
fn per_task_epilogue() -> String {
    format!(
        "status=$?\n\
         # wherever: the job takes the name of the task its worker ran, written by the client.\n\
         name_file=\"${RUN_DIR_VARIABLE}/$SLURM_JOB_ID.task\"\n\
         for _ in $(seq {NAME_WAIT_TENTHS}); do [ -s \"$name_file\" ] && break; sleep 0.1; done\n\
         if [ -s \"$name_file\" ]; then\n  \
         scontrol update JobId=\"$SLURM_JOB_ID\" JobName=\"$(cat \"$name_file\")\" >/dev/null 2>&1\n\
         fi\n\
         exit $status\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pairs: &[(&str, &str)]) -> SlurmJobsSpec {
        let options: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SlurmJobsSpec::from_options(&options).unwrap()
    }

    #[test]
    fn the_script_of_a_plain_plan() {
        let script = job_script(
            &spec(&[("jobs", "2"), ("partition", "debug"), ("time", "00:05:00")]),
            Path::new("/shared/my study"),
        )
        .unwrap();
        assert_eq!(
            script,
            "#!/bin/bash\n\
             #SBATCH --job-name=wherever\n\
             #SBATCH --ntasks=1\n\
             #SBATCH --partition=debug\n\
             #SBATCH --time=00:05:00\n\
             # wherever: the scheduler's address (WHEREVER_WORKER) and the secret's file\n\
             # (WHEREVER_SECRET_FILE) come from the sbatch command line.\n\
             export WHEREVER_WORKER_GROUP=\"$SLURM_JOB_ID\"\n\
             export WHEREVER_WORKER_THREADS=1\n\
             export WHEREVER_DEATH_TIMEOUT=60\n\
             export WHEREVER_WORKER_DEADLINE=$(( $(date +%s) + 300 ))\n\
             exec srun --ntasks=1 --kill-on-bad-exit=0 \\\n  \
             /bin/sh -c 'WHEREVER_WORKER_NAME=\"$SLURM_JOB_ID.$SLURM_PROCID\" exec \"$0\"' \\\n  \
             '/shared/my study'\n"
        );
    }

    #[test]
    fn extras_workers_and_cpus_appear_in_order() {
        let mut spec = spec(&[
            ("jobs", "1"),
            ("workers-per-job", "2"),
            ("cpus-per-task", "3"),
            ("job-name", "study"),
            ("death-timeout", "5"),
        ]);
        spec.add_sbatch_line("--exclusive").unwrap();
        spec.add_module("gcc/12").unwrap();
        spec.add_prologue("export X=1").unwrap();
        let script = job_script(&spec, Path::new("/bin/prog")).unwrap();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            &lines[..8],
            [
                "#!/bin/bash",
                "#SBATCH --job-name=study",
                "#SBATCH --ntasks=2",
                "#SBATCH --cpus-per-task=3",
                "#SBATCH --exclusive",
                "module load gcc/12",
                "export X=1",
                "# wherever: the scheduler's address (WHEREVER_WORKER) and the secret's file",
            ]
        );
        assert!(script.contains("WHEREVER_WORKER_THREADS=3\n"));
        assert!(script.contains("WHEREVER_DEATH_TIMEOUT=5\n"));
        assert!(script.contains("exec srun --ntasks=2 --kill-on-bad-exit=0 --cpus-per-task=3"));
        assert!(!script.contains("DEADLINE"), "no walltime, no deadline");
    }

    #[test]
    fn a_per_task_script_runs_one_worker_that_takes_one_task() {
        let options: Vec<(String, String)> = [("partition", "debug"), ("max-pending", "4")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let spec = SlurmJobsSpec::per_task_from_options(&options).unwrap();
        let script = job_script(&spec, Path::new("/bin/prog")).unwrap();
        assert!(script.contains("#SBATCH --ntasks=1\n"), "{script}");
        assert!(script.contains("#SBATCH --partition=debug\n"), "{script}");
        assert!(
            script.contains("export WHEREVER_WORKER_MAX_TASKS=1\n"),
            "{script}"
        );
        assert!(!script.contains("max-pending"), "{script}");
        assert!(script.contains("\nsrun --ntasks=1 "), "{script}");
        assert!(
            !script.contains("exec srun"),
            "the job goes on after its worker"
        );
        assert!(script.ends_with("exit $status\n"), "{script}");
        assert!(
            script.contains("JobName=\"$(cat \"$name_file\")\""),
            "{script}"
        );
    }

    #[test]
    fn a_relative_program_is_an_error() {
        let error = job_script(&spec(&[("jobs", "1")]), Path::new("prog")).unwrap_err();
        assert!(error.contains("absolute path"), "{error}");
    }
}
