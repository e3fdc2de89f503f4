//! Typed task handles: [`Task`] for registered functions, [`IntoTask`] for anything a
//! client can run: functions made tasks with `#[wherever::task]` (everywhere), and
//! plain functions and closures (local plans only).

use crate::{TaskContext, TaskFailure, TaskRng};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Display;
use std::marker::PhantomData;

/// A registered task function with argument type `A` and result type `R`.
///
/// `#[wherever::task]` keeps `fn calc_mean(i: u64, n: usize, rng: &mut TaskRng) -> (f64, f64)`
/// as written and registers a `Task<(u64, usize), (f64, f64)>` for it, which the
/// runtime finds from the function itself: arguments form a tuple (`(T,)` for a
/// single argument, `()` for none), and the random stream and the task context are
/// supplied by the runtime. Remote workers find the function by [`Task::name`] in
/// the [`registry`](crate::registry).
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

/// The types that tell the [`IntoTask`] implementations for functions apart (what
/// the runtime passes besides the arguments, and whether an `Err` is a failure).
/// Inferred, never written by users.
pub mod markers {
    /// A registered [`Task`](super::Task), a [`Resolved`](super::Resolved) task, or
    /// a function of its arguments only, whose result is the value.
    pub struct Plain;
    /// A function of its arguments returning `Result`: `Err` is a task failure.
    pub struct Fallible;
    /// A function whose last parameter is `&mut TaskRng`.
    pub struct Rng;
    /// [`Rng`], returning `Result`: `Err` is a task failure.
    pub struct RngFallible;
    /// A function whose last parameter is `&mut TaskContext`.
    pub struct Context;
    /// [`Context`], returning `Result`: `Err` is a task failure.
    pub struct ContextFallible;
}

/// Anything a client can run as a task with arguments `A` and result `R`:
///
/// - a function made a task with `#[wherever::task]` (`client.submit(square, 3)`):
///   registered, so it runs on every plan;
/// - any other function or closure of the arguments (`|x: u64| x + 1`): local plans
///   only, since it cannot cross a process boundary (remote plans reject it with a
///   clear error);
/// - a [`Task`] value.
///
/// A function's last parameter may be `&mut TaskRng` or `&mut TaskContext`, which the
/// runtime supplies. A function returning `Result<T, E>` (with `E: Display`) gives a
/// task with result `T` whose `Err` is a task failure; when `E` is itself a serde
/// value (e.g. `String`), the `Result` could also be the value, so the compiler may
/// ask which: name the result type (`let n: i64 = future.value()?`).
///
/// `M` is a marker type the compiler infers ([`markers`]); code that takes tasks
/// is generic over it (`task: impl IntoTask<A, R, M>`).
pub trait IntoTask<A, R, M = markers::Plain>: Send + Sync + 'static {
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

/// A task value of any kind ([`IntoTask`] with any marker) as an `IntoTask<A, R>`,
/// with its registration and name looked up once. The entry points that take tasks
/// make one.
pub struct Resolved<A, R, T, M> {
    task: T,
    registered: Option<Task<A, R>>,
    name: &'static str,
    marker: PhantomData<fn() -> M>,
}

impl<A, R, T: IntoTask<A, R, M>, M> Resolved<A, R, T, M> {
    /// `task`, with its registration and name looked up.
    pub fn new(task: T) -> Self {
        let registered = task.registered();
        let name = match &registered {
            Some(task) => task.name,
            None => task.task_name(),
        };
        Resolved {
            registered,
            name,
            task,
            marker: PhantomData,
        }
    }
}

impl<A: 'static, R: 'static, T: IntoTask<A, R, M>, M: 'static> IntoTask<A, R>
    for Resolved<A, R, T, M>
{
    fn task_name(&self) -> &'static str {
        self.name
    }

    fn registered(&self) -> Option<Task<A, R>> {
        self.registered
    }

    /// Runs the task value itself, not through the registered function pointer:
    /// the registration calls the same function the same way (it is found by the
    /// function's own type, with these argument and result types), and the direct
    /// call can be inlined (a `map` makes it once per item).
    #[inline]
    fn run(&self, args: A, ctx: &mut TaskContext) -> Result<R, TaskFailure> {
        self.task.run(args, ctx)
    }
}

/// The registered task for the function (or closure) type `F`, if
/// `#[wherever::task]` registered one with these argument and result types.
fn registered_fn<F: 'static, A: 'static, R: 'static>() -> Option<Task<A, R>> {
    crate::registry::lookup_function(std::any::TypeId::of::<F>())
        .and_then(|task| task.downcast_ref::<Task<A, R>>())
        .copied()
}

/// The name of the function type `F`: its registered name, else its path for a
/// plain function (`my_crate::triple`), else `closure`.
fn name_of_fn<F: 'static, A: 'static, R: 'static>() -> &'static str {
    match registered_fn::<F, A, R>() {
        Some(task) => task.name,
        None => {
            let path = std::any::type_name::<F>();
            if path.contains("{{closure}}") {
                "closure"
            } else {
                path
            }
        }
    }
}

/// A fallible function's outcome as a task's: `Err` becomes a failure.
fn fallible<R, E: Display>(outcome: Result<R, E>) -> Result<R, TaskFailure> {
    outcome.map_err(TaskFailure::from_error)
}

/// Implements [`IntoTask`] for functions of the listed argument types: with and
/// without a trailing runtime parameter, returning a value or a `Result`.
macro_rules! function_tasks {
    ($($t:ident $v:ident),*) => {
        function_tasks!(@one markers::Plain, [$($t $v),*], [], |ctx| [], [], R, Ok);
        function_tasks!(@one markers::Fallible, [$($t $v),*], [], |ctx| [], [E], Result<R, E>, fallible);
        function_tasks!(@one markers::Rng, [$($t $v),*], [&mut TaskRng], |ctx| [ctx.rng()], [], R, Ok);
        function_tasks!(@one markers::RngFallible, [$($t $v),*], [&mut TaskRng], |ctx| [ctx.rng()], [E], Result<R, E>, fallible);
        function_tasks!(@one markers::Context, [$($t $v),*], [&mut TaskContext], |ctx| [ctx], [], R, Ok);
        function_tasks!(@one markers::ContextFallible, [$($t $v),*], [&mut TaskContext], |ctx| [ctx], [E], Result<R, E>, fallible);
    };
    (@one $marker:ty, [$($t:ident $v:ident),*], [$($extra:ty)?], |$ctx:ident| [$($supply:expr)?],
        [$($e:ident)?], $output:ty, $finish:ident) => {
        impl<$($t,)* R, $($e,)? F> IntoTask<($($t,)*), R, $marker> for F
        where
            F: Fn($($t,)* $($extra)?) -> $output + Send + Sync + 'static,
            $($t: Serialize + DeserializeOwned + Send + 'static,)*
            R: Serialize + DeserializeOwned + Send + 'static,
            $($e: Display,)?
        {
            fn task_name(&self) -> &'static str {
                name_of_fn::<F, ($($t,)*), R>()
            }

            fn registered(&self) -> Option<Task<($($t,)*), R>> {
                registered_fn::<F, ($($t,)*), R>()
            }

            #[allow(unused_variables, clippy::unused_unit)]
            fn run(&self, args: ($($t,)*), $ctx: &mut TaskContext) -> Result<R, TaskFailure> {
                let ($($v,)*) = args;
                $finish(self($($v,)* $($supply)?))
            }
        }
    };
}

function_tasks!();
function_tasks!(T1 v1);
function_tasks!(T1 v1, T2 v2);
function_tasks!(T1 v1, T2 v2, T3 v3);
function_tasks!(T1 v1, T2 v2, T3 v3, T4 v4);
function_tasks!(T1 v1, T2 v2, T3 v3, T4 v4, T5 v5);
function_tasks!(T1 v1, T2 v2, T3 v3, T4 v4, T5 v5, T6 v6);
function_tasks!(T1 v1, T2 v2, T3 v3, T4 v4, T5 v5, T6 v6, T7 v7);
function_tasks!(T1 v1, T2 v2, T3 v3, T4 v4, T5 v5, T6 v6, T7 v7, T8 v8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamKey;

    fn add(x: u64, y: u64) -> u64 {
        x + y
    }

    fn position_plus(x: u64, ctx: &mut TaskContext) -> u64 {
        x + ctx.position()
    }

    fn parse(text: String) -> Result<i64, String> {
        text.parse().map_err(|_| format!("not a number: {text}"))
    }

    /// Runs `task` through the resolved form the client APIs use.
    fn run<A: 'static, R: 'static, M: 'static>(
        task: impl IntoTask<A, R, M>,
        args: A,
    ) -> Result<R, TaskFailure> {
        let resolved = Resolved::new(task);
        let mut ctx = TaskContext::new(StreamKey::from_seed(1), true, 10);
        assert!(
            resolved.registered().is_none(),
            "nothing is registered here"
        );
        resolved.run(args, &mut ctx)
    }

    #[test]
    fn unregistered_functions_run_with_what_the_runtime_supplies() {
        assert_eq!(run(add, (2, 3)), Ok(5));
        assert_eq!(
            Resolved::new(add).task_name(),
            "wherever_core::task::tests::add"
        );
        let closure = |x: u64| x;
        assert_eq!(Resolved::new(closure).task_name(), "closure");
        assert_eq!(run(position_plus, (1,)), Ok(11));
        assert_eq!(run(|| 7u8, ()), Ok(7));
        let parsed: Result<i64, _> = run(parse, ("12".to_string(),));
        assert_eq!(parsed, Ok(12));
        let failed: Result<i64, _> = run(parse, ("x".to_string(),));
        assert_eq!(failed.unwrap_err().message, "not a number: x");
        let kept: Result<Result<i64, String>, _> = run(parse, ("x".to_string(),));
        assert_eq!(kept, Ok(Err("not a number: x".to_string())));
    }
}
