//! The HTTP side: routes, the `Host` check, JSON endpoints and the server-sent
//! event stream. Handlers only read the shared [`Aggregate`].

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{json, Value};

use crate::assets;
use crate::state::Aggregate;

/// How often a live page is sent what changed.
pub const UPDATE_PERIOD: Duration = Duration::from_millis(250);

/// Task runs sent at most in one update (the page asks no more: it draws a window).
const RUNS_PER_UPDATE: usize = 2_000;

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) state: Mutex<Aggregate>,
    /// The `Host` header values accepted: the address served, by number and as
    /// `localhost`.
    pub(crate) hosts: Vec<String>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Aggregate> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The dashboard's routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/progress", get(page))
        .route("/task-stream", get(page))
        .route("/workers", get(page))
        .route("/graph", get(page))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/dashboard.css", get(style))
        .route("/api/progress", get(progress))
        .route("/api/tasks", get(tasks))
        .route("/api/workers", get(workers))
        .route("/api/graph", get(graph))
        .route("/api/stream", get(stream))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), check_host))
        .with_state(shared)
}

/// Refuses requests whose `Host` is not the address served (DNS rebinding: a page
/// of another site whose name resolves to 127.0.0.1 must not read the dashboard).
async fn check_host(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| value.to_str().unwrap_or("(not text)").to_string());
    match host {
        Some(host) if shared.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(&host)) => {
            next.run(request).await
        }
        Some(host) => (
            StatusCode::FORBIDDEN,
            format!(
                "refused: the Host header `{host}` is not this dashboard's address ({})\n",
                shared.hosts.join(" or ")
            ),
        )
            .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            "refused: the request has no Host header\n",
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no such page: see / for the dashboard and /api/progress, /api/tasks, /api/workers, /api/graph\n",
    )
        .into_response()
}

async fn page() -> Response {
    html(assets::INDEX_HTML)
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        assets::DASHBOARD_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        assets::DASHBOARD_CSS,
    )
        .into_response()
}

fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self'; script-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

/// The body of `/api/progress`.
pub(crate) fn progress_json(state: &Aggregate) -> Value {
    json!({
        "names": state.progress(),
        "total": state.totals(),
        "dropped_events": state.dropped_events(),
    })
}

/// The body of `/api/workers`.
pub(crate) fn workers_json(state: &Aggregate) -> Value {
    json!({ "workers": state.workers().collect::<Vec<_>>() })
}

/// The body of `/api/tasks` from run `from` on.
pub(crate) fn tasks_json(state: &Aggregate, from: u64, limit: usize) -> Value {
    let runs: Vec<_> = state.runs_since(from).take(limit).collect();
    json!({ "next": runs.last().map_or(from.max(state.next_seq()), |run| run.seq + 1), "runs": runs })
}

/// The body of `/api/graph`.
pub(crate) fn graph_json(state: &Aggregate) -> Value {
    json!({ "nodes": state.graph() })
}

async fn graph(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(graph_json(&shared.lock()))
}

async fn progress(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(progress_json(&shared.lock()))
}

async fn workers(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(workers_json(&shared.lock()))
}

/// `?from=SEQ`: the runs from `SEQ` on (all the window without it).
#[derive(serde::Deserialize)]
struct From {
    from: Option<u64>,
}

async fn tasks(
    State(shared): State<Arc<Shared>>,
    query: Result<axum::extract::Query<From>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(query) => Json(tasks_json(
            &shared.lock(),
            query.from.unwrap_or(0),
            usize::MAX,
        ))
        .into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "bad query: /api/tasks takes `?from=N` with N a whole number\n",
        )
            .into_response(),
    }
}

/// Server-sent events: an `update` event (progress, workers and the new task runs)
/// every [`UPDATE_PERIOD`] when something changed. Each connection keeps its own
/// position in the task stream, so a slow page skips to the window it can read.
async fn stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(UPDATE_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start = (shared, ticks, None::<u64>, 0u64);
    let updates = futures_util::stream::unfold(
        start,
        |(shared, mut ticks, mut seen, mut from)| async move {
            loop {
                ticks.tick().await;
                let update = {
                    let state = shared.lock();
                    if seen == Some(state.version()) {
                        continue;
                    }
                    seen = Some(state.version());
                    let tasks = tasks_json(&state, from, RUNS_PER_UPDATE);
                    from = tasks["next"].as_u64().unwrap_or(from);
                    json!({
                        "progress": progress_json(&state),
                        "workers": workers_json(&state),
                        "tasks": tasks,
                        "graph": graph_json(&state),
                    })
                };
                let event = Event::default().event("update").data(update.to_string());
                return Some((Ok(event), (shared, ticks, seen, from)));
            }
        },
    );
    Sse::new(updates).keep_alive(KeepAlive::default())
}
