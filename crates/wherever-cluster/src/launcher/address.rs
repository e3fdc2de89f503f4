//! Where the scheduler of a launched cluster listens, and the address its workers
//! are told to dial.

/// The environment variable naming the address (or the network interface, as
/// Dask's `--interface`) that remote workers reach the scheduler at.
pub const INTERFACE_VARIABLE: &str = "WHEREVER_INTERFACE";

/// The interface chosen in code or by a program's `--interface` flag
/// ([`choose_interface`]); it takes precedence over [`INTERFACE_VARIABLE`].
static CHOSEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Makes `chosen` (an IP address, or a network interface name such as `eth0`)
/// the address this process's launched clusters advertise to their workers, as
/// [`INTERFACE_VARIABLE`] does; an error naming the machine's interfaces when it
/// is neither.
pub fn choose_interface(chosen: &str) -> Result<(), String> {
    interface_address(chosen)?;
    *CHOSEN.lock().unwrap_or_else(|p| p.into_inner()) = Some(chosen.trim().to_string());
    Ok(())
}

/// Where a launcher's workers can reach the scheduler from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindScope {
    /// Only from this machine (`processes:N`): the scheduler listens on 127.0.0.1.
    Loopback,
    /// From other machines: the scheduler listens on every address (0.0.0.0) and
    /// advertises a routable one.
    Routable,
}

impl BindScope {
    /// The socket address to bind.
    pub fn bind_address(self) -> &'static str {
        match self {
            BindScope::Loopback => "127.0.0.1:0",
            BindScope::Routable => "0.0.0.0:0",
        }
    }

    /// The host this process itself dials the scheduler at.
    pub fn loopback_host(self) -> &'static str {
        "127.0.0.1"
    }
}

/// The host workers are told to dial: 127.0.0.1 for [`BindScope::Loopback`];
/// otherwise the interface given to [`choose_interface`], else
/// `WHEREVER_INTERFACE` (an address, or an interface name such as `eth0`), else the local address the kernel would use to reach `peer` (a
/// worker's host; no packet is sent), else this machine's first non-loopback
/// IPv4 address, else 127.0.0.1.
pub fn advertised_address(scope: BindScope, peer: Option<&str>) -> Result<String, String> {
    if scope == BindScope::Loopback {
        return Ok("127.0.0.1".to_string());
    }
    let chosen = CHOSEN.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(chosen) = chosen {
        return interface_address(&chosen);
    }
    if let Ok(chosen) = std::env::var(INTERFACE_VARIABLE) {
        return interface_address(&chosen).map_err(|e| format!("{INTERFACE_VARIABLE}={e}"));
    }
    if let Some(address) = peer.and_then(route_source) {
        return Ok(address);
    }
    Ok(route_source("192.0.2.1").unwrap_or_else(|| "127.0.0.1".to_string()))
}

/// `chosen` as an IP address, or the first IPv4 address (else IPv6) of the
/// network interface of that name; an error naming the machine's interfaces.
pub fn interface_address(chosen: &str) -> Result<String, String> {
    let chosen = chosen.trim();
    if chosen.parse::<std::net::IpAddr>().is_ok() {
        return Ok(chosen.to_string());
    }
    let interfaces =
        if_addrs::get_if_addrs().map_err(|e| format!("cannot list the network interfaces: {e}"))?;
    let mut names: Vec<String> = interfaces.iter().map(|i| i.name.clone()).collect();
    names.sort();
    names.dedup();
    interfaces
        .iter()
        .filter(|interface| interface.name == chosen)
        .map(|interface| interface.ip())
        .min_by_key(|ip| ip.is_ipv6())
        .map(|ip| ip.to_string())
        .ok_or_else(|| {
            format!(
                "`{chosen}` is neither an IP address nor a network interface of this \
                 machine (it has: {})",
                names.join(", ")
            )
        })
}

/// The local address the kernel routes from toward `peer` (a host name or
/// address), found by "connecting" a UDP socket, which sends nothing.
fn route_source(peer: &str) -> Option<String> {
    use std::net::ToSocketAddrs;
    let target = (peer, 9).to_socket_addrs().ok()?.find(|a| a.is_ipv4())?;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_plans_advertise_loopback() {
        assert_eq!(
            advertised_address(BindScope::Loopback, Some("10.0.0.1")).unwrap(),
            "127.0.0.1"
        );
    }

    #[test]
    fn a_loopback_peer_is_reached_from_a_loopback_address() {
        let address = route_source("127.0.0.2").unwrap();
        assert!(address.starts_with("127."), "{address}");
    }

    #[test]
    fn interfaces_are_named_or_given_as_addresses() {
        assert_eq!(interface_address("10.1.2.3").unwrap(), "10.1.2.3");
        assert_eq!(interface_address("lo").unwrap(), "127.0.0.1");
        for bad in ["no-such-nic0", "", "10.1.2", "eth0; rm -rf /"] {
            let error = interface_address(bad).unwrap_err();
            assert!(
                error.contains(&format!("`{bad}`")) && error.contains("lo"),
                "{error}"
            );
        }
    }
}
