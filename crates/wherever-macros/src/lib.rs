//! Attributes for wherever programs: `#[wherever::task]` registers a function as a
//! task; `#[wherever::main]` lets a worker process of the program take over before
//! `main`'s body runs. Use them through the `wherever` crate.

mod main_attr;
mod task_attr;

use proc_macro::TokenStream;

/// Registers a function as a task under the stable name `module_path::function`.
///
/// The function stays as written but its name becomes a constant of type
/// `wherever::Task<Args, Output>` that clients submit (`client.submit(calc_mean, (i, n))`).
/// `Args` is the tuple of the arguments (`(T,)` for one, `()` for none; a single
/// argument may be passed as itself); a
/// parameter of type `&mut TaskRng` receives the task's random stream and one of type
/// `&mut TaskContext` the task's context (at most one of the two). A function
/// returning `Result<T, E>` with `E: Display` gives a task with output `T` whose `Err`
/// becomes a task error.
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
