//! The wire protocol, re-exported from [`wherever_scheduler::protocol`] (where the
//! sans-IO server reactor needs it) so that cluster code keeps its paths.

pub use wherever_scheduler::protocol::*;
