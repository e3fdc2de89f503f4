//! Attributes for wherever programs: `#[wherever::task]` registers a function as a
//! task; `#[wherever::main]` lets a worker process of the program take over before
//! `main`'s body runs. Use them through the `wherever` crate.

mod main_attr;
mod task_attr;

use proc_macro::TokenStream;

/// Registers a function as a task under the stable name `module_path::function`.
///
/// The function stays exactly as written, so `square(3)` still calls it (in the
/// program's own code and unit tests), and the same name is what clients run:
/// `client.submit(square, 3)`, `client.map(square, 0..10)`, `delayed(square, 3)`.
///
/// **How.** A function and a constant cannot share a name, so the name stays the
/// function. The task-taking APIs accept any function or closure (`IntoTask`, one
/// implementation per arity); next to the registry entry (name and type-erased
/// entry point, for workers) the attribute registers the typed task and a
/// `fn() -> TypeId` of the function item, and the client looks the function's
/// type up in that table (built once). A registered function runs on every plan; a
/// function without the attribute runs on local plans like a closure and is a clear
/// error on multi-process plans.
///
/// **Arguments.** The task's argument type is the tuple of the parameters (`(T,)`
/// for one, `()` for none; a single argument may be passed as itself). A last
/// parameter of type `&mut TaskRng` receives the task's random stream, or one of
/// type `&mut TaskContext` the task's context (at most one of the two). Called
/// directly, such a function takes the caller's own: `calc_mean(0, 100, &mut rng)`
/// with `let mut rng = StreamKey::from_seed(1).stream(0);`, or
/// `TaskContext::new(key, true, position)`.
///
/// **Results.** A function returning `Result<T, E>` with `E: Display` gives a task
/// with result `T` whose `Err` becomes a task error. When `E` is itself a serde
/// value (`String`, say), the whole `Result` could also be the value: name the
/// result type where the compiler asks (`let f: Future<T> = client.submit(…)`).
/// `#[wherever::task(result_is_value)]` registers the other reading: the task's
/// value is the whole `Result` (`Future<Result<T, E>>`), and `Err` is not a failure.
///
/// ```ignore
/// // (compiled and run as the `wherever` crate's `tests/api_plans.rs`)
/// use wherever::prelude::*;
///
/// #[wherever::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// #[wherever::task(result_is_value)]
/// fn half(x: u64) -> Result<u64, String> {
///     if x.is_multiple_of(2) { Ok(x / 2) } else { Err(format!("{x} is odd")) }
/// }
///
/// assert_eq!(square(3), 9);                         // a plain call
/// let client = Plan::parse("threads:2")?.start()?;
/// assert_eq!(client.submit(square, 3).value()?, 9); // a task
/// let halves: Vec<Result<u64, String>> = client.map(half, 1..3)?;
/// assert_eq!(halves, vec![Err("1 is odd".to_string()), Ok(1)]);
/// # Ok::<(), wherever::Error>(())
/// ```
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task_attr::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes `main` start with `wherever::init()`: in a worker process of this program
/// (started with `WHEREVER_WORKER` set or the `--wherever-worker` flag) the worker
/// runs and exits, so the body of `main` is never reached there.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
