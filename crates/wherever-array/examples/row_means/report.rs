//! The numbers `row_means` prints, as text (shared with the acceptance test).

use ndarray::{Axis, Ix1};
use wherever::Client;
use wherever_array::Array;

/// The first five row means and the mean of all row means of a `shape` array of
/// standard normal draws from `seed` in `chunks`, one line each.
pub fn row_means(
    client: &Client,
    shape: [usize; 2],
    chunks: [usize; 2],
    seed: u64,
) -> Result<String, Box<dyn std::error::Error>> {
    let x = Array::random_normal(&shape, &chunks, seed)?;
    let means = x
        .mean(Axis(1))?
        .compute(client)?
        .into_dimensionality::<Ix1>()?;
    let first: Vec<String> = means.iter().take(5).map(|&m| significant(m)).collect();
    Ok(format!(
        "first row means: {}\nmean of row means: {}\n",
        first.join(" "),
        significant(means.mean().unwrap_or(f64::NAN))
    ))
}

/// `x` in decimal notation with up to 7 significant digits.
fn significant(x: f64) -> String {
    const DIGITS: i32 = 7;
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (DIGITS - 1 - magnitude).clamp(0, 20) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}
