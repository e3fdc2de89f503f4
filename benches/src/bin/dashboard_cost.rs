//! The cost of the live dashboard: trivial-task throughput on `threads:2` and
//! `processes:2` with the dashboard on and a browser-like client reading its event
//! stream (`/api/stream`), against the dashboard off, in one run.
//!
//! ```text
//! cargo run --release -p wherever-benches --bin dashboard_cost 2>/dev/null
//! ```
//!
//! Prints a markdown table (median of 5 alternating runs of each, or of N with
//! `--repeats=N`) to stdout. With plan names as arguments (`dashboard_cost
//! threads:2`), measures only those.
//! Target: less than 5% slower with the dashboard on.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use wherever::prelude::*;
use wherever_benches::{items_per_second, load_average, markdown_table, Row};

#[wherever::task]
fn scramble(x: u64) -> u64 {
    x.wrapping_mul(2_654_435_761) ^ (x >> 7)
}

/// Starts `plan` with the dashboard on or off (and no progress bars).
fn start(plan: &str, dashboard: bool) -> Client {
    std::env::set_var("WHEREVER_PROGRESS", "0");
    std::env::set_var(
        wherever::DASHBOARD_VARIABLE,
        if dashboard { "on" } else { "off" },
    );
    let client = Plan::parse(plan)
        .expect("plan parses")
        .start()
        .expect("plan starts");
    assert_eq!(client.dashboard_link().is_some(), dashboard);
    client
}

/// A browser-like reader of the dashboard's event stream, on a thread of its own,
/// for as long as the process runs.
fn read_stream(link: &str) {
    let address = link
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&address).expect("the dashboard answers");
    write!(
        stream,
        "GET /api/stream HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request sent");
    std::thread::spawn(move || {
        let mut updates = 0u64;
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if line.starts_with("data: ") {
                updates += 1;
                // Parse as a page does.
                black_box(line.len());
            }
        }
        black_box(updates);
    });
}

/// How many alternating runs of each: `--repeats=N` among the arguments, else 5.
fn repeats() -> usize {
    std::env::args()
        .find_map(|arg| arg.strip_prefix("--repeats=")?.parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or(5)
}

/// The median time of each body over `repeats` runs taken in turn (as
/// [`wherever_benches::alternating_medians`], with a chosen number of runs).
fn alternating_medians_of<const K: usize>(
    repeats: usize,
    mut bodies: [&mut dyn FnMut(); K],
) -> [std::time::Duration; K] {
    let mut times = vec![[std::time::Duration::ZERO; K]; repeats];
    for run in times.iter_mut() {
        for (body, time) in bodies.iter_mut().zip(run.iter_mut()) {
            let started = std::time::Instant::now();
            body();
            *time = started.elapsed();
        }
    }
    std::array::from_fn(|k| {
        let mut of_k: Vec<_> = times.iter().map(|run| run[k]).collect();
        of_k.sort_unstable();
        of_k[repeats / 2]
    })
}

fn throughput(rows: &mut Vec<Row>, plan: &str, tasks: u64) {
    let off = start(plan, false);
    let on = start(plan, true);
    // The event stream alone, read in batches as the dashboard reads it: what
    // emitting costs, without the dashboard.
    let bare = start(plan, false);
    let events = bare.events();
    std::thread::spawn(move || loop {
        black_box(events.drain());
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
    read_stream(&on.dashboard_link().expect("on"));
    let run = |client: &Client| {
        let futures: Vec<_> = (0..tasks).map(|x| client.submit(scramble, x)).collect();
        black_box(client.gather(futures).expect("no task fails"));
    };
    // Warm both (workers up, first connections made).
    run(&off);
    run(&on);
    run(&bare);
    let [time_off, time_on, time_bare] = alternating_medians_of(
        repeats(),
        [&mut || run(&off), &mut || run(&on), &mut || run(&bare)],
    );
    let rate_bare = items_per_second(time_bare, tasks as usize);
    let bare_slower = (time_bare.as_secs_f64() / time_off.as_secs_f64() - 1.0) * 100.0;
    let rate_off = items_per_second(time_off, tasks as usize);
    let rate_on = items_per_second(time_on, tasks as usize);
    let slower = (time_on.as_secs_f64() / time_off.as_secs_f64() - 1.0) * 100.0;
    rows.push(Row::info(
        format!("{plan}, {tasks} trivial tasks, dashboard off"),
        format!("{rate_off:.0} tasks/s"),
    ));
    rows.push(Row::checked(
        format!("{plan}, {tasks} trivial tasks, dashboard on + a stream reader"),
        format!("{rate_on:.0} tasks/s ({slower:+.1}%)"),
        "< 5% slower",
        slower < 5.0,
    ));
    rows.push(Row::info(
        format!("{plan}, {tasks} trivial tasks, events subscribed, no dashboard"),
        format!("{rate_bare:.0} tasks/s ({bare_slower:+.1}%)"),
    ));
}

#[wherever::main]
fn main() {
    // `dashboard_cost threads:2` measures only that plan (for profiling).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wanted = |plan: &str| only.is_empty() || only.iter().any(|p| p == plan);
    let mut rows = Vec::new();
    if wanted("threads:2") {
        throughput(&mut rows, "threads:2", 100_000);
    }
    if wanted("processes:2") {
        throughput(&mut rows, "processes:2", 20_000);
    }
    println!("load average before: {}\n", load_average());
    println!("{}", markdown_table(&rows));
}
