//! Counter-based random values: element `(i, j)` of a generated array depends only
//! on the seed, the distribution, `i` and `j` (see the crate docs).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// What a generated array's elements are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Generator {
    /// Every element the same value (`zeros`, `ones`, `full`).
    Constant(f64),
    /// Uniform on the open interval (0, 1), from `seed`.
    Uniform {
        /// The array's seed.
        seed: u64,
    },
    /// Standard normal, from `seed`.
    Normal {
        /// The array's seed.
        seed: u64,
    },
}

/// The top bit of a ChaCha stream number: set for normal arrays, clear for uniform
/// ones, so the two kinds drawn from one seed are independent.
const NORMAL_STREAM: u64 = 1 << 63;

/// Fills one row segment of a generated array.
pub struct RowFiller {
    generator: Generator,
    rng: Option<ChaCha8Rng>,
    words: Vec<u64>,
    scratch: Scratch,
}

impl RowFiller {
    /// A filler for `generator` (keyed once: seeking to a row is then O(1)).
    pub fn new(generator: Generator) -> RowFiller {
        let rng = match generator {
            Generator::Constant(_) => None,
            Generator::Uniform { seed } | Generator::Normal { seed } => {
                Some(ChaCha8Rng::seed_from_u64(seed))
            }
        };
        RowFiller {
            generator,
            rng,
            words: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// Writes elements `(row, col0 ..)` into `out`.
    pub fn fill(&mut self, row: u64, col0: u64, out: &mut [f64]) {
        let rng = match (self.generator, self.rng.as_mut()) {
            (Generator::Constant(value), _) => {
                out.fill(value);
                return;
            }
            (_, Some(rng)) => rng,
            (_, None) => unreachable!("random generators have a stream"),
        };
        let normal = matches!(self.generator, Generator::Normal { .. });
        rng.set_stream(if normal { row | NORMAL_STREAM } else { row });
        // Two 32-bit words per element: the position is a counter, so seeking is O(1).
        rng.set_word_pos(2 * u128::from(col0));
        self.words.resize(out.len(), 0);
        rng.fill_bytes(bytemuck::cast_slice_mut(&mut self.words));
        if normal {
            normals(&self.words, out, &mut self.scratch);
        } else {
            for (o, &w) in out.iter_mut().zip(&self.words) {
                *o = unit(u64::from_le(w));
            }
        }
    }
}

/// Half a step of the 52-bit grid the uniforms lie on.
const HALF_STEP: f64 = 1.0 / (1u64 << 53) as f64;

/// A 64-bit word as a uniform number on (0, 1): its top 52 bits `k` give
/// `k 2^-52 + 2^-53`, so neither 0 nor 1 can come out and the values are symmetric
/// about 1/2. Built from the bits (exact, and vectorisable without AVX-512).
#[inline(always)]
fn unit(word: u64) -> f64 {
    (f64::from_bits(0x3ff0_0000_0000_0000 | (word >> 12)) - 1.0) + HALF_STEP
}

/// The standard normal quantile function: Wichura's algorithm AS 241 (PPND16,
/// relative error about 1e-16), with fdlibm's logarithm in the tails, so that it
/// gives the same bits on every machine and in the batch form [`RowFiller`] uses.
pub fn inverse_normal_cdf(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        central(q)
    } else if q < 0.0 {
        -tail(p)
    } else {
        tail(1.0 - p)
    }
}

/// AS 241's central region, `|q| <= 0.425` with `q = p - 1/2`.
// The coefficients as published (AS 241, fdlibm): each rounds to its f64.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn central(q: f64) -> f64 {
    let r = 0.180625 - q * q;
    q * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r + 67265.770927008700853)
        * r
        + 45921.953931549871457)
        * r
        + 13731.693765509461125)
        * r
        + 1971.5909503065514427)
        * r
        + 133.14166789178437745)
        * r
        + 3.387132872796366608)
        / (((((((r * 5226.495278852545925 + 28729.085735721942674) * r + 39307.89580009271061)
            * r
            + 21213.794301586595867)
            * r
            + 5394.1960214247511077)
            * r
            + 687.1870074920579083)
            * r
            + 42.313330701600911252)
            * r
            + 1.0)
}

/// fdlibm's natural logarithm for positive normal numbers (no special cases).
// The coefficients as published (AS 241, fdlibm): each rounds to its f64.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn log_pos(x: f64) -> f64 {
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const LG1: f64 = 6.666666666666735130e-01;
    const LG2: f64 = 3.999999999940941908e-01;
    const LG3: f64 = 2.857142874366239149e-01;
    const LG4: f64 = 2.222219843214978396e-01;
    const LG5: f64 = 1.818357216161805012e-01;
    const LG6: f64 = 1.531383769920937332e-01;
    const LG7: f64 = 1.479819860511658591e-01;
    let bits = x.to_bits();
    let hx = (bits >> 32) as u32;
    let mut k = ((hx >> 20) as i32) - 1023;
    let hm = hx & 0x000f_ffff;
    let i = (hm.wrapping_add(0x95f64)) & 0x10_0000;
    let xn = f64::from_bits((((hm | (i ^ 0x3ff0_0000)) as u64) << 32) | (bits & 0xffff_ffff));
    k += (i >> 20) as i32;
    let f = xn - 1.0;
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let dk = k as f64;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// AS 241's tails: the quantile's magnitude for `t = min(p, 1 - p) < 0.075`.
// The coefficients as published (AS 241, fdlibm): each rounds to its f64.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn tail(t: f64) -> f64 {
    // t = min(p, 1 - p) < 0.075; returns the positive quantile magnitude.
    let r = (-log_pos(t)).sqrt();
    let a = r - 1.6;
    let near = (((((((a * 7.7454501427834140764e-4 + 0.0227238449892691845833) * a
        + 0.24178072517745061177)
        * a
        + 1.27045825245236838258)
        * a
        + 3.64784832476320460504)
        * a
        + 5.7694972214606914055)
        * a
        + 4.6303378461565452959)
        * a
        + 1.42343711074968357734)
        / (((((((a * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * a
            + 0.0151986665636164571966)
            * a
            + 0.14810397642748007459)
            * a
            + 0.68976733498510000455)
            * a
            + 1.6763848301838038494)
            * a
            + 2.05319162663775882187)
            * a
            + 1.0);
    let b = r - 5.0;
    let far = (((((((b * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * b
        + 0.0012426609473880784386)
        * b
        + 0.026532189526576123093)
        * b
        + 0.29656057182850489123)
        * b
        + 1.7848265399172913358)
        * b
        + 5.4637849111641143699)
        * b
        + 6.6579046435011037772)
        / (((((((b * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * b
            + 1.8463183175100546818e-5)
            * b
            + 7.868691311456132591e-4)
            * b
            + 0.0148753612908506148525)
            * b
            + 0.13692988092273580531)
            * b
            + 0.59983220655588793769)
            * b
            + 1.0);
    if r <= 5.0 {
        near
    } else {
        far
    }
}

/// Reusable buffers of the batch quantile function.
#[derive(Default)]
struct Scratch {
    in_tail: Vec<u8>,
    tails: Vec<u32>,
    values: Vec<f64>,
}

/// Normals from words, in two passes that the compiler vectorises: the central
/// formula for every element, then the tail formula for the elements in the tails
/// only (about 15%), gathered into a dense buffer. Same bits as
/// [`inverse_normal_cdf`] of [`unit`] element by element.
#[inline(always)]
fn normals_body(words: &[u64], out: &mut [f64], scratch: &mut Scratch) {
    let n = out.len().min(words.len());
    let (words, out) = (&words[..n], &mut out[..n]);
    // Grown, never cleared: every entry read below was written first.
    if scratch.in_tail.len() < n {
        scratch.in_tail.resize(n, 0);
        scratch.tails.resize(n, 0);
    }
    for ((o, &w), flag) in out.iter_mut().zip(words).zip(&mut scratch.in_tail) {
        let q = unit(u64::from_le(w)) - 0.5;
        *o = central(q);
        *flag = u8::from(q.abs() > 0.425);
    }
    let mut m = 0usize;
    for (k, &flag) in scratch.in_tail[..n].iter().enumerate() {
        scratch.tails[m] = k as u32;
        m += usize::from(flag);
    }
    let tails = &scratch.tails[..m];
    scratch.values.clear();
    scratch.values.extend(tails.iter().map(|&k| {
        let p = unit(u64::from_le(words[k as usize]));
        if p < 0.5 {
            p
        } else {
            1.0 - p
        }
    }));
    for t in scratch.values.iter_mut() {
        *t = tail(*t);
    }
    for (&k, &v) in tails.iter().zip(&scratch.values) {
        let below = unit(u64::from_le(words[k as usize])) < 0.5;
        out[k as usize] = if below { -v } else { v };
    }
}

/// [`normals_body`] compiled for AVX2 (four lanes; no FMA contraction in Rust, so
/// the same bits as the baseline build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normals_avx2(words: &[u64], out: &mut [f64], scratch: &mut Scratch) {
    normals_body(words, out, scratch)
}

/// Normals from words, with AVX2 where the processor has it.
fn normals(words: &[u64], out: &mut [f64], scratch: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2 (checked just above).
        unsafe { normals_avx2(words, out, scratch) };
        return;
    }
    normals_body(words, out, scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(generator: Generator, row: u64, col0: u64, len: usize) -> Vec<f64> {
        let mut out = vec![0.0; len];
        RowFiller::new(generator).fill(row, col0, &mut out);
        out
    }

    #[test]
    fn a_segment_equals_the_same_part_of_the_whole_row() {
        let normal = Generator::Normal { seed: 7 };
        let whole = row(normal, 3, 0, 100);
        assert_eq!(row(normal, 3, 37, 20), whole[37..57].to_vec());
        assert_eq!(row(normal, 3, 99, 1), whole[99..].to_vec());
    }

    #[test]
    fn rows_seeds_and_kinds_differ() {
        let a = row(Generator::Normal { seed: 1 }, 0, 0, 8);
        assert_ne!(a, row(Generator::Normal { seed: 1 }, 1, 0, 8));
        assert_ne!(a, row(Generator::Normal { seed: 2 }, 0, 0, 8));
        let u = row(Generator::Uniform { seed: 1 }, 0, 0, 8);
        assert_ne!(
            a.iter().map(|&x| x > 0.0).collect::<Vec<_>>(),
            vec![true; 8]
        );
        assert!(u.iter().all(|&x| x > 0.0 && x < 1.0));
    }

    #[test]
    fn the_values_are_pinned() {
        // A change here changes every generated array: bump only on purpose.
        let v = row(Generator::Normal { seed: 42 }, 5, 1000, 2);
        let u = row(Generator::Uniform { seed: 42 }, 5, 1000, 2);
        assert_eq!(format!("{v:?} {u:?}"), PINNED);
    }
    const PINNED: &str =
        "[-0.9748760986534389, 1.3947645155942194] [0.15548414187013326, 0.6536603531891635]";

    #[test]
    fn the_batch_form_gives_the_scalar_bits() {
        let mut words: Vec<u64> = (0..5000u64)
            .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        words.extend([
            0,
            u64::MAX,
            1 << 63,
            (1 << 63) - 1,
            0x1000,
            u64::MAX - 0x1000,
        ]);
        let mut out = vec![0.0; words.len()];
        normals(&words, &mut out, &mut Scratch::default());
        let mut generic = vec![0.0; words.len()];
        normals_body(&words, &mut generic, &mut Scratch::default());
        for ((&w, &o), &g) in words.iter().zip(&out).zip(&generic) {
            let scalar = inverse_normal_cdf(unit(w));
            assert_eq!(
                (o.to_bits(), g.to_bits()),
                (scalar.to_bits(), scalar.to_bits()),
                "{w:#x}"
            );
        }
        // The extremes of the 52-bit grid: symmetric, finite.
        assert_eq!(out[5000], -out[5001]);
        assert!(out[5000] < -8.2 && out[5000].is_finite());
    }

    /// The AVX2 entry with lying lengths and a reused scratch: words shorter or
    /// longer than the output fill only the common prefix (the rest of `out` is
    /// untouched), and a scratch grown by a larger call and then used for a smaller
    /// one gives the same bits as a fresh one (run under valgrind: no read of
    /// memory that was not written).
    #[test]
    fn mismatched_lengths_and_a_reused_scratch_give_the_same_bits() {
        let words: Vec<u64> = (0..300u64)
            .map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k << 60))
            .collect();
        let fresh = |w: &[u64]| {
            let mut out = vec![0.0; w.len()];
            normals_body(w, &mut out, &mut Scratch::default());
            out
        };
        let mut scratch = Scratch::default();
        let mut big = vec![0.0; 300];
        normals(&words, &mut big, &mut scratch);
        assert_eq!(big, fresh(&words));
        // Fewer words than output slots: the tail of `out` keeps its values.
        let mut out = vec![7.0; 120];
        normals(&words[..100], &mut out, &mut scratch);
        assert_eq!(out[..100], fresh(&words[..100])[..]);
        assert!(out[100..].iter().all(|&x| x == 7.0));
        // More words than output slots: only as many as fit are used.
        let mut short = vec![0.0; 50];
        normals(&words, &mut short, &mut scratch);
        assert_eq!(short, fresh(&words[..50]));
        // Nothing at all.
        normals(&[], &mut [], &mut scratch);
    }

    #[test]
    fn fdlibm_log_matches_the_system_log() {
        for x in [
            1e-300,
            2f64.powi(-53),
            1e-10,
            0.01,
            0.074,
            0.5,
            0.999,
            1.0,
            7.5,
        ] {
            let (ours, system) = (log_pos(x), x.ln());
            assert!(
                (ours - system).abs() <= 2.0 * f64::EPSILON * system.abs().max(1e-300),
                "{x}"
            );
        }
    }

    #[test]
    fn the_quantile_function_is_accurate() {
        for (p, x) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.025, -1.959_963_984_540_054),
            (0.841_344_746_068_542_9, 1.0),
            (1e-10, -6.361_340_902_404_056),
            (5.551_115_123_125_783e-17, -8.292_361_075_813_596), // 2^-54
        ] {
            let got = inverse_normal_cdf(p);
            assert!(
                (got - x).abs() <= 1e-13 * x.abs().max(1.0),
                "{p}: {got} vs {x}"
            );
        }
    }

    #[test]
    fn normal_draws_have_the_right_moments() {
        let v = row(Generator::Normal { seed: 3 }, 0, 0, 200_000);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.01, "{var}");
    }

    #[test]
    fn constants_fill() {
        assert_eq!(row(Generator::Constant(2.5), 9, 9, 3), vec![2.5; 3]);
    }
}
