//! Reading `--plan` and `--seed` from a program's own arguments, so every example
//! and user program takes the same flags without a CLI library.

use crate::Error;

/// The value of `flag` given as `FLAG VALUE` or `FLAG=VALUE` among `args` (the
/// program name first, as `std::env::args()` yields it); the last one wins. A flag
/// without a value is an error.
pub fn flag_value(
    args: impl IntoIterator<Item = String>,
    flag: &str,
) -> Result<Option<String>, Error> {
    let mut found = None;
    let mut args = args.into_iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == flag {
            match args.next() {
                Some(value) if !value.starts_with("--") => found = Some(value),
                _ => return Err(Error::Args(format!("`{flag}` needs a value"))),
            }
        } else if let Some(value) = arg
            .strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
        {
            found = Some(value.to_string());
        }
    }
    Ok(found)
}

/// The seed given with `--seed S` among the program's arguments, else the
/// `WHEREVER_SEED` environment variable, else `None`.
pub fn seed_from_args() -> Result<Option<u64>, Error> {
    let text = match flag_value(std::env::args(), "--seed")? {
        Some(text) => text,
        None => match std::env::var("WHEREVER_SEED") {
            Ok(text) => text,
            Err(_) => return Ok(None),
        },
    };
    parse_seed(&text).map(Some)
}

/// The seed given as `flag` (a program's own parsed `--seed` option), else
/// `WHEREVER_SEED`, else `None`.
pub fn seed_or_env(flag: Option<u64>) -> Result<Option<u64>, Error> {
    match flag {
        Some(seed) => Ok(Some(seed)),
        None => match std::env::var("WHEREVER_SEED") {
            Ok(text) => parse_seed(&text).map(Some),
            Err(_) => Ok(None),
        },
    }
}

/// Parses a seed: a whole number from 0 to 2^64 - 1.
pub fn parse_seed(text: &str) -> Result<u64, Error> {
    text.trim().parse::<u64>().map_err(|_| {
        Error::Args(format!(
            "invalid seed `{text}`: expected a whole number from 0 to {}",
            u64::MAX
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        std::iter::once("prog")
            .chain(list.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn reads_both_flag_forms() {
        assert_eq!(
            flag_value(args(&["--plan", "threads:2"]), "--plan").unwrap(),
            Some("threads:2".into())
        );
        assert_eq!(
            flag_value(args(&["--plan=sequential"]), "--plan").unwrap(),
            Some("sequential".into())
        );
        assert_eq!(flag_value(args(&["--n", "5"]), "--plan").unwrap(), None);
        assert_eq!(
            flag_value(args(&["--planet", "x"]), "--plan").unwrap(),
            None
        );
    }

    #[test]
    fn a_flag_without_value_is_an_error() {
        let error = flag_value(args(&["--plan"]), "--plan").unwrap_err();
        assert_eq!(error.to_string(), "`--plan` needs a value");
        assert!(flag_value(args(&["--plan", "--seed", "1"]), "--plan").is_err());
    }

    #[test]
    fn seeds_must_be_whole_numbers() {
        assert_eq!(parse_seed("42").unwrap(), 42);
        for bad in ["-1", "x", "", "1.5", "18446744073709551616"] {
            let message = parse_seed(bad).unwrap_err().to_string();
            assert!(message.starts_with("invalid seed"), "{message}");
        }
    }
}
