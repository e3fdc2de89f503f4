//! The graph page's model: the tasks of the last small graph a `compute` submitted,
//! their dependencies and states, and a layered layout (a task's layer is one more
//! than its deepest dependency's; tasks are spread along their layer in the order they
//! were submitted).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::state::Observation;

/// How many tasks' latest states are remembered for a graph that is described after
/// some of its tasks already started or ended.
pub const RECENT_TASKS: usize = 10_000;

/// One task of a submitted graph, as the feed translates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    /// The task's id in the stream.
    pub task: u64,
    /// Its name.
    pub name: String,
    /// The tasks of the same graph it needs.
    pub deps: Vec<u64>,
}

/// Where a task of the graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Submitted, not started (or going to run again).
    Queued,
    /// Running on a worker.
    Running,
    /// Ended with a value.
    Done,
    /// Ended with a failure.
    Failed,
}

/// One task as `/api/graph` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// The task's id in the stream.
    pub task: u64,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: NodeState,
    /// The tasks it needs.
    pub deps: Vec<u64>,
    /// Its layer: 0 for a task that needs none of the graph's, else one more than
    /// its deepest dependency's.
    pub layer: usize,
    /// Its place along its layer, from 0.
    pub slot: usize,
}

/// The last graph and the recent states of tasks.
#[derive(Debug, Default)]
pub struct GraphState {
    nodes: Vec<NodeView>,
    index: HashMap<u64, usize>,
    recent: HashMap<u64, NodeState>,
    recent_order: VecDeque<u64>,
}

impl GraphState {
    /// Follows a task's state (every observation goes through here).
    pub fn follow(&mut self, observation: &Observation) {
        let (task, state) = match observation {
            Observation::Started { task, .. } => (*task, NodeState::Running),
            Observation::Ended { task, failed, .. } => (
                *task,
                if *failed {
                    NodeState::Failed
                } else {
                    NodeState::Done
                },
            ),
            Observation::Retried { task } => (*task, NodeState::Queued),
            Observation::Graph { tasks } => return self.set(tasks),
            _ => return,
        };
        if let Some(&at) = self.index.get(&task) {
            self.nodes[at].state = state;
        }
        if self.recent.insert(task, state).is_none() {
            self.recent_order.push_back(task);
            if self.recent_order.len() > RECENT_TASKS {
                if let Some(oldest) = self.recent_order.pop_front() {
                    self.recent.remove(&oldest);
                }
            }
        }
    }

    /// Replaces the graph with `tasks` (dependencies before dependents).
    fn set(&mut self, tasks: &[GraphNode]) {
        self.nodes.clear();
        self.index.clear();
        let mut per_layer: Vec<usize> = Vec::new();
        for node in tasks {
            let layer = node
                .deps
                .iter()
                .filter_map(|dep| self.index.get(dep).map(|&at| self.nodes[at].layer + 1))
                .max()
                .unwrap_or(0);
            if per_layer.len() <= layer {
                per_layer.resize(layer + 1, 0);
            }
            let slot = per_layer[layer];
            per_layer[layer] += 1;
            self.index.insert(node.task, self.nodes.len());
            self.nodes.push(NodeView {
                task: node.task,
                name: node.name.clone(),
                state: self
                    .recent
                    .get(&node.task)
                    .copied()
                    .unwrap_or(NodeState::Queued),
                deps: node.deps.clone(),
                layer,
                slot,
            });
        }
    }

    /// The graph's tasks, dependencies before dependents.
    pub fn nodes(&self) -> &[NodeView] {
        &self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn node(task: u64, deps: &[u64]) -> GraphNode {
        GraphNode {
            task,
            name: format!("t{task}"),
            deps: deps.to_vec(),
        }
    }

    #[test]
    fn a_diamond_is_laid_out_in_three_layers() {
        let mut graph = GraphState::default();
        let tasks = vec![node(1, &[]), node(2, &[1]), node(3, &[1]), node(4, &[2, 3])];
        graph.follow(&Observation::Graph { tasks });
        let places: Vec<(u64, usize, usize)> = graph
            .nodes()
            .iter()
            .map(|n| (n.task, n.layer, n.slot))
            .collect();
        assert_eq!(places, [(1, 0, 0), (2, 1, 0), (3, 1, 1), (4, 2, 0)]);
    }

    #[test]
    fn states_follow_the_tasks_also_those_seen_before_the_graph() {
        let mut graph = GraphState::default();
        graph.follow(&Observation::Ended {
            task: 1,
            worker: None,
            at: Duration::ZERO,
            ran_for: Duration::ZERO,
            failed: false,
        });
        graph.follow(&Observation::Graph {
            tasks: vec![node(1, &[]), node(2, &[1]), node(3, &[1])],
        });
        graph.follow(&Observation::Started {
            task: 2,
            worker: "w".into(),
            at: Duration::ZERO,
        });
        graph.follow(&Observation::Ended {
            task: 3,
            worker: None,
            at: Duration::ZERO,
            ran_for: Duration::ZERO,
            failed: true,
        });
        let states: Vec<NodeState> = graph.nodes().iter().map(|n| n.state).collect();
        assert_eq!(
            states,
            [NodeState::Done, NodeState::Running, NodeState::Failed]
        );
    }

    #[test]
    fn dependencies_outside_the_graph_are_ignored() {
        let mut graph = GraphState::default();
        graph.follow(&Observation::Graph {
            tasks: vec![node(5, &[99])],
        });
        assert_eq!(graph.nodes()[0].layer, 0);
    }

    #[test]
    fn recent_states_are_bounded() {
        let mut graph = GraphState::default();
        for task in 0..(RECENT_TASKS as u64 + 10) {
            graph.follow(&Observation::Retried { task });
        }
        assert_eq!(graph.recent.len(), RECENT_TASKS);
    }
}
