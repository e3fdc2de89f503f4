//! `#[wherever::task]`: keep the function as written (callable as ever), register a
//! type-erased entry point under its stable name, and a typed `wherever::Task` that
//! clients find from the function item's `TypeId`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{parse2, FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

/// What a parameter of the task function receives.
enum Param {
    /// A user argument of this type.
    Argument(Box<Type>),
    /// The task's random stream (`&mut TaskRng`).
    Rng,
    /// The task's context (`&mut TaskContext`).
    Context,
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
        .filter(|p| !matches!(p, Param::Argument(_)))
        .count();
    if runtime_params > 1 {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "take either `&mut TaskRng` or `&mut TaskContext` (whose `rng()` gives the stream), not both",
        ));
    }
    if runtime_params == 1 && matches!(params.last(), Some(Param::Argument(_))) {
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
            Param::Argument(ty) => Some(ty.as_ref()),
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
            Param::Argument(_) => {
                let arg = next_argument.next().expect("one name per argument");
                quote!(#arg)
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
                    "task arguments are owned values (they may cross a process boundary)",
                ))
            }
        }
    }
    Ok(Param::Argument(typed.ty.clone()))
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
