//! Starting the live dashboard (crate `wherever-dashboard`) beside a client, fed by
//! a subscription to the client's event stream.
//!
//! It is on by default for the multi-process plans that run their scheduler in this
//! process (`processes`, and the launchers), off by default for `sequential`,
//! `threads` and `tcp://` (whose dashboard is served by `wherever scheduler`).
//! [`DASHBOARD_VARIABLE`] overrides that: `on` or `off`. [`DASHBOARD_PORT_VARIABLE`]
//! moves the first port tried (default 8787; the next free one is taken when busy).

use wherever_dashboard::feed::Feed;
use wherever_dashboard::{Dashboard, DEFAULT_PORT};

use crate::plan::{Level, Plan};
use crate::Error;

/// `WHEREVER_DASHBOARD=on|off`: start the dashboard, or not, whatever the plan.
pub const DASHBOARD_VARIABLE: &str = "WHEREVER_DASHBOARD";

/// `WHEREVER_DASHBOARD_PORT=N`: the first port the dashboard tries (default 8787).
pub const DASHBOARD_PORT_VARIABLE: &str = "WHEREVER_DASHBOARD_PORT";

/// Events the dashboard's subscription holds unread before it drops the oldest.
pub(crate) const SUBSCRIPTION_CAPACITY: usize = 65_536;

/// A client's dashboard: the server and the thread feeding it. Dropping it stops both.
pub(crate) struct ClientDashboard {
    _feed: Feed,
    server: Dashboard,
}

impl ClientDashboard {
    /// The address it serves.
    pub(crate) fn url(&self) -> String {
        self.server.url()
    }
}

/// What the environment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DashboardChoice {
    /// `Some(true)`: on, `Some(false)`: off, `None`: the plan's default.
    pub(crate) wanted: Option<bool>,
    /// The first port to try.
    pub(crate) port: u16,
}

/// Reads [`DASHBOARD_VARIABLE`] and [`DASHBOARD_PORT_VARIABLE`] (as given by `var`).
pub(crate) fn choice_from(var: impl Fn(&str) -> Option<String>) -> Result<DashboardChoice, String> {
    let wanted = match var(DASHBOARD_VARIABLE) {
        None => None,
        Some(value) => match value.trim().to_ascii_lowercase().as_str() {
            "" => None,
            "on" | "1" | "true" | "yes" => Some(true),
            "off" | "0" | "false" | "no" => Some(false),
            _ => {
                return Err(format!(
                    "{DASHBOARD_VARIABLE} is `{value}`: it must be `on` or `off`"
                ))
            }
        },
    };
    let port = match var(DASHBOARD_PORT_VARIABLE) {
        None => DEFAULT_PORT,
        Some(value) => match value.trim().parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(format!(
                "{DASHBOARD_PORT_VARIABLE} is `{value}`: it must be a port number from 1 to 65535"
            ))
            }
        },
    };
    Ok(DashboardChoice { wanted, port })
}

/// Whether `plan` gets a dashboard when the environment does not say.
pub(crate) fn on_by_default(plan: &Plan) -> bool {
    match plan.first() {
        Level::Sequential | Level::Threads(_) | Level::Tcp { .. } => false,
        Level::Processes(..)
        | Level::Ssh(_)
        | Level::Slurm(_)
        | Level::SlurmJobs(_)
        | Level::Mpi(..) => true,
    }
}

/// Whether `plan` gets a dashboard under the environment's choice.
pub(crate) fn wanted(plan: &Plan) -> Result<Option<DashboardChoice>, Error> {
    let choice = choice_from(|name| std::env::var(name).ok()).map_err(|reason| Error::Start {
        plan: plan.to_string(),
        reason,
    })?;
    let on = choice.wanted.unwrap_or_else(|| on_by_default(plan));
    Ok(on.then_some(choice))
}

/// Starts `client`'s dashboard, fed by a subscription to its event stream.
pub(crate) fn attach(client: &crate::Client, choice: DashboardChoice) {
    let events = client.events_with_capacity(SUBSCRIPTION_CAPACITY);
    if let Some(dashboard) = start(choice, events) {
        let _ = client.shared.dashboard.set(dashboard);
    }
}

/// Starts a dashboard fed by `events` and prints its address once on stderr. A
/// dashboard that cannot start (no free port) is not an error of the run: it says
/// so on stderr and the run goes on without one.
pub(crate) fn start(
    choice: DashboardChoice,
    events: wherever_core::events::Subscription,
) -> Option<ClientDashboard> {
    let started = Dashboard::start(choice.port).and_then(|server| {
        let feed = Feed::start(events, server.sink())?;
        Ok(ClientDashboard {
            _feed: feed,
            server,
        })
    });
    match started {
        Ok(dashboard) => {
            dashboard.server.announce();
            Some(dashboard)
        }
        Err(error) => {
            eprintln!("wherever: no dashboard: {error}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(vars: &[(&str, &str)]) -> Result<DashboardChoice, String> {
        choice_from(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn unset_leaves_it_to_the_plan() {
        assert_eq!(
            choice(&[]),
            Ok(DashboardChoice {
                wanted: None,
                port: 8787
            })
        );
        assert!(on_by_default(&Plan::parse("processes:2").unwrap()));
        assert!(!on_by_default(&Plan::parse("threads:2").unwrap()));
        assert!(!on_by_default(&Plan::parse("sequential").unwrap()));
        assert!(!on_by_default(
            &Plan::parse("tcp://127.0.0.1:8786").unwrap()
        ));
    }

    #[test]
    fn on_and_off_in_several_spellings() {
        for on in ["on", "ON", "1", "true", " yes "] {
            assert_eq!(
                choice(&[(DASHBOARD_VARIABLE, on)]).unwrap().wanted,
                Some(true)
            );
        }
        for off in ["off", "Off", "0", "false", "no"] {
            assert_eq!(
                choice(&[(DASHBOARD_VARIABLE, off)]).unwrap().wanted,
                Some(false)
            );
        }
        assert_eq!(choice(&[(DASHBOARD_VARIABLE, "")]).unwrap().wanted, None);
    }

    #[test]
    fn malformed_values_are_refused_with_what_is_allowed() {
        let error = choice(&[(DASHBOARD_VARIABLE, "maybe")]).unwrap_err();
        assert_eq!(
            error,
            "WHEREVER_DASHBOARD is `maybe`: it must be `on` or `off`"
        );
        for port in ["0", "65536", "-1", "http", ""] {
            let error = choice(&[(DASHBOARD_PORT_VARIABLE, port)]).unwrap_err();
            assert!(
                error.contains("must be a port number from 1 to 65535"),
                "{error}"
            );
        }
        assert_eq!(
            choice(&[(DASHBOARD_PORT_VARIABLE, "9000")]).unwrap().port,
            9000
        );
    }
}
