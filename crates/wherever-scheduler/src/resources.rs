//! Abstract resources (Dask's `resources=`): what a worker advertises (`cpus`, `mem`,
//! custom labels such as `gpu=2`) and what a task asks for. The scheduler places a task
//! only on a worker whose free amounts cover its request and holds the amounts while
//! the task is assigned there.
//!
//! Amounts are written as numbers with an optional byte unit: `2`, `1.5`, `4GB`
//! (10⁹ bytes), `512MiB` (2²⁰ bytes); they are kept as whole thousandths, so sums and
//! differences are exact.
//!
//! ```
//! use wherever_scheduler::Resources;
//!
//! let worker = Resources::parse("gpu=2, mem=4GB")?;
//! let task = Resources::parse("gpu=1,mem=512MiB")?;
//! assert!(worker.covers(&task));
//! assert_eq!(worker.get("mem"), 4e9);
//! assert!(Resources::parse("gpu=two").is_err());
//! # Ok::<(), wherever_scheduler::ResourceError>(())
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

/// Thousandths per unit: amounts are kept as whole thousandths.
const SCALE: f64 = 1000.0;

/// The largest amount accepted (10¹⁸ thousandths: an exabyte of `mem`).
const MAX_AMOUNT: f64 = 1e15;

/// Named amounts, sorted by name, without zero amounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// `(name, thousandths)`, sorted by name, no zeros, no repeated names.
    amounts: Vec<(String, u64)>,
}

/// A resource string or amount that cannot be used, with what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceError(String);

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResourceError {}

impl Resources {
    /// No resources.
    pub const fn new() -> Self {
        Resources {
            amounts: Vec::new(),
        }
    }

    /// Parses `NAME=AMOUNT[,NAME=AMOUNT…]` (spaces around items allowed; an empty
    /// string is no resources). Names start with a letter and hold letters, digits,
    /// `_`, `-` or `.`; amounts are non-negative numbers with an optional unit `B`,
    /// `KB`, `MB`, `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers
    /// of 1024), in any case. A zero amount is left out.
    pub fn parse(text: &str) -> Result<Self, ResourceError> {
        let mut resources = Resources::new();
        if text.trim().is_empty() {
            return Ok(resources);
        }
        for item in text.split(',') {
            let item = item.trim();
            let Some((name, amount)) = item.split_once('=') else {
                return Err(ResourceError(format!(
                    "resources `{text}`: `{item}` is not NAME=AMOUNT (e.g. gpu=1,mem=4GB)"
                )));
            };
            let name = name.trim();
            if resources.amounts.iter().any(|(n, _)| n == name) {
                return Err(ResourceError(format!(
                    "resources `{text}`: `{name}` is given twice"
                )));
            }
            let value = parse_amount(amount.trim())
                .map_err(|why| ResourceError(format!("resources `{text}`: {why}")))?;
            resources = resources
                .with(name, value)
                .map_err(|why| ResourceError(format!("resources `{text}`: {why}")))?;
        }
        Ok(resources)
    }

    /// These resources with `name` set to `amount` (replacing an earlier amount; zero
    /// removes it). An invalid name or a negative, infinite or too large amount is an
    /// error.
    pub fn with(mut self, name: &str, amount: f64) -> Result<Self, ResourceError> {
        check_name(name)?;
        let thousandths =
            to_thousandths(amount).map_err(|why| ResourceError(format!("`{name}`: {why}")))?;
        self.amounts.retain(|(n, _)| n != name);
        if thousandths > 0 {
            let at = self.amounts.partition_point(|(n, _)| n.as_str() < name);
            self.amounts.insert(at, (name.to_string(), thousandths));
        }
        Ok(self)
    }

    /// The amount of `name` (0 if absent).
    pub fn get(&self, name: &str) -> f64 {
        self.thousandths(name) as f64 / SCALE
    }

    /// Whether no resource is named.
    pub fn is_empty(&self) -> bool {
        self.amounts.is_empty()
    }

    /// The named amounts, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.amounts
            .iter()
            .map(|(name, amount)| (name.as_str(), *amount as f64 / SCALE))
    }

    /// Whether every amount of `request` is at most the amount of the same name here.
    pub fn covers(&self, request: &Resources) -> bool {
        request
            .amounts
            .iter()
            .all(|(name, amount)| self.thousandths(name) >= *amount)
    }

    /// Adds the amounts of `other` (held amounts given back).
    pub fn add(&mut self, other: &Resources) {
        for (name, amount) in &other.amounts {
            match self.amounts.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(i) => self.amounts[i].1 = self.amounts[i].1.saturating_add(*amount),
                Err(i) => self.amounts.insert(i, (name.clone(), *amount)),
            }
        }
    }

    /// Takes away the amounts of `other` (held amounts), never below zero. Names keep
    /// their entry at zero, so that giving them back does not allocate.
    pub fn subtract(&mut self, other: &Resources) {
        for (name, amount) in &other.amounts {
            if let Ok(i) = self.amounts.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                self.amounts[i].1 = self.amounts[i].1.saturating_sub(*amount);
            }
        }
    }

    /// These resources with `name` set to `amount` if they do not name it.
    pub fn or_default(self, name: &str, amount: f64) -> Result<Self, ResourceError> {
        if self.amounts.iter().any(|(n, _)| n == name) {
            Ok(self)
        } else {
            self.with(name, amount)
        }
    }

    fn thousandths(&self, name: &str) -> u64 {
        self.amounts
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map_or(0, |i| self.amounts[i].1)
    }
}

impl fmt::Display for Resources {
    /// `gpu=1,mem=4000000000` (amounts in plain numbers, zeros left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, amount) in self.iter().filter(|(_, amount)| *amount > 0.0) {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{name}={amount}")?;
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Resources {
    type Err = ResourceError;

    fn from_str(text: &str) -> Result<Self, ResourceError> {
        Resources::parse(text)
    }
}

fn check_name(name: &str) -> Result<(), ResourceError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if starts_well && chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        Ok(())
    } else {
        Err(ResourceError(format!(
            "`{name}` is not a resource name (a letter, then letters, digits, `_`, `-` or `.`)"
        )))
    }
}

/// A number with an optional byte unit: `2`, `1.5`, `4GB`, `512 MiB`.
fn parse_amount(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let malformed = || {
        format!("`{text}` is not an amount (a number with an optional unit: 2, 1.5, 4GB, 512MiB)")
    };
    let value: f64 = number.parse().map_err(|_| malformed())?;
    let factor = if unit.trim().is_empty() {
        1.0
    } else {
        wherever_core::byte_units::byte_unit_factor(unit).ok_or_else(malformed)?
    };
    Ok(value * factor)
}

fn to_thousandths(amount: f64) -> Result<u64, String> {
    if !amount.is_finite() || amount < 0.0 {
        return Err(format!("{amount} is not a non-negative amount"));
    }
    if amount > MAX_AMOUNT {
        return Err(format!("{amount} is too large (at most {MAX_AMOUNT})"));
    }
    let thousandths = (amount * SCALE).round() as u64;
    if thousandths == 0 && amount > 0.0 {
        return Err(format!("{amount} is below the resolution of 0.001"));
    }
    Ok(thousandths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_with_units_parse() {
        let r = Resources::parse("gpu=2, mem=4GB,licence=1.5,scratch=512MiB,x=3 kb").unwrap();
        assert_eq!(r.get("gpu"), 2.0);
        assert_eq!(r.get("mem"), 4e9);
        assert_eq!(r.get("licence"), 1.5);
        assert_eq!(r.get("scratch"), 512.0 * 1024.0 * 1024.0);
        assert_eq!(r.get("x"), 3000.0);
        assert_eq!(r.get("absent"), 0.0);
        assert_eq!(
            r.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["gpu", "licence", "mem", "scratch", "x"]
        );
        assert_eq!(
            Resources::parse("GPU=1gib").unwrap().get("GPU"),
            1073741824.0
        );
    }

    #[test]
    fn empty_and_zero_are_no_resources() {
        assert!(Resources::parse("").unwrap().is_empty());
        assert!(Resources::parse("  ").unwrap().is_empty());
        assert!(Resources::parse("gpu=0").unwrap().is_empty());
    }

    #[test]
    fn malformed_strings_say_what_is_wrong() {
        let cases = [
            ("gpu", "is not NAME=AMOUNT"),
            ("gpu=1,", "is not NAME=AMOUNT"),
            ("=1", "is not a resource name"),
            ("1gpu=1", "is not a resource name"),
            ("g pu=1", "is not a resource name"),
            ("gpu=two", "is not an amount"),
            ("gpu=", "is not an amount"),
            ("gpu=-1", "is not an amount"),
            ("gpu=1.2.3", "is not an amount"),
            ("mem=4XB", "is not an amount"),
            ("gpu=1,gpu=2", "given twice"),
            ("gpu=0.0001", "below the resolution"),
            ("mem=9999999TB", "too large"),
        ];
        for (text, expected) in cases {
            let error = Resources::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains(text), "{text}: {error}");
        }
        assert!(Resources::new().with("gpu", f64::NAN).is_err());
        assert!(Resources::new().with("gpu", -1.0).is_err());
        assert!(Resources::new().with("", 1.0).is_err());
    }

    #[test]
    fn covering_holding_and_giving_back_are_exact() {
        let mut free = Resources::parse("gpu=1,mem=1GB").unwrap();
        let task = Resources::parse("gpu=0.1,mem=100MB").unwrap();
        for _ in 0..10 {
            assert!(free.covers(&task));
            free.subtract(&task);
        }
        assert!(!free.covers(&task));
        assert_eq!(free.get("gpu"), 0.0);
        for _ in 0..10 {
            free.add(&task);
        }
        assert_eq!(free, Resources::parse("gpu=1,mem=1GB").unwrap());
        assert!(!free.covers(&Resources::parse("tpu=1").unwrap()));
        assert!(free.covers(&Resources::new()));
    }

    #[test]
    fn display_round_trips_and_defaults_fill_gaps() {
        let r = Resources::parse("mem=4GB,gpu=1.5").unwrap();
        assert_eq!(r.to_string(), "gpu=1.5,mem=4000000000");
        assert_eq!(r.to_string().parse::<Resources>().unwrap(), r);
        assert_eq!(Resources::new().to_string(), "(none)");
        let r = r
            .or_default("cpus", 4.0)
            .unwrap()
            .or_default("gpu", 9.0)
            .unwrap();
        assert_eq!(r.get("cpus"), 4.0);
        assert_eq!(r.get("gpu"), 1.5);
    }
}
