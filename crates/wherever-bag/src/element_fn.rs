//! Which functions a bag operation takes: `#[wherever::task]` functions of one
//! element (`fn parse(line: String) -> Rec`, `fn is_obama(line: &str) -> bool`,
//! `fn size(rec: &Rec) -> u64`), of one element and a value bound when the
//! operation is built (`fn find(line: &str, query: &Query) -> bool`), and of an
//! accumulator and an element (`fn add(total: u64, x: u64) -> u64`). The traits
//! check the types when the bag is built; the registry gives the task's name, by
//! which every worker finds the same function.

use std::any::TypeId;
use wherever::__private::registry;

/// How a function takes its element (inferred, never written).
pub mod markers {
    /// By value: `fn(T)`.
    pub struct Owned;
    /// A line of text, borrowed: `fn(&str)` on a `Bag<String>`.
    pub struct Str;
    /// Borrowed: `fn(&T)`.
    pub struct Ref;
}

/// A function of one element of type `T` returning `R`.
pub trait ElementFn<T, R, M>: Send + Sync + 'static {}

impl<F: Fn(T) -> R + Send + Sync + 'static, T, R> ElementFn<T, R, markers::Owned> for F {}
impl<F: Fn(&str) -> R + Send + Sync + 'static, R> ElementFn<String, R, markers::Str> for F {}
impl<F: Fn(&T) -> R + Send + Sync + 'static, T, R> ElementFn<T, R, markers::Ref> for F {}

/// A function of one element of type `T` and a bound value `&E`, returning `R`.
pub trait BoundFn<T, E, R, M>: Send + Sync + 'static {}

impl<F: Fn(T, &E) -> R + Send + Sync + 'static, T, E, R> BoundFn<T, E, R, markers::Owned> for F {}
impl<F: Fn(&str, &E) -> R + Send + Sync + 'static, E, R> BoundFn<String, E, R, markers::Str> for F {}
impl<F: Fn(&T, &E) -> R + Send + Sync + 'static, T, E, R> BoundFn<T, E, R, markers::Ref> for F {}

/// A function of an accumulator `A` and an element `T`, returning the accumulator.
pub trait FoldFn<A, T, M>: Send + Sync + 'static {}

impl<F: Fn(A, T) -> A + Send + Sync + 'static, A, T> FoldFn<A, T, markers::Owned> for F {}
impl<F: Fn(A, &str) -> A + Send + Sync + 'static, A> FoldFn<A, String, markers::Str> for F {}
impl<F: Fn(A, &T) -> A + Send + Sync + 'static, A, T> FoldFn<A, T, markers::Ref> for F {}

/// What an operation needs of its function's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Applied to each element.
    Apply,
    /// Folding elements into an accumulator.
    Fold,
}

/// The registered name of the function `F`, checked to have the entry point `used`
/// needs; else an error naming the function and saying what to do.
pub(crate) fn registered_name<F: 'static>(used: Use) -> Result<&'static str, String> {
    let path = std::any::type_name::<F>();
    let entry = registry::lookup_function_entry(TypeId::of::<F>()).ok_or_else(|| {
        format!(
            "`{path}` is not a registered task: bag operations run on workers, so mark it \
             `#[wherever::task]` (closures cannot cross processes)"
        )
    })?;
    let fns = entry
        .element
        .unwrap_or(wherever::__private::element::ElementFns {
            apply: None,
            fold: None,
        });
    let ok = match used {
        Use::Apply => fns.apply.is_some(),
        Use::Fold => fns.fold.is_some(),
    };
    if ok {
        Ok(entry.name)
    } else {
        Err(format!(
            "`{}` cannot be used here: {}",
            entry.name,
            match used {
                Use::Apply => "an element function takes one element (and, optionally, a bound `&value`)",
                Use::Fold => "a fold function takes an accumulator and an element and returns the accumulator's type",
            }
        ))
    }
}
