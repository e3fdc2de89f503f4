//! Whether a call shows progress, and how: a bar on a terminal, plain lines on request.

/// The environment variable that turns progress on (`1`) or off (`0`).
pub const PROGRESS_VARIABLE: &str = "WHEREVER_PROGRESS";

/// How a call shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nothing is shown.
    Off,
    /// An `indicatif` bar on stderr (a terminal).
    Bar,
    /// Periodic plain lines on stderr (for batch logs such as a Slurm job's output).
    Lines,
}

/// What the environment variable asks for: `Ok(None)` when unset or empty, an error
/// naming the variable and the accepted values when malformed.
pub(crate) fn requested_by_env(value: Option<&str>) -> Result<Option<bool>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("1" | "on" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "off" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(format!(
            "{PROGRESS_VARIABLE}={other:?} is not understood (use 1 or 0); \
             progress follows the terminal"
        )),
    }
}

/// The mode from what the code asked (`client.progress(..)`), what the environment
/// asked, and whether stderr is a terminal.
pub(crate) fn decide(by_code: Option<bool>, by_env: Option<bool>, terminal: bool) -> Mode {
    match (by_code.or(by_env), terminal) {
        (Some(false), _) => Mode::Off,
        (Some(true), true) | (None, true) => Mode::Bar,
        (Some(true), false) => Mode::Lines,
        (None, false) => Mode::Off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_a_bar_unless_turned_off() {
        assert_eq!(decide(None, None, true), Mode::Bar);
        assert_eq!(decide(None, Some(false), true), Mode::Off);
        assert_eq!(decide(Some(false), Some(true), true), Mode::Off);
    }

    #[test]
    fn a_pipe_gets_nothing_unless_asked_then_lines() {
        assert_eq!(decide(None, None, false), Mode::Off);
        assert_eq!(decide(None, Some(true), false), Mode::Lines);
        assert_eq!(decide(Some(true), None, false), Mode::Lines);
        assert_eq!(decide(Some(true), Some(false), false), Mode::Lines);
    }

    #[test]
    fn the_variable_accepts_1_and_0_and_names_itself_when_malformed() {
        assert_eq!(requested_by_env(None), Ok(None));
        assert_eq!(requested_by_env(Some("")), Ok(None));
        assert_eq!(requested_by_env(Some("1")), Ok(Some(true)));
        assert_eq!(requested_by_env(Some(" 0 ")), Ok(Some(false)));
        let error = requested_by_env(Some("maybe")).unwrap_err();
        assert!(error.contains("WHEREVER_PROGRESS=\"maybe\""), "{error}");
        assert!(error.contains("use 1 or 0"), "{error}");
    }
}
