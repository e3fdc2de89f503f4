//! `map` that keeps the rest (Dask's `errors="return"`): every item's own result,
//! so one bad input costs one result, not the whole call.

use crate::arguments::IntoArgs;
use crate::client::Client;
use crate::map::Scheduling;
use crate::submission::local_task_error;
use crate::{IntoTask, Resolved, Task, TaskContext, TaskError, TaskFailure, Value};
use std::sync::Arc;
use wherever_core::panic_capture::run_caught;

/// Runs a task and hands back its failure as a value, so that a chunk goes on with
/// its next item (local plans).
struct KeepErrors<T>(T);

impl<A: Value, R: Value, T: IntoTask<A, R>> IntoTask<A, Result<R, TaskError>> for KeepErrors<T> {
    fn task_name(&self) -> &'static str {
        self.0.task_name()
    }

    fn registered(&self) -> Option<Task<A, Result<R, TaskError>>> {
        None
    }

    fn run(&self, args: A, ctx: &mut TaskContext) -> Result<Result<R, TaskError>, TaskFailure> {
        let position = ctx.position();
        Ok(run_caught(|| self.0.run(args, ctx)).map_err(|failure| {
            let error = local_task_error(self.0.task_name(), position, failure);
            crate::task_events::note_kept_failure(&error);
            error
        }))
    }
}

impl Client {
    /// Applies `task` to every input like [`Client::map`], but returns every item's
    /// own outcome, in input order (Dask's `client.map(…).gather(errors="skip")` or
    /// `"return"`): 49 good results survive one bad input. Each error names its item
    /// (`item 17 of this map`).
    ///
    /// ```
    /// use wherever::prelude::*;
    ///
    /// #[wherever::task]
    /// fn inverse(x: i64) -> Result<f64, String> {
    ///     if x == 0 { Err("division by zero".into()) } else { Ok(1.0 / x as f64) }
    /// }
    ///
    /// let client = Plan::parse("threads:2")?.start()?;
    /// let results = client.map_results(inverse, -2..3);
    /// assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    /// let error = results[2].as_ref().unwrap_err();
    /// assert_eq!(error.item, Some(2));
    /// assert!(error.to_string().contains("(item 2 of this map) failed"), "{error}");
    /// let good: Vec<f64> = results.into_iter().flatten().collect(); // errors="skip"
    /// assert_eq!(good, vec![-0.5, -1.0, 1.0, 0.5]);
    /// # Ok::<(), wherever::Error>(())
    /// ```
    pub fn map_results<A: Value, R: Value, X: IntoArgs<A>, M: 'static>(
        &self,
        task: impl IntoTask<A, R, M>,
        inputs: impl IntoIterator<Item = X>,
    ) -> Vec<Result<R, TaskError>> {
        self.map_results_with(task, inputs, Scheduling::Auto)
    }

    /// [`Client::map_results`] with an explicit [`Scheduling`]. Random streams are
    /// those of [`Client::map_with`] (item `i` at position `first + i`). On local
    /// plans the chunks go on past a failed item; on multi-process plans each item
    /// is sent as a task of its own (as with [`Scheduling::Dynamic`]), so that a
    /// failure stops nothing else.
    pub fn map_results_with<A: Value, R: Value, X: IntoArgs<A>, M: 'static>(
        &self,
        task: impl IntoTask<A, R, M>,
        inputs: impl IntoIterator<Item = X>,
        scheduling: Scheduling,
    ) -> Vec<Result<R, TaskError>> {
        let task = Resolved::new(task);
        let inputs: Vec<X> = inputs.into_iter().collect();
        let count = inputs.len();
        let outcomes = if self.cluster().is_some() {
            let first = self.take_positions(count as u64);
            let task = Arc::new(task);
            let futures: Vec<_> = inputs
                .into_iter()
                .enumerate()
                .map(|(i, x)| self.submit_at(task.clone(), x.into_args(), first + i as u64))
                .collect();
            self.gather_results(futures)
        } else {
            match self.map_with(KeepErrors(task), inputs, scheduling) {
                Ok(outcomes) => outcomes,
                // The map itself could not run (e.g. an argument did not encode).
                Err(error) => (0..count).map(|_| Err(error.clone())).collect(),
            }
        };
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| outcome.map_err(|error| error.in_map(i as u64)))
            .collect()
    }
}
