//! `#[wherever::main]`: prepend `wherever::init()` to `main`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{parse2, ItemFn};

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[wherever::main] takes no arguments",
        ));
    }
    let function: ItemFn = parse2(item)?;
    if function.sig.ident != "main" || !function.sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &function.sig,
            "#[wherever::main] goes on `fn main()`",
        ));
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            ::wherever::init();
            #block
        }
    })
}
