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
        for (o, &w) in out.iter_mut().zip(&self.words) {
            let u = unit(u64::from_le(w));
            *o = if normal { inverse_normal_cdf(u) } else { u };
        }
    }
}

/// A 64-bit word as a uniform number on (0, 1): its top 53 bits, plus half a step,
/// so neither 0 nor 1 can come out and the values are symmetric about 1/2.
#[inline]
fn unit(word: u64) -> f64 {
    const STEP: f64 = 1.0 / (1u64 << 53) as f64;
    (word >> 11) as f64 * STEP + 0.5 * STEP
}

/// The standard normal quantile function, Wichura's algorithm AS 241 (PPND16,
/// relative error about 1e-16): one uniform in, one normal out.
#[inline]
pub fn inverse_normal_cdf(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q
            * (((((((r * 2509.080_928_730_122_7 + 33430.575_583_588_13) * r
                + 67265.770_927_008_7)
                * r
                + 45921.953_931_549_87)
                * r
                + 13731.693_765_509_46)
                * r
                + 1971.590_950_306_551_4)
                * r
                + 133.141_667_891_784_38)
                * r
                + 3.387_132_872_796_366_5)
            / (((((((r * 5226.495_278_852_546 + 28729.085_735_721_943) * r
                + 39307.895_800_092_71)
                * r
                + 21213.794_301_586_597)
                * r
                + 5394.196_021_424_751)
                * r
                + 687.187_007_492_057_9)
                * r
                + 42.313_330_701_600_91)
                * r
                + 1.0);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let mut r = (-tail.ln()).sqrt();
    let value = if r <= 5.0 {
        r -= 1.6;
        (((((((r * 7.745_450_142_783_414e-4 + 0.022_723_844_989_269_184) * r
            + 0.241_780_725_177_450_6)
            * r
            + 1.270_458_252_452_368_4)
            * r
            + 3.647_848_324_763_204_5)
            * r
            + 5.769_497_221_460_691)
            * r
            + 4.630_337_846_156_545)
            * r
            + 1.423_437_110_749_683_5)
            / (((((((r * 1.050_750_071_644_416_8e-9 + 5.475_938_084_995_345e-4) * r
                + 0.015_198_666_563_616_457)
                * r
                + 0.148_103_976_427_480_08)
                * r
                + 0.689_767_334_985_1)
                * r
                + 1.676_384_830_183_803_8)
                * r
                + 2.053_191_626_637_759)
                * r
                + 1.0)
    } else {
        r -= 5.0;
        (((((((r * 2.010_334_399_292_288_1e-7 + 2.711_555_568_743_487_6e-5) * r
            + 0.001_242_660_947_388_078_4)
            * r
            + 0.026_532_189_526_576_124)
            * r
            + 0.296_560_571_828_504_87)
            * r
            + 1.784_826_539_917_291_3)
            * r
            + 5.463_784_911_164_114)
            * r
            + 6.657_904_643_501_103)
            / (((((((r * 2.044_263_103_389_939_7e-15 + 1.421_511_758_316_446e-7) * r
                + 1.846_318_317_510_054_8e-5)
                * r
                + 7.868_691_311_456_133e-4)
                * r
                + 0.014_875_361_290_850_615)
                * r
                + 0.136_929_880_922_735_8)
                * r
                + 0.599_832_206_555_888)
                * r
                + 1.0)
    };
    if q < 0.0 {
        -value
    } else {
        value
    }
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
        assert_ne!(a.iter().map(|&x| x > 0.0).collect::<Vec<_>>(), vec![true; 8]);
        assert!(u.iter().all(|&x| x > 0.0 && x < 1.0));
    }

    #[test]
    fn the_values_are_pinned() {
        // A change here changes every generated array: bump only on purpose.
        let v = row(Generator::Normal { seed: 42 }, 5, 1000, 2);
        let u = row(Generator::Uniform { seed: 42 }, 5, 1000, 2);
        assert_eq!(format!("{v:?} {u:?}"), PINNED);
    }
    const PINNED: &str = "[-0.9748760986534389, 1.394764515594219] [0.15548414187013332, 0.6536603531891634]";

    #[test]
    fn the_quantile_function_is_accurate() {
        for (p, x) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.025, -1.959_963_984_540_054),
            (0.841_344_746_068_542_9, 1.0),
            (1e-10, -6.361_340_902_404_056),
            (5.551_115_123_125_783e-17, -8.292_361_075_813_596), // 2^-54: the smallest uniform
        ] {
            let got = inverse_normal_cdf(p);
            assert!((got - x).abs() <= 1e-13 * x.abs().max(1.0), "{p}: {got} vs {x}");
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
