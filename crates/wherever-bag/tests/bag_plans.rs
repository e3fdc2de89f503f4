//! Bags under `sequential`, `threads:2` and `processes:2`, with real worker
//! processes: this test binary is its own worker executable (`harness = false`),
//! so the element functions below are registered in the workers too.
//! The acceptance check: `wiki_filter` gives the same counts on every plan, equal
//! to `zcat | awk` over the same generated files.

#[path = "../../wherever/tests/common/harness.rs"]
mod harness;

#[allow(dead_code)]
#[path = "../examples/wiki_filter.rs"]
mod wiki_filter;

use std::io::Write;
use std::process::Command;
use wherever::prelude::*;
use wherever_bag::{Bag, BagError};

const PLANS: [&str; 3] = ["sequential", "threads:2", "processes:2"];

#[wherever::task]
fn double(x: u64) -> u64 {
    x * 2
}

#[wherever::task]
fn is_even(x: &u64) -> bool {
    x.is_multiple_of(2)
}

#[wherever::task]
fn words(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_string).collect()
}

#[wherever::task]
fn length(word: String) -> u64 {
    word.len() as u64
}

#[wherever::task]
fn add(total: u64, x: u64) -> u64 {
    total + x
}

#[wherever::task]
fn parity(x: &u64) -> String {
    if x.is_multiple_of(2) { "even" } else { "odd" }.to_string()
}

#[wherever::task]
fn scaled(x: u64, factor: &u64) -> u64 {
    x * factor
}

#[wherever::task]
fn parse_number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text:?}"))
}

fn start(plan: &str) -> Client {
    Plan::parse(plan)
        .expect("a valid plan")
        .start()
        .expect("the plan starts")
}

fn bag_operations_give_the_same_results_on_every_plan() {
    for plan in PLANS {
        let client = start(plan);
        let numbers = Bag::from_iter(0..100u64, 7);
        assert_eq!(numbers.npartitions(), 7);
        assert_eq!(numbers.count().compute(&client).unwrap(), 100, "{plan}");
        assert_eq!(numbers.sum().compute(&client).unwrap(), 4950, "{plan}");
        let doubled_evens = numbers.filter(is_even).map(double);
        // One partition task per partition runs the whole chain; its key names it.
        let dot = doubled_evens.sum().to_dot();
        assert!(
            dot.contains("bag-filter[is_even]-map[double]-sum-"),
            "{dot}"
        );
        assert_eq!(dot.matches("bag_partition\\n").count(), 7, "{dot}");
        assert_eq!(
            doubled_evens.sum().compute(&client).unwrap(),
            4900,
            "{plan}"
        );
        assert_eq!(
            doubled_evens.compute(&client).unwrap(),
            (0..100)
                .filter(|x| x % 2 == 0)
                .map(|x| x * 2)
                .collect::<Vec<u64>>()
        );
        assert_eq!(
            numbers.map_with(scaled, &3).sum().compute(&client).unwrap(),
            14850
        );
        assert_eq!(numbers.take(3, &client).unwrap(), [0, 1, 2], "{plan}");
        assert_eq!(
            numbers.fold(add, add, 0).compute(&client).unwrap(),
            4950,
            "{plan}"
        );
        let mut by_parity = numbers
            .foldby(parity, add, 0, add)
            .compute(&client)
            .unwrap();
        by_parity.sort();
        assert_eq!(
            by_parity,
            [("even".to_string(), 2450), ("odd".to_string(), 2500)],
            "{plan}"
        );

        let lines = Bag::from_iter(["a b a", "c", "b b", ""].map(str::to_string), 3);
        let all_words = lines.flat_map(words);
        assert_eq!(all_words.count().compute(&client).unwrap(), 7, "{plan}");
        assert_eq!(
            all_words.frequencies().compute(&client).unwrap(),
            [
                ("a".to_string(), 2),
                ("b".to_string(), 3),
                ("c".to_string(), 1),
                (String::new(), 1)
            ],
            "{plan}"
        );
        assert_eq!(
            all_words.distinct().compute(&client).unwrap(),
            ["a", "b", "c", ""],
            "{plan}"
        );
        assert_eq!(
            all_words.map(length).sum().compute(&client).unwrap(),
            6,
            "{plan}"
        );

        let dir = tempfile::tempdir().unwrap();
        let files = all_words.to_textfiles(dir.path(), &client).unwrap();
        assert_eq!(files.len(), 3);
        let pattern = dir.path().join("*.part").display().to_string();
        let back = Bag::read_text(&pattern).unwrap().compute(&client).unwrap();
        assert_eq!(back, ["a", "b", "a", "c", "b", "b", ""], "{plan}");
    }
}

fn text_files_read_alike_plain_in_blocks_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.path().join("a.txt"), &text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(dir.path().join("b.gz"), gz.finish().unwrap()).unwrap();
    let expected: Vec<String> = text.lines().map(str::to_string).collect();
    for plan in PLANS {
        let client = start(plan);
        let plain = dir.path().join("a.txt").display().to_string();
        let blocks = Bag::read_text_blocks(&plain, 97).unwrap();
        assert!(blocks.npartitions() > 50);
        assert_eq!(blocks.compute(&client).unwrap(), expected, "{plan}");
        let gz = dir.path().join("b.gz").display().to_string();
        assert_eq!(
            Bag::read_text(&gz).unwrap().compute(&client).unwrap(),
            expected,
            "{plan}"
        );
    }
}

fn a_corrupt_file_among_good_ones_is_named_and_an_empty_file_counts_zero() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
        gz.write_all(b"x\ny\n").unwrap();
        std::fs::write(dir.path().join(format!("{i}.gz")), gz.finish().unwrap()).unwrap();
    }
    std::fs::write(dir.path().join("empty.txt"), b"").unwrap();
    let mut corrupt = std::fs::read(dir.path().join("0.gz")).unwrap();
    let middle = corrupt.len() / 2;
    corrupt[middle..].fill(0xab);
    let corrupt_path = dir.path().join("1-corrupt.gz");
    std::fs::write(&corrupt_path, corrupt).unwrap();
    for plan in PLANS {
        let client = start(plan);
        let empty = dir.path().join("empty.txt").display().to_string();
        assert_eq!(
            Bag::read_text(&empty)
                .unwrap()
                .count()
                .compute(&client)
                .unwrap(),
            0,
            "{plan}"
        );
        let all = dir.path().join("*").display().to_string();
        let error = Bag::read_text(&all)
            .unwrap()
            .count()
            .compute(&client)
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("cannot read {}", corrupt_path.display())),
            "{plan}: {message}"
        );
        // `take` reads only the partitions it needs: the corrupt file is the second.
        let first_two = Bag::read_text(&all).unwrap().take(2, &client).unwrap();
        assert_eq!(first_two, ["x", "y"], "{plan}");
        let good = dir.path().join("[02].gz").display().to_string();
        assert_eq!(
            Bag::read_text(&good)
                .unwrap()
                .count()
                .compute(&client)
                .unwrap(),
            4,
            "{plan}"
        );
    }
    let nothing = dir.path().join("*.zst").display().to_string();
    match Bag::read_text(&nothing) {
        Err(BagError::NoFiles { pattern }) => assert_eq!(pattern, nothing),
        other => panic!("expected NoFiles, got {:?}", other.err()),
    }
}

fn an_unregistered_function_is_a_clear_error() {
    fn not_a_task(x: u64) -> u64 {
        x
    }
    let client = start("sequential");
    let error = Bag::from_iter(0..3u64, 1)
        .map(not_a_task)
        .count()
        .compute(&client)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("not_a_task` is not a registered task"),
        "{error}"
    );
    assert!(error.contains("#[wherever::task]"), "{error}");
}

fn a_failing_element_function_fails_the_computation_with_its_message() {
    for plan in PLANS {
        let client = start(plan);
        let good = Bag::from_iter(["1", "2", "39"].map(str::to_string), 2);
        // A function returning `Result` could give either type: name the value's.
        assert_eq!(
            good.map::<u64, _>(parse_number)
                .sum()
                .compute(&client)
                .unwrap(),
            42,
            "{plan}"
        );
        let bad = Bag::from_iter(["1", "x", "3"].map(str::to_string), 2);
        let error = bad
            .map::<u64, _>(parse_number)
            .sum()
            .compute(&client)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a number: \"x\""), "{plan}: {error}");
        let as_results = good
            .map::<Result<u64, String>, _>(parse_number)
            .count()
            .compute(&client);
        let error = as_results.unwrap_err().to_string();
        assert!(
            error.contains("registered with other argument or result types"),
            "{error}"
        );
    }
}

fn wiki_filter_counts_agree_on_every_plan_and_with_zcat_awk() {
    let dir = tempfile::tempdir().unwrap();
    let glob = wiki_filter::generate(dir.path(), 4, 5_000, 7).unwrap();
    let mut found = Vec::new();
    for plan in PLANS {
        let client = start(plan);
        let args = wiki_filter::Args {
            plan: plan.to_string(),
            input: Some(glob.clone()),
            lang: "en".into(),
            regex: "Obama".into(),
            query: "both".into(),
            generate: None,
            files: 0,
            lines: 0,
            seed: 0,
        };
        let counts = wiki_filter::run(&args, &client).unwrap();
        found.push((plan, counts.lines.unwrap(), counts.matches.unwrap()));
    }
    let (_, lines, matches) = found[0];
    assert_eq!(lines, 20_000);
    assert!(matches > 0, "some titles contain Obama");
    for &(plan, l, m) in &found {
        assert_eq!((l, m), (lines, matches), "{plan} against sequential");
    }
    let have = |tool: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("zcat") && have("awk")) {
        eprintln!("skipping the zcat | awk comparison: zcat or awk is not installed");
        return;
    }
    let awk = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zcat {}/*.gz | LC_ALL=C awk '$3==\"en\" && $4 ~ /Obama/' | wc -l",
            dir.path().display()
        ))
        .output()
        .unwrap();
    let awk: u64 = String::from_utf8_lossy(&awk.stdout).trim().parse().unwrap();
    assert_eq!(matches, awk, "wiki_filter against zcat | awk");
}

fn a_bag_of_100000_partitions_builds_and_counts() {
    for plan in ["sequential", "threads:2"] {
        let client = start(plan);
        let bag = Bag::from_iter(0..100_000u64, 100_000);
        assert_eq!(bag.npartitions(), 100_000);
        assert_eq!(bag.count().compute(&client).unwrap(), 100_000, "{plan}");
    }
}

fn main() {
    wherever::init();
    let checks: [(&str, fn()); 7] = [
        (
            "a_bag_of_100000_partitions_builds_and_counts",
            a_bag_of_100000_partitions_builds_and_counts,
        ),
        (
            "a_failing_element_function_fails_the_computation_with_its_message",
            a_failing_element_function_fails_the_computation_with_its_message,
        ),
        (
            "bag_operations_give_the_same_results_on_every_plan",
            bag_operations_give_the_same_results_on_every_plan,
        ),
        (
            "text_files_read_alike_plain_in_blocks_and_compressed",
            text_files_read_alike_plain_in_blocks_and_compressed,
        ),
        (
            "a_corrupt_file_among_good_ones_is_named_and_an_empty_file_counts_zero",
            a_corrupt_file_among_good_ones_is_named_and_an_empty_file_counts_zero,
        ),
        (
            "an_unregistered_function_is_a_clear_error",
            an_unregistered_function_is_a_clear_error,
        ),
        (
            "wiki_filter_counts_agree_on_every_plan_and_with_zcat_awk",
            wiki_filter_counts_agree_on_every_plan_and_with_zcat_awk,
        ),
    ];
    harness::run_checks(&checks)
}
