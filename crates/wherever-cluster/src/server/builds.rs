//! One scheduler, more than one program: peers are grouped by build (executable
//! hash and task registry), each build with its own [`Reactor`], so a client's
//! tasks run only on workers of its own build and several programs share one
//! scheduler process.

use crate::protocol::BuildInfo;
use std::collections::HashMap;
use std::time::Instant;
use wherever_scheduler::reactor::{ClusterStatus, Comm, PeerId, Reactor, ReactorConfig};

/// What peers of one build share: the executable's hash and its registry's fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct BuildKey {
    hash: u64,
    registry: u64,
}

impl BuildKey {
    /// The key of `build`.
    pub(super) fn of(build: &BuildInfo) -> Self {
        BuildKey {
            hash: build.hash,
            registry: build.registry,
        }
    }
}

/// The reactors by build, and which build each connected peer belongs to.
pub(super) struct Builds {
    config: ReactorConfig,
    reactors: HashMap<BuildKey, Reactor>,
    peers: HashMap<PeerId, BuildKey>,
}

impl Builds {
    /// No builds yet; each new one gets a reactor with `config`.
    pub(super) fn new(config: ReactorConfig) -> Self {
        Builds {
            config,
            reactors: HashMap::new(),
            peers: HashMap::new(),
        }
    }

    /// `peer` of `build` joined: its build's reactor (new for a new build).
    pub(super) fn join(&mut self, peer: PeerId, build: BuildKey) -> &mut Reactor {
        self.peers.insert(peer, build);
        let config = &self.config;
        self.reactors
            .entry(build)
            .or_insert_with(|| Reactor::new(config.clone()))
    }

    /// The reactor of `peer`'s build, if it is connected.
    pub(super) fn of(&mut self, peer: PeerId) -> Option<&mut Reactor> {
        let build = self.peers.get(&peer)?;
        self.reactors.get_mut(build)
    }

    /// `peer` is gone (its reactor has been told): a build left without peers
    /// or task records is forgotten.
    pub(super) fn left(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.forget_idle_builds();
    }

    /// Ticks every build's reactor at `now`.
    pub(super) fn tick(&mut self, now: Instant, comm: &mut impl Comm) {
        for reactor in self.reactors.values_mut() {
            reactor.tick(now, comm);
        }
    }

    /// The workers and queues of every build, together.
    pub(super) fn cluster_status(&self) -> ClusterStatus {
        let mut all = ClusterStatus::default();
        for reactor in self.reactors.values() {
            let status = reactor.cluster_status();
            all.workers.extend(status.workers);
            all.ready += status.ready;
            all.processing += status.processing;
            all.limited_placements.extend(status.limited_placements);
        }
        all.workers.sort_by_key(|w| w.id);
        all
    }

    /// How many tasks went to workers with a task limit so far, in every build.
    pub(super) fn limited_placements_made(&self) -> u64 {
        self.reactors
            .values()
            .map(|reactor| reactor.limited_placements_made())
            .sum()
    }

    /// Retires the workers of `groups` in every build; how many are retiring.
    pub(super) fn retire_groups(&mut self, groups: &[String], comm: &mut impl Comm) -> usize {
        self.reactors
            .values_mut()
            .map(|reactor| reactor.retire_groups(groups, comm))
            .sum()
    }

    /// Tells every worker of every build to run under a memory limit of `limit`
    /// bytes; returns how many were told.
    pub(super) fn set_memory_limit(&mut self, limit: u64, comm: &mut impl Comm) -> usize {
        self.reactors
            .values_mut()
            .map(|reactor| reactor.set_memory_limit(limit, comm))
            .sum()
    }

    /// The groups whose retired workers have all left, in every build.
    pub(super) fn take_groups_left(&mut self) -> Vec<String> {
        self.reactors
            .values_mut()
            .flat_map(|reactor| reactor.take_groups_left())
            .collect()
    }

    /// Tells the workers of every build goodbye (the cluster ends normally).
    pub(super) fn goodbye(&mut self, comm: &mut impl Comm) {
        for reactor in self.reactors.values_mut() {
            reactor.goodbye(comm);
        }
    }

    /// Forgets the peers for which `open` is false (their reactor disconnected
    /// them) and the builds left idle.
    pub(super) fn forget_closed(&mut self, open: impl Fn(PeerId) -> bool) {
        self.peers.retain(|peer, _| open(*peer));
        self.forget_idle_builds();
    }

    /// How many builds have a scheduler.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.reactors.len()
    }

    fn forget_idle_builds(&mut self) {
        self.reactors
            .retain(|_, reactor| reactor.peer_count() > 0 || reactor.record_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Message, Role};
    use std::time::Duration;
    use wherever_scheduler::SchedulerConfig;

    struct Ignore;

    impl Comm for Ignore {
        fn send(&mut self, _peer: PeerId, _message: Message) {}
        fn disconnect(&mut self, _peer: PeerId, _reason: &str) {}
    }

    fn key(hash: u64) -> BuildKey {
        BuildKey { hash, registry: 7 }
    }

    #[test]
    fn each_build_has_its_own_reactor_forgotten_when_its_peers_left() {
        let mut builds = Builds::new(ReactorConfig {
            scheduler: SchedulerConfig::default(),
            heartbeat_timeout: Duration::from_secs(30),
            events: Default::default(),
        });
        let now = Instant::now();
        builds
            .join(1, key(1))
            .peer_joined(1, Role::Client { inner_plan: None }, now, &mut Ignore);
        builds
            .join(2, key(2))
            .peer_joined(2, Role::Client { inner_plan: None }, now, &mut Ignore);
        builds
            .join(3, key(1))
            .peer_joined(3, Role::Client { inner_plan: None }, now, &mut Ignore);
        assert_eq!(builds.len(), 2);
        assert_eq!(builds.of(1).map(|r| r.peer_count()), Some(2));
        builds.of(2).unwrap().peer_closed(2, &mut Ignore);
        builds.left(2);
        assert_eq!(builds.len(), 1);
        assert!(builds.of(2).is_none());
        builds.forget_closed(|peer| peer != 1);
        assert!(
            builds.of(1).is_none(),
            "a peer the reactor disconnected is forgotten"
        );
    }
}
