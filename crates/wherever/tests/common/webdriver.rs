//! A headless Chromium driven through WebDriver (plain HTTP to `chromedriver`), for
//! the dashboard's browser test. Absent Chromium is a skip with a message, not a
//! failure (install: `apt-get install chromium chromium-driver`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long the browser may take to show a condition before the test is declared hung.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The flags Chromium runs under in tests and CI.
const CHROMIUM_FLAGS: [&str; 6] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
];

/// A chromedriver process and one session in it; dropping it ends both.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

fn find(candidates: &[&str]) -> Option<String> {
    candidates.iter().find_map(|name| {
        let found = Command::new("which")
            .arg(name)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
        (found.status.success() && !path.is_empty()).then_some(path)
    })
}

impl Browser {
    /// Starts chromedriver and a headless session, or prints why it skips and
    /// returns `None` when Chromium or chromedriver is not installed.
    pub fn start() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (
            find(&["chromedriver"]),
            find(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            eprintln!(
                "SKIPPED: Chromium or chromedriver is not installed \
                 (apt-get install chromium chromium-driver): no browser test"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
        };
        let deadline = Instant::now() + HANG_GUARD;
        while ureq::get(&format!("{}/status", browser.base))
            .timeout(Duration::from_secs(5))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "binary": chromium,
                "args": CHROMIUM_FLAGS,
            }}}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Some(browser)
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.base, path);
        let request = ureq::request(method, &url).timeout(Duration::from_secs(60));
        let response = match method {
            "GET" | "DELETE" => request.call(),
            _ => request.send_json(body),
        };
        match response {
            Ok(response) => response.into_json::<Value>().unwrap()["value"].take(),
            Err(ureq::Error::Status(code, response)) => {
                panic!(
                    "WebDriver {method} {path}: {code}: {}",
                    response.into_string().unwrap_or_default()
                )
            }
            Err(error) => panic!("WebDriver {method} {path}: {error}"),
        }
    }

    /// Navigates to `url`.
    pub fn open(&self, url: &str) {
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            json!({ "url": url }),
        );
    }

    /// Runs `script` in the page and returns its result as text.
    pub fn run(&self, script: &str) -> String {
        let value = self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            json!({ "script": script, "args": [] }),
        );
        match value {
            Value::String(text) => text,
            other => other.to_string(),
        }
    }

    /// Runs `script` until `done` holds of its result.
    pub fn wait_for(&self, what: &str, script: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let value = self.run(script);
            if done(&value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the browser never showed {what}: last `{value}`"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session))
                .timeout(Duration::from_secs(30))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
