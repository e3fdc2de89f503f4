//! The tutorial's first lazy graph (`dask.delayed`, section 3.1): two increments
//! and a sum, built without running anything, then computed on any plan.
//!
//! ```text
//! cargo run --example delayed_basics -- --plan threads:2 > inc_add.dot
//! ```
//!
//! Prints the value on the first line, then the computed graph in Graphviz DOT
//! (render it with `dot -Tpng`).

use wherever::prelude::*;

/// Adds one.
#[wherever::task]
fn inc(x: i64) -> i64 {
    x + 1
}

/// Adds two numbers.
#[wherever::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[wherever::main]
fn main() -> wherever::Result<()> {
    let client = Plan::from_args_or("threads")?.start()?;

    let x = delayed(inc, 1);
    let y = delayed(inc, 2);
    let z = delayed(add, (&x, &y));

    let value = z.compute(&client)?;
    println!("{value}");
    print!("{}", z.to_dot());
    Ok(())
}
