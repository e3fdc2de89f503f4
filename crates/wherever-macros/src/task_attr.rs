//! `#[wherever::task]`: keep the function as written (callable as ever), register a
//! type-erased entry point under its stable name, and a typed `wherever::Task` that
//! clients find from the function item's `TypeId`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{parse2, FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

/// What a parameter of the task function receives.
enum Param {
    /// A user argument of this (owned) type, passed as declared.
    Argument(Box<Type>, Borrow),
    /// The task's random stream (`&mut TaskRng`).
    Rng,
    /// The task's context (`&mut TaskContext`).
    Context,
}

/// How a user argument is passed to the function: the task's argument is always
/// the owned value; a `&str` or `&T` parameter borrows it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Borrow {
    /// Declared as an owned `T`.
    Owned,
    /// Declared as `&str` (the argument is a `String`).
    Str,
    /// Declared as `&T` (the argument is a `T`).
    Ref,
}

/// The options of `#[wherever::task(...)]`.
struct Options {
    /// `result_is_value`: a returned `Result` is the task's value, not a failure.
    result_is_value: bool,
}

fn options(attr: TokenStream) -> syn::Result<Options> {
    let mut options = Options {
        result_is_value: false,
    };
    if attr.is_empty() {
        return Ok(options);
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("result_is_value") {
            options.result_is_value = true;
            Ok(())
        } else {
            Err(meta.error("unknown option: the one option is `result_is_value`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(options)
}

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = options(attr)?;
    let function: ItemFn = parse2(item)?;
    let sig = &function.sig;
    if !sig.generics.params.is_empty() || sig.asyncness.is_some() {
        return Err(syn::Error::new_spanned(
            sig,
            "a task is a plain, non-generic, non-async function",
        ));
    }
    let params = sig
        .inputs
        .iter()
        .map(classify)
        .collect::<syn::Result<Vec<_>>>()?;
    let runtime_params = params
        .iter()
        .filter(|p| !matches!(p, Param::Argument(..)))
        .count();
    if runtime_params > 1 {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "take either `&mut TaskRng` or `&mut TaskContext` (whose `rng()` gives the stream), not both",
        ));
    }
    if runtime_params == 1 && matches!(params.last(), Some(Param::Argument(..))) {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "the `&mut TaskRng` or `&mut TaskContext` parameter goes last",
        ));
    }
    let (output, fallible) = match (&sig.output, options.result_is_value) {
        (ReturnType::Type(_, ty), true) => (quote!(#ty), false),
        _ => output_type(&sig.output),
    };

    let name = &sig.ident;
    let task_static = format_ident!("__WHEREVER_TASK_{}", name);
    let run_fn = format_ident!("__wherever_run_{}", name);
    let dispatch_fn = format_ident!("__wherever_dispatch_{}", name);
    let name_string = name.to_string();

    let argument_types: Vec<&Type> = params
        .iter()
        .filter_map(|p| match p {
            Param::Argument(ty, _) => Some(ty.as_ref()),
            _ => None,
        })
        .collect();
    let argument_names: Vec<_> = (0..argument_types.len())
        .map(|i| syn::Ident::new(&format!("__arg{i}"), Span::call_site()))
        .collect();
    // Arguments always form a tuple (`(T,)` for one argument), so that any of them
    // can be given as another task's future.
    let args_type = quote!((#(#argument_types,)*));
    let unpack = quote!(let (#(#argument_names,)*) = __args;);
    let mut next_argument = argument_names.iter();
    let call_arguments: Vec<TokenStream> = params
        .iter()
        .map(|p| match p {
            Param::Argument(_, borrow) => {
                let arg = next_argument.next().expect("one name per argument");
                if *borrow == Borrow::Owned {
                    quote!(#arg)
                } else {
                    quote!(&#arg)
                }
            }
            Param::Rng => quote!(__ctx.rng()),
            Param::Context => quote!(__ctx),
        })
        .collect();
    let wrap_result = if fallible {
        quote!(__result.map_err(::wherever::TaskFailure::from_error))
    } else {
        quote!(::core::result::Result::Ok(__result))
    };

    let element = element_fns(&params, name, &output, &wrap_result);

    Ok(quote! {
        #function

        #[doc(hidden)]
        #[allow(non_snake_case, unused_variables)]
        fn #run_fn(
            __args: #args_type,
            __ctx: &mut ::wherever::TaskContext,
        ) -> ::core::result::Result<#output, ::wherever::TaskFailure> {
            #unpack
            let __result = #name(#(#call_arguments),*);
            #wrap_result
        }

        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #dispatch_fn(
            call: ::wherever::__private::registry::EncodedCall<'_>,
        ) -> ::core::result::Result<::std::vec::Vec<u8>, ::wherever::__private::registry::EncodedFailure> {
            ::wherever::__private::registry::dispatch(call, #run_fn)
        }

        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #task_static: ::wherever::Task<#args_type, #output> =
            ::wherever::Task::new(::core::concat!(::core::module_path!(), "::", #name_string), #run_fn);

        ::wherever::__private::inventory::submit! {
            ::wherever::__private::registry::TaskEntry {
                name: ::core::concat!(::core::module_path!(), "::", #name_string),
                dispatch: #dispatch_fn,
                function: ::core::option::Option::Some(::wherever::__private::registry::FunctionEntry {
                    type_id: || ::wherever::__private::registry::type_id_of_val(&#name),
                    task: &#task_static,
                }),
                element: #element,
            }
        }
    })
}

fn classify(input: &FnArg) -> syn::Result<Param> {
    let FnArg::Typed(typed) = input else {
        return Err(syn::Error::new_spanned(
            input,
            "a task is a free function, not a method",
        ));
    };
    if let Type::Reference(reference) = typed.ty.as_ref() {
        if reference.mutability.is_none() {
            if let Type::Path(path) = reference.elem.as_ref() {
                if path.path.is_ident("str") {
                    return Ok(Param::Argument(
                        Box::new(syn::parse_quote!(::std::string::String)),
                        Borrow::Str,
                    ));
                }
                let last = path.path.segments.last().map(|s| s.ident.to_string());
                if !matches!(last.as_deref(), Some("TaskRng") | Some("TaskContext")) {
                    return Ok(Param::Argument(reference.elem.clone(), Borrow::Ref));
                }
            }
        }
        let last = match reference.elem.as_ref() {
            Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        match last.as_deref() {
            Some("TaskRng") if reference.mutability.is_some() => return Ok(Param::Rng),
            Some("TaskContext") if reference.mutability.is_some() => return Ok(Param::Context),
            Some("TaskRng") | Some("TaskContext") => {
                return Err(syn::Error::new_spanned(
                    reference,
                    "take the runtime's value as `&mut`",
                ))
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    reference,
                    "task arguments are owned values or shared references (`&T`, `&str`) to them; not `&mut`",
                ))
            }
        }
    }
    Ok(Param::Argument(typed.ty.clone(), Borrow::Owned))
}

/// The `Option<ElementFns>` of a task: `apply` for a function of one element (with,
/// optionally, a second, borrowed parameter bound when the operation is built), and
/// `fold` for a function of an accumulator and an element returning the
/// accumulator's type.
fn element_fns(
    params: &[Param],
    name: &syn::Ident,
    output: &TokenStream,
    wrap_result: &TokenStream,
) -> TokenStream {
    let arguments: Vec<(&Type, Borrow)> = params
        .iter()
        .filter_map(|p| match p {
            Param::Argument(ty, borrow) => Some((ty.as_ref(), *borrow)),
            _ => None,
        })
        .collect();
    let runtime: Vec<TokenStream> = params
        .iter()
        .filter_map(|p| match p {
            Param::Rng => Some(quote!(__ctx.rng())),
            Param::Context => Some(quote!(__ctx)),
            Param::Argument(..) => None,
        })
        .collect();
    let element = quote!(::wherever::__private::element);
    // Reads the element parameter from `__record`; gives what to pass.
    let read = |ty: &Type, borrow: Borrow| match borrow {
        Borrow::Str => (
            quote!(let __e: &str = #element::text(__layout, __record)?;),
            quote!(__e),
        ),
        Borrow::Owned => (
            quote!(let __e: #ty = #element::element::<#ty>(__layout, __record)?;),
            quote!(__e),
        ),
        Borrow::Ref => (
            quote!(let __e: #ty = #element::element::<#ty>(__layout, __record)?;),
            quote!(&__e),
        ),
    };
    let apply = match arguments.as_slice() {
        [(ty, borrow)] => {
            let (read, pass) = read(ty, *borrow);
            Some((quote!(), read, quote!(#pass)))
        }
        [(ty, borrow), (bound, bound_borrow)] if *bound_borrow != Borrow::Owned => {
            let (read, pass) = read(ty, *borrow);
            Some((
                quote!(let __bound: #bound = #element::bound_value::<#bound>(__call.extra)?;),
                read,
                quote!(#pass, &__bound),
            ))
        }
        _ => None,
    };
    let apply = match apply {
        Some((bind, read, pass)) => {
            let helper = match vec_item(output) {
                Some(item) => quote!(#element::apply_vec::<#item>),
                None => quote!(#element::apply::<#output>),
            };
            quote! {
                ::core::option::Option::Some({
                    #[allow(unused_variables, clippy::needless_borrow)]
                    fn __apply(
                        __call: #element::ElementCall<'_>,
                    ) -> ::core::result::Result<::wherever::partition::Partition, ::wherever::TaskFailure> {
                        let __layout = __call.input.layout;
                        #bind
                        #helper(__call, |__record: &[u8], __ctx: &mut ::wherever::TaskContext| {
                            #read
                            let __result = #name(#pass #(, #runtime)*);
                            #wrap_result
                        })
                    }
                    __apply as #element::ApplyFn
                })
            }
        }
        None => quote!(::core::option::Option::None),
    };
    let fold = match arguments.as_slice() {
        [(acc, Borrow::Owned), (ty, borrow)] if quote!(#acc).to_string() == output.to_string() => {
            let (read, pass) = read(ty, *borrow);
            quote! {
                ::core::option::Option::Some({
                    #[allow(unused_variables, clippy::needless_borrow)]
                    fn __fold(
                        __initial: &::wherever::partition::Partition,
                        __input: &::wherever::partition::Partition,
                        __ctx: &mut ::wherever::TaskContext,
                    ) -> ::core::result::Result<::wherever::partition::Partition, ::wherever::TaskFailure> {
                        let __layout = __input.layout;
                        #element::fold::<#acc>(__initial, __input, __ctx, |__acc: #acc, __record: &[u8], __ctx: &mut ::wherever::TaskContext| {
                            #read
                            let __result = #name(__acc, #pass #(, #runtime)*);
                            #wrap_result
                        })
                    }
                    __fold as #element::FoldFn
                })
            }
        }
        _ => quote!(::core::option::Option::None),
    };
    quote! {
        ::core::option::Option::Some(#element::ElementFns { apply: #apply, fold: #fold })
    }
}

/// `U` when the output type is written `Vec<U>`.
fn vec_item(output: &TokenStream) -> Option<Type> {
    let Ok(Type::Path(path)) = parse2::<Type>(output.clone()) else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) => match args.args.first() {
            Some(GenericArgument::Type(item)) => Some(item.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The task's output type, and whether the function returns `Result<output, _>`.
fn output_type(output: &ReturnType) -> (TokenStream, bool) {
    let ReturnType::Type(_, ty) = output else {
        return (quote!(()), false);
    };
    if let Type::Path(path) = ty.as_ref() {
        if let Some(last) = path.path.segments.last() {
            if last.ident == "Result" {
                if let PathArguments::AngleBracketed(args) = &last.arguments {
                    if let Some(GenericArgument::Type(ok)) = args.args.first() {
                        return (quote!(#ok), true);
                    }
                }
            }
        }
    }
    (quote!(#ty), false)
}
