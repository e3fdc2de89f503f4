//! The resources a worker advertises to its scheduler (Dask's `dask-worker
//! --resources "GPU=2"`), read from [`RESOURCES_VARIABLE`].

use wherever_scheduler::Resources;

/// The environment variable giving a worker's resources, e.g. `gpu=2,mem=4GB`
/// (`wherever worker --resources` sets it). Without `cpus`, the scheduler counts
/// one cpu per task thread; a worker without it has only `cpus`.
pub const RESOURCES_VARIABLE: &str = "WHEREVER_WORKER_RESOURCES";

/// This worker's resources from [`RESOURCES_VARIABLE`] (none if unset); a
/// malformed value is an error that names the variable.
pub fn advertised() -> Result<Resources, String> {
    match std::env::var(RESOURCES_VARIABLE) {
        Ok(text) => parse_advertised(&text),
        Err(std::env::VarError::NotPresent) => Ok(Resources::new()),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("{RESOURCES_VARIABLE} is not valid UTF-8"))
        }
    }
}

/// The resources of the variable's value `text`.
fn parse_advertised(text: &str) -> Result<Resources, String> {
    Resources::parse(text).map_err(|e| format!("{RESOURCES_VARIABLE}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_variable_is_an_error_naming_it() {
        let error = parse_advertised("gpu=lots").unwrap_err();
        assert!(error.contains(RESOURCES_VARIABLE), "{error}");
        assert!(error.contains("`lots` is not an amount"), "{error}");
        let parsed = parse_advertised("gpu=2, mem=4GB").unwrap();
        assert_eq!(parsed.get("gpu"), 2.0);
        assert_eq!(parsed.get("mem"), 4e9);
        assert!(parse_advertised("").unwrap().is_empty());
    }
}
