//! Acceptance of the `row_means` example: with `--rows 4000 --cols 3000`, the
//! printed numbers are the same bytes with chunks 1000 x 1000, 4000 x 500 and
//! 333 x 3000, under `sequential` and `processes:2`. The test binary is its own
//! worker executable (`harness = false`): `processes:2` starts copies of it.

#[path = "../../wherever/tests/common/harness.rs"]
mod harness;
#[path = "../examples/row_means/report.rs"]
mod report;

use wherever::Plan;

const CHUNKS: [[usize; 2]; 3] = [[1000, 1000], [4000, 500], [333, 3000]];

fn outputs(plan: &str) -> Vec<String> {
    let client = Plan::parse(plan).unwrap().start().unwrap();
    CHUNKS
        .iter()
        .map(|&chunks| report::row_means(&client, [4000, 3000], chunks, 1).unwrap())
        .collect()
}

fn the_same_bytes_whatever_the_chunks_and_the_plan() {
    let sequential = outputs("sequential");
    let processes = outputs("processes:2");
    assert!(
        sequential[0].starts_with("first row means: "),
        "{}",
        sequential[0]
    );
    for (k, text) in sequential.iter().chain(&processes).enumerate() {
        assert_eq!(text, &sequential[0], "run {k} differs");
    }
}

/// This process's peak resident memory in bytes since the last reset (`VmHWM`).
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// A reduction over a generated array whose one chunk is 128 MB never holds the chunk:
/// the task folds it row by row as it generates it.
fn a_reduction_over_a_generated_array_never_holds_a_chunk() {
    let client = Plan::parse("sequential").unwrap().start().unwrap();
    let x = wherever_array::Array::random_normal(&[4000, 4000], &[4000, 4000], 3).unwrap();
    let means = x.mean(ndarray::Axis(1)).unwrap();
    // Resets VmHWM to the current resident size (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak");
    let before = peak_memory();
    let values = means.compute(&client).unwrap();
    let grown = peak_memory().saturating_sub(before);
    assert_eq!(values.len(), 4000);
    assert!(
        grown < 32 << 20,
        "the peak grew by {} MB for a 128 MB chunk",
        grown >> 20
    );
}

/// The generated 4000 x 3000 array itself is the same bytes in each of the three
/// chunkings (under processes:2, so the blocks are made by worker processes).
fn the_generated_values_are_the_same_bytes_whatever_the_chunks() {
    let client = Plan::parse("processes:2").unwrap().start().unwrap();
    let bits = |chunks: [usize; 2]| -> Vec<u64> {
        let x = wherever_array::Array::random_normal(&[4000, 3000], &chunks, 1).unwrap();
        x.compute(&client)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let reference = bits(CHUNKS[0]);
    assert_eq!(reference.len(), 4000 * 3000);
    for &chunks in &CHUNKS[1..] {
        assert!(
            bits(chunks) == reference,
            "chunks {chunks:?} give other values"
        );
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[
        (
            "a_reduction_over_a_generated_array_never_holds_a_chunk",
            a_reduction_over_a_generated_array_never_holds_a_chunk,
        ),
        (
            "the_generated_values_are_the_same_bytes_whatever_the_chunks",
            the_generated_values_are_the_same_bytes_whatever_the_chunks,
        ),
        (
            "the_same_bytes_whatever_the_chunks_and_the_plan",
            the_same_bytes_whatever_the_chunks_and_the_plan,
        ),
    ]);
}
