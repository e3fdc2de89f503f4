//! The pages' static files, embedded in the binary: no CDN (cluster nodes have no
//! internet).

/// The one HTML page; its script shows the sections the path asks for.
pub(crate) const INDEX_HTML: &str = include_str!("assets/index.html");

/// The page's script: plain DOM and SVG, fed by `/api/stream`.
pub(crate) const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");

/// The page's style.
pub(crate) const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
