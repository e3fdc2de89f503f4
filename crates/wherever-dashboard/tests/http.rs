//! The dashboard's HTTP surface: JSON endpoints, pages, the event stream, and the
//! requests it must refuse (a foreign `Host`, none, malformed ones).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wherever_dashboard::{Dashboard, Observation, DEFAULT_PORT};

fn fed_dashboard() -> Dashboard {
    let dashboard = Dashboard::start(DEFAULT_PORT).expect("the dashboard starts");
    dashboard.observe([
        Observation::WorkerJoined {
            worker: "worker-0".into(),
            host: "node1".into(),
            slots: 1,
            at: Duration::from_millis(1),
        },
        Observation::Submitted {
            task: 1,
            name: "square".into(),
            items: 1,
        },
        Observation::Submitted {
            task: 2,
            name: "square".into(),
            items: 1,
        },
        Observation::Started {
            task: 1,
            worker: "worker-0".into(),
            at: Duration::from_millis(2),
        },
        Observation::Ended {
            task: 1,
            worker: Some("worker-0".into()),
            at: Duration::from_millis(5),
            ran_for: Duration::from_millis(3),
            failed: false,
        },
    ]);
    dashboard
}

/// Sends `request` as it is and reads the whole response.
fn raw(dashboard: &Dashboard, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(dashboard.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn get_with_host(dashboard: &Dashboard, path: &str, host: &str) -> String {
    raw(
        dashboard,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn json(dashboard: &Dashboard, path: &str) -> serde_json::Value {
    ureq::get(&format!(
        "{}{}",
        dashboard.url(),
        path.trim_start_matches('/')
    ))
    .timeout(Duration::from_secs(60))
    .call()
    .unwrap()
    .into_json()
    .unwrap()
}

#[test]
fn it_serves_on_loopback_and_says_where() {
    let dashboard = fed_dashboard();
    assert!(dashboard.address().ip().is_loopback());
    assert_eq!(
        dashboard.url(),
        format!("http://127.0.0.1:{}/", dashboard.address().port())
    );
}

#[test]
fn a_busy_port_moves_it_to_the_next_free_one() {
    let first = Dashboard::start(DEFAULT_PORT).unwrap();
    let second = Dashboard::start(first.address().port()).unwrap();
    assert!(second.address().port() > first.address().port());
}

#[test]
fn progress_counts_per_task_name() {
    let dashboard = fed_dashboard();
    let progress = json(&dashboard, "/api/progress");
    let square = &progress["names"][0];
    assert_eq!(square["name"], "square");
    assert_eq!(square["queued"], 1);
    assert_eq!(square["running"], 0);
    assert_eq!(square["done"], 1);
    assert_eq!(square["failed"], 0);
    assert_eq!(progress["total"]["done"], 1);
    assert_eq!(progress["dropped_events"], 0);
}

#[test]
fn tasks_gives_the_window_and_resumes_from_next() {
    let dashboard = fed_dashboard();
    let tasks = json(&dashboard, "/api/tasks");
    let run = &tasks["runs"][0];
    assert_eq!(run["worker"], "worker-0");
    assert_eq!(run["name"], "square");
    assert_eq!(run["start_us"], 2_000);
    assert_eq!(run["end_us"], 5_000);
    assert_eq!(tasks["next"], 1);
    let later = json(&dashboard, "/api/tasks?from=1");
    assert_eq!(later["runs"].as_array().unwrap().len(), 0);
    assert_eq!(later["next"], 1);
}

#[test]
fn workers_show_host_slots_and_counts() {
    let dashboard = fed_dashboard();
    let workers = json(&dashboard, "/api/workers");
    let worker = &workers["workers"][0];
    assert_eq!(worker["worker"], "worker-0");
    assert_eq!(worker["host"], "node1");
    assert_eq!(worker["slots"], 1);
    assert_eq!(worker["finished"], 1);
    assert_eq!(worker["rss_bytes"], serde_json::Value::Null);
    assert_eq!(worker["left"], serde_json::Value::Null);
}

#[test]
fn workers_show_the_cpu_they_use_once_they_reported_twice() {
    let dashboard = fed_dashboard();
    let report = |cpu_ms: u64, at_ms: u64| Observation::WorkerMemory {
        worker: "worker-0".into(),
        rss_bytes: 1 << 20,
        cpu: Duration::from_millis(cpu_ms),
        at: Duration::from_millis(at_ms),
    };
    dashboard.observe([report(500, 1_000)]);
    let worker = json(&dashboard, "/api/workers")["workers"][0].clone();
    assert_eq!(worker["cpu_ms"], 500);
    assert_eq!(worker["cpu_percent"], serde_json::Value::Null);
    dashboard.observe([report(1_250, 2_000)]);
    let worker = json(&dashboard, "/api/workers")["workers"][0].clone();
    assert_eq!(worker["rss_bytes"], 1 << 20);
    assert_eq!(worker["cpu_ms"], 1_250);
    assert_eq!(worker["cpu_percent"], 75, "0.75 s of CPU in 1 s");
    let page = get_with_host(&dashboard, "/workers", &dashboard.address().to_string());
    assert!(page.contains("CPU"), "the workers page has a CPU column");
}

#[test]
fn the_graph_endpoint_gives_the_last_graph_laid_out_with_states() {
    let dashboard = fed_dashboard();
    assert_eq!(
        json(&dashboard, "/api/graph")["nodes"],
        serde_json::json!([])
    );
    let node = |task: u64, deps: &[u64]| wherever_dashboard::graph::GraphNode {
        task,
        name: format!("step{task}"),
        deps: deps.to_vec(),
    };
    dashboard.observe([
        Observation::Graph {
            tasks: vec![
                node(10, &[]),
                node(11, &[10]),
                node(12, &[10]),
                node(13, &[11, 12]),
            ],
        },
        Observation::Started {
            task: 10,
            worker: "worker-0".into(),
            at: Duration::from_millis(6),
        },
        Observation::Ended {
            task: 10,
            worker: Some("worker-0".into()),
            at: Duration::from_millis(7),
            ran_for: Duration::from_millis(1),
            failed: false,
        },
        Observation::Started {
            task: 11,
            worker: "worker-0".into(),
            at: Duration::from_millis(8),
        },
    ]);
    let graph = json(&dashboard, "/api/graph");
    let nodes = graph["nodes"].as_array().unwrap();
    let summary: Vec<(u64, &str, u64, u64)> = nodes
        .iter()
        .map(|n| {
            (
                n["task"].as_u64().unwrap(),
                n["state"].as_str().unwrap(),
                n["layer"].as_u64().unwrap(),
                n["slot"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (10, "done", 0, 0),
            (11, "running", 1, 0),
            (12, "queued", 1, 1),
            (13, "queued", 2, 0)
        ]
    );
    assert_eq!(nodes[3]["deps"], serde_json::json!([11, 12]));
    assert_eq!(nodes[3]["name"], "step13");
}

#[test]
fn pages_and_assets_are_served_from_the_binary() {
    let dashboard = fed_dashboard();
    for page in ["/", "/progress", "/task-stream", "/workers", "/graph"] {
        let response = get_with_host(&dashboard, page, &dashboard.address().to_string());
        assert!(response.starts_with("HTTP/1.1 200"), "{page}: {response}");
        assert!(response.contains("text/html"), "{page}");
        assert!(response.contains("/assets/dashboard.js"), "{page}");
        assert!(
            !response.contains("http://") && !response.contains("https://"),
            "no CDN"
        );
    }
    let script = get_with_host(
        &dashboard,
        "/assets/dashboard.js",
        &dashboard.address().to_string(),
    );
    assert!(script.contains("EventSource(\"/api/stream\")"));
    assert!(
        !script.contains("innerHTML"),
        "server text goes in as text only"
    );
}

#[test]
fn localhost_with_the_port_is_the_same_address() {
    let dashboard = fed_dashboard();
    let host = format!("localhost:{}", dashboard.address().port());
    let response = get_with_host(&dashboard, "/api/progress", &host);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn a_foreign_host_is_refused() {
    let dashboard = fed_dashboard();
    let port = dashboard.address().port();
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        format!("127.0.0.1.evil.example:{port}"),
    ] {
        for path in ["/api/progress", "/", "/api/stream", "/nowhere"] {
            let response = get_with_host(&dashboard, path, &host);
            assert!(
                response.starts_with("HTTP/1.1 403"),
                "{host} {path}: {response}"
            );
            assert!(
                response.contains("is not this dashboard's address"),
                "{response}"
            );
            assert!(!response.contains("square"), "nothing leaks: {response}");
        }
    }
}

#[test]
fn a_request_without_host_is_refused() {
    let dashboard = fed_dashboard();
    let response = raw(&dashboard, b"GET /api/progress HTTP/1.0\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.0 400") || response.starts_with("HTTP/1.1 400"),
        "{response}"
    );
    assert!(response.contains("no Host header"), "{response}");
}

#[test]
fn malformed_requests_get_400_and_the_server_goes_on() {
    let dashboard = fed_dashboard();
    for garbage in [
        &b"this is not http\r\n\r\n"[..],
        b"GET /api/progress HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /api/progress HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ] {
        let response = raw(&dashboard, garbage);
        assert!(
            response.is_empty()
                || response.starts_with("HTTP/1.1 400")
                || response.starts_with("HTTP/1.1 505"),
            "{garbage:?}: {response}"
        );
    }
    let host = dashboard.address().to_string();
    let response = get_with_host(&dashboard, "/api/tasks?from=minus-one", &host);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("`?from=N`"), "{response}");
    let response = get_with_host(&dashboard, "/api/nothing", &host);
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let response = raw(
        &dashboard,
        format!("POST /api/progress HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    // Still serving after all that.
    assert_eq!(json(&dashboard, "/api/progress")["total"]["done"], 1);
}

#[test]
fn the_event_stream_sends_updates_with_new_runs_only() {
    let dashboard = fed_dashboard();
    let mut stream = TcpStream::connect(dashboard.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let host = dashboard.address().to_string();
    stream
        .write_all(format!("GET /api/stream HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut next_update = || loop {
        let line = lines.next().expect("the stream goes on").unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str::<serde_json::Value>(data).unwrap();
        }
    };
    let first = next_update();
    assert_eq!(first["progress"]["total"]["done"], 1);
    assert_eq!(first["tasks"]["runs"].as_array().unwrap().len(), 1);
    assert_eq!(first["workers"]["workers"][0]["worker"], "worker-0");
    dashboard.observe([Observation::Ended {
        task: 2,
        worker: Some("worker-1".into()),
        at: Duration::from_millis(9),
        ran_for: Duration::from_millis(1),
        failed: true,
    }]);
    let second = next_update();
    assert_eq!(second["progress"]["total"]["failed"], 1);
    let runs = second["tasks"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "only the new run: {runs:?}");
    assert_eq!(runs[0]["worker"], "worker-1");
}

#[test]
fn dropping_the_dashboard_ends_open_event_streams() {
    let dashboard = fed_dashboard();
    let mut stream = TcpStream::connect(dashboard.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let host = dashboard.address().to_string();
    stream
        .write_all(format!("GET /api/stream HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert_ne!(
            reader.read_line(&mut line).unwrap(),
            0,
            "the stream started"
        );
    }
    drop(dashboard);
    // The connection ends (end of stream). Keep-alive comments come every 15 s, so
    // a stream that does not end is caught by the overall deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut chunk = [0u8; 4096];
    while reader.read(&mut chunk).expect("the stream reads") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream goes on after the dashboard was dropped"
        );
    }
}
