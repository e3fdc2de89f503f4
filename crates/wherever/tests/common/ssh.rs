//! Whether the CI's ssh hosts answer, for the tests that start workers over ssh.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::{Command, Stdio};

/// Whether `ssh host true` works without a password for every host; else says
/// the test `test` is SKIPPED and why.
pub fn hosts_up(test: &str, hosts: &[&str]) -> bool {
    for host in hosts {
        let reached = Command::new("ssh")
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                host,
                "true",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !reached {
            eprintln!(
                "SKIPPED {test}: `ssh {host} true` fails (start the hosts with \
                 CI_NETNS_SSHD=1 shared/ci/netns-hosts.sh up)"
            );
            return false;
        }
    }
    true
}
