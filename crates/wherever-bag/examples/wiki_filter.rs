//! The tutorial's Dask bag workload: count the lines of gzipped Wikipedia
//! page-count files, and those in one language whose title matches a pattern.
//!
//! ```text
//! cargo run --release -p wherever-bag --example wiki_filter -- \
//!     --generate /tmp/pc --files 16 --lines 400000 --seed 1 \
//!     --plan processes:2 --input '/tmp/pc/*.gz' --lang en --regex Obama
//! ```
//!
//! prints `lines N` and `matches M`. A line is `YYYYMMDD HHMMSS lang Title count
//! bytes`; it matches when it has at least 6 fields, field 3 is the language and
//! field 4 matches the regex (the tutorial's `find`). `--query count` or
//! `--query filter` computes only one of the two.

use clap::Parser;
use rand::{Rng, SeedableRng};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;
use wherever::prelude::*;
use wherever_bag::Bag;

/// What a line must match: its language (field 3) and a pattern for its title
/// (field 4). Sent once per partition; the pattern is compiled once per partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct Query {
    /// The language, e.g. `en`.
    pub lang: String,
    /// The title's pattern, e.g. `Obama`.
    pub regex: String,
    #[serde(skip)]
    compiled: OnceLock<Result<Regex, String>>,
}

impl Query {
    /// A query for `lang` and `regex`.
    pub fn new(lang: &str, regex: &str) -> Query {
        Query {
            lang: lang.to_string(),
            regex: regex.to_string(),
            compiled: OnceLock::new(),
        }
    }

    /// The compiled pattern.
    fn regex(&self) -> Result<&Regex, String> {
        self.compiled
            .get_or_init(|| Regex::new(&self.regex).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| format!("bad --regex `{}`: {e}", self.regex))
    }
}

/// The tutorial's `find`: at least 6 space-separated fields, the language in
/// field 3, the pattern in field 4 (checked to compile before the bag is built).
#[wherever::task]
pub fn find(line: &str, query: &Query) -> bool {
    let mut fields = line.split(' ');
    let (Some(_date), Some(_time), Some(lang), Some(title), Some(_count), Some(_bytes)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return false;
    };
    lang == query.lang && query.regex().is_ok_and(|regex| regex.is_match(title))
}

/// The command line.
#[derive(Parser, Debug)]
#[command(about = "Count page-count lines, and those of one language whose title matches")]
pub struct Args {
    /// The plan (sequential, threads:N, processes:N, ...).
    #[arg(long, env = "WHEREVER_PLAN", default_value = "threads")]
    pub plan: String,
    /// The files to read (a glob).
    #[arg(long)]
    pub input: Option<String>,
    /// The language (field 3).
    #[arg(long, default_value = "en")]
    pub lang: String,
    /// The pattern for the title (field 4).
    #[arg(long, default_value = "Obama")]
    pub regex: String,
    /// What to compute: both counts, only `count` (lines) or only `filter` (matches).
    #[arg(long, default_value = "both", value_parser = ["both", "count", "filter"])]
    pub query: String,
    /// First write synthetic page-count files to this directory.
    #[arg(long)]
    pub generate: Option<PathBuf>,
    /// How many files to generate.
    #[arg(long, default_value_t = 16)]
    pub files: usize,
    /// Lines per generated file.
    #[arg(long, default_value_t = 400_000)]
    pub lines: usize,
    /// The seed of the generated files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Words titles are made of (as the anchors' `gen_pagecounts.py`).
const WORDS: &str = "Main Page History List Of United States World War Film Album Song Music \
    Science Physics Math Art City River Mountain Island Church School University Football Club \
    Team Season Election President Party Book Novel Series Episode Game Station Railway Airport \
    Company Bank Museum Hospital Battle Empire King Queen Prince Saint John Paul George Maria \
    Anna Peter New York London Paris Berlin Tokyo Rome Madrid Lake Park Street Bridge Tower \
    Castle Village County District Province Region Language Culture Religion Theory Model Code \
    System Network Data Energy Water Fire Earth Star Moon Sun Planet Ocean Forest Desert Animal \
    Bird Fish Tree Flower Computer Software Internet Video Television Radio News Journal";

/// Languages and their shares in percent.
const LANGS: [(&str, u32); 8] = [
    ("en", 40),
    ("de", 15),
    ("fr", 12),
    ("ja", 10),
    ("es", 8),
    ("it", 6),
    ("pl", 5),
    ("nl", 4),
];

/// Writes `files` gzipped page-count files of `lines` lines to `dir` (0.5% of
/// titles contain `Obama`); returns their glob.
pub fn generate(dir: &Path, files: usize, lines: usize, seed: u64) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    for k in 0..files {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(k as u64);
        let path = dir.join(format!("pagecounts-20081113-{:02}0000.gz", k % 100));
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut out = flate2::write::GzEncoder::new(file, flate2::Compression::new(6));
        let mut line = String::new();
        for _ in 0..lines {
            line.clear();
            let mut parts: Vec<&str> = (0..rng.random_range(1..4))
                .map(|_| words[rng.random_range(0..words.len())])
                .collect();
            let number = rng.random_range(0..1000u32);
            if rng.random::<f64>() < 0.005 {
                let at = number as usize % (parts.len() + 1);
                parts.insert(at, "Obama");
            }
            let mut title = parts.join("_");
            if rng.random::<bool>() {
                title.push('_');
                title.push_str(&number.to_string());
            }
            let mut pick = rng.random_range(0..100u32);
            let lang = LANGS
                .iter()
                .find(|(_, share)| {
                    let hit = pick < *share;
                    pick = pick.saturating_sub(*share);
                    hit
                })
                .map_or("en", |(lang, _)| lang);
            let count: u64 = 1 + (-(rng.random::<f64>().max(1e-12)).ln() / 0.05) as u64;
            let bytes = count * rng.random_range(2000..40000u64);
            use std::fmt::Write as _;
            let _ = writeln!(
                line,
                "20081113 {:02}0000 {lang} {title} {count} {bytes}",
                k % 24
            );
            out.write_all(line.as_bytes())?;
        }
        out.finish()?.flush()?;
    }
    Ok(dir.join("*.gz").display().to_string())
}

/// The counts `run` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// All lines (when counted).
    pub lines: Option<u64>,
    /// Matching lines (when counted).
    pub matches: Option<u64>,
}

/// Generates files if asked, then counts on `client`.
pub fn run(args: &Args, client: &Client) -> Result<Counts, Box<dyn std::error::Error>> {
    let mut input = args.input.clone();
    if let Some(dir) = &args.generate {
        let glob = generate(dir, args.files, args.lines, args.seed)?;
        input.get_or_insert(glob);
    }
    let input = input.ok_or("give --input GLOB (or --generate DIR)")?;
    let query = Query::new(&args.lang, &args.regex);
    query.regex()?;
    let lines = Bag::read_text(&input)?;
    let mut counts = Counts {
        lines: None,
        matches: None,
    };
    if args.query != "filter" {
        counts.lines = Some(lines.count().compute(client)?);
    }
    if args.query != "count" {
        counts.matches = Some(lines.filter_with(find, &query).count().compute(client)?);
    }
    Ok(counts)
}

#[wherever::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = Plan::parse(&args.plan)?.start()?;
    let started = Instant::now();
    let counts = run(&args, &client)?;
    if let Some(lines) = counts.lines {
        println!("lines {lines}");
    }
    if let Some(matches) = counts.matches {
        println!("matches {matches}");
    }
    eprintln!(
        "wiki_filter: {} on {} in {:.3} s",
        args.query,
        client.plan(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
