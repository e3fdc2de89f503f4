//! Typed task handles: [`Task`] for registered functions, [`IntoTask`] for anything a
//! client can run (registered tasks everywhere, plain closures on local plans only).

use crate::{TaskContext, TaskFailure};

/// A registered task function with argument type `A` and result type `R`.
///
/// `#[wherever::task]` turns `fn calc_mean(i: u64, n: usize, rng: &mut TaskRng) -> (f64, f64)`
/// into a constant `calc_mean: Task<(u64, usize), (f64, f64)>`: arguments form a tuple
/// (`(T,)` for a single argument, `()` for none), and the random stream and
/// the task context are supplied by the runtime. Remote workers find the function by
/// [`Task::name`] in the [`registry`](crate::registry).
pub struct Task<A, R> {
    name: &'static str,
    run: fn(A, &mut TaskContext) -> Result<R, TaskFailure>,
}

impl<A, R> Task<A, R> {
    /// A task named `name` (its stable, registered name) calling `run`.
    pub const fn new(
        name: &'static str,
        run: fn(A, &mut TaskContext) -> Result<R, TaskFailure>,
    ) -> Self {
        Task { name, run }
    }

    /// The registered name: the function's module path and name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Calls the function directly, in this thread.
    pub fn call(&self, args: A, ctx: &mut TaskContext) -> Result<R, TaskFailure> {
        (self.run)(args, ctx)
    }

    /// The plain function pointer behind the task.
    pub fn function(&self) -> fn(A, &mut TaskContext) -> Result<R, TaskFailure> {
        self.run
    }
}

impl<A, R> Clone for Task<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for Task<A, R> {}

impl<A, R> std::fmt::Debug for Task<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Task({})", self.name)
    }
}

/// Anything a client can run as a task with arguments `A` and result `R`: a
/// registered [`Task`], or a closure `Fn(T) -> R` taking one argument, for which
/// `A = (T,)` (local plans only: a closure cannot cross a process boundary, and
/// remote plans reject it with a clear error).
pub trait IntoTask<A, R>: Send + Sync + 'static {
    /// The name used in errors and, for registered tasks, to find it in a worker.
    fn task_name(&self) -> &'static str;

    /// The registered task behind this value, if it is one.
    fn registered(&self) -> Option<Task<A, R>>;

    /// Runs the task in this thread.
    fn run(&self, args: A, ctx: &mut TaskContext) -> Result<R, TaskFailure>;
}

impl<A: 'static, R: 'static> IntoTask<A, R> for Task<A, R> {
    fn task_name(&self) -> &'static str {
        self.name
    }

    fn registered(&self) -> Option<Task<A, R>> {
        Some(*self)
    }

    fn run(&self, args: A, ctx: &mut TaskContext) -> Result<R, TaskFailure> {
        (self.run)(args, ctx)
    }
}

impl<T, R, F> IntoTask<(T,), R> for F
where
    F: Fn(T) -> R + Send + Sync + 'static,
{
    fn task_name(&self) -> &'static str {
        "closure"
    }

    fn registered(&self) -> Option<Task<(T,), R>> {
        None
    }

    fn run(&self, args: (T,), _ctx: &mut TaskContext) -> Result<R, TaskFailure> {
        Ok(self(args.0))
    }
}
