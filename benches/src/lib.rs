//! Shared helpers for the benchmark harness binaries.
