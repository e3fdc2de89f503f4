//! Which functions a bag operation takes: `#[wherever::task]` functions of one
//! element (`fn parse(line: String) -> Rec`, `fn is_obama(line: &str) -> bool`,
//! `fn size(rec: &Rec) -> u64`), of one element and a value bound when the
//! operation is built (`fn find(line: &str, query: &Query) -> bool`), and of an
//! accumulator and an element (`fn add(total: u64, x: u64) -> u64`). The traits
//! check the types when the bag is built; the registry gives the task's name, by
//! which every worker finds the same function.

use std::any::TypeId;
use wherever::__private::registry;

/// How a function takes its element and whether it returns a `Result` whose
/// `Err` fails the task (inferred, never written).
pub mod markers {
    /// By value: `fn(T)`.
    pub struct Owned;
    /// A line of text, borrowed: `fn(&str)` on a `Bag<String>`.
    pub struct Str;
    /// Borrowed: `fn(&T)`.
    pub struct Ref;
    /// [`Owned`], returning `Result`.
    pub struct OwnedFallible;
    /// [`Str`], returning `Result`.
    pub struct StrFallible;
    /// [`Ref`], returning `Result`.
    pub struct RefFallible;
}

/// A function of one element of type `T` returning `R` (or `Result<R, E>`, whose
/// `Err` fails the partition's task: name `R` where both could be meant).
pub trait ElementFn<T, R, M>: Send + Sync + 'static {}

/// A function of one element of type `T` and a bound value `&E`, returning `R` (or
/// `Result<R, _>`).
pub trait BoundFn<T, E, R, M>: Send + Sync + 'static {}

/// A function of an accumulator `A` and an element `T`, returning the accumulator
/// (or `Result<A, _>`).
pub trait FoldFn<A, T, M>: Send + Sync + 'static {}

/// Implements the three traits for one way of taking the element (`$elem`, for
/// elements of type `$t`), returning the value or a `Result`.
macro_rules! element_fns {
    ($marker:ident, $fallible:ident, [$($g:ident),*], $t:ty, $elem:ty) => {
        impl<F: Fn($elem) -> R + Send + Sync + 'static, $($g,)* R>
            ElementFn<$t, R, markers::$marker> for F {}
        impl<F: Fn($elem) -> Result<R, Er> + Send + Sync + 'static, $($g,)* R, Er: std::fmt::Display>
            ElementFn<$t, R, markers::$fallible> for F {}
        impl<F: Fn($elem, &E) -> R + Send + Sync + 'static, $($g,)* E, R>
            BoundFn<$t, E, R, markers::$marker> for F {}
        impl<F: Fn($elem, &E) -> Result<R, Er> + Send + Sync + 'static, $($g,)* E, R, Er: std::fmt::Display>
            BoundFn<$t, E, R, markers::$fallible> for F {}
        impl<F: Fn(A, $elem) -> A + Send + Sync + 'static, $($g,)* A>
            FoldFn<A, $t, markers::$marker> for F {}
        impl<F: Fn(A, $elem) -> Result<A, Er> + Send + Sync + 'static, $($g,)* A, Er: std::fmt::Display>
            FoldFn<A, $t, markers::$fallible> for F {}
    };
}

element_fns!(Owned, OwnedFallible, [T], T, T);
element_fns!(Str, StrFallible, [], String, &str);
element_fns!(Ref, RefFallible, [T], T, &T);

/// What an operation needs of its function's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Applied to each element.
    Apply,
    /// Folding elements into an accumulator.
    Fold,
}

/// The registered name of the function `F`, checked to be registered as a task of
/// arguments `A` and result `R` with the entry point `used` needs; else an error
/// naming the function and saying what to do.
pub(crate) fn registered_name<F: 'static, A: 'static, R: 'static>(
    used: Use,
) -> Result<&'static str, String> {
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
    let typed = entry
        .function
        .as_ref()
        .is_some_and(|f| f.task.downcast_ref::<wherever::Task<A, R>>().is_some());
    if !typed {
        return Err(format!(
            "`{}` is registered with other argument or result types than this operation \
             needs ({} -> {})",
            entry.name,
            std::any::type_name::<A>(),
            std::any::type_name::<R>()
        ));
    }
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
