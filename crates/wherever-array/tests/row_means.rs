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
    assert!(sequential[0].starts_with("first row means: "), "{}", sequential[0]);
    for (k, text) in sequential.iter().chain(&processes).enumerate() {
        assert_eq!(text, &sequential[0], "run {k} differs");
    }
}

#[wherever::main]
fn main() {
    harness::run_checks(&[(
        "the_same_bytes_whatever_the_chunks_and_the_plan",
        the_same_bytes_whatever_the_chunks_and_the_plan,
    )]);
}
