//! Lazy task graphs (Dask's `delayed`): [`delayed`] builds a node without running
//! anything; [`compute`] runs the graph behind one or many outputs on any client,
//! computing shared parts once; [`persist`] keeps the results on the workers and
//! returns futures. Before anything is submitted the graph is optimised: only what
//! the outputs need is kept (culling), and linear chains (a node whose only input is
//! a node that nothing else uses) are fused into one task, so their intermediate
//! results never leave the worker. [`optimize`] shows the result. Tasks are
//! submitted depth first (a simple `dask.order`: from the outputs, inputs in
//! order), and on the local plans that order is also their rank: `threads:N` runs
//! the best-ranked ready graph task first, so a consumer runs as soon as its last
//! input is there, before more leaves start. A node's future is dropped once the
//! last task reading it is submitted, so its value is freed when they ran. Random
//! streams do not depend on fusion: every node keeps its own position.

use crate::arguments::{Args, DepRef, IntoArgs, Parts, PartsBox};
use crate::client::Client;
use crate::future::{ErasedSlot, Future};
use crate::graph_outputs::ComputeOutputs;
use crate::local::GraphRank;
use crate::node_index::{NodeIndex, NO_NUMBER};
use crate::node_keys::{numbered_key, short_name, KeyMap};
use crate::node_positions::NodePositions;
use crate::submission::{ChainPart, LocalRun};
use crate::{IntoTask, Resolved, StreamKey, TaskContext, TaskError, TaskFailure, Value};
use std::any::Any;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wherever_core::events::{Event, GraphTask, TaskKey, MAX_GRAPH_TASKS};
use wherever_core::scope::in_task;

/// A value not computed yet: the output of a graph node. Pass `&delayed` as an
/// argument of other delayed calls (or of `submit`) to build on it.
pub struct Delayed<T> {
    node: NodeRef,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Delayed<T> {
    fn clone(&self) -> Self {
        Delayed {
            node: self.node.clone(),
            _value: PhantomData,
        }
    }
}

/// A shared handle on a graph node (opaque).
#[doc(hidden)]
#[derive(Clone)]
pub struct NodeRef(Arc<Node>);

/// A node's submission: its slot for dependents and its typed future.
struct Submitted {
    slot: Arc<dyn ErasedSlot>,
    future: Option<Box<dyn Any + Send>>,
}

type SubmitNode = Box<dyn Fn(&Client, Parts, u64) -> Submitted + Send + Sync>;
type SubmitChain = Box<dyn Fn(&Client, ChainPart, Vec<ChainPart>) -> Submitted + Send + Sync>;

pub(crate) struct Node {
    /// Shared, so the maps of a computation hold it without a copy.
    key: Arc<str>,
    /// The node's number, unique in this process ([`NO_NUMBER`] for a pure node,
    /// which is known by its key): what a graph's layout finds it by.
    number: u64,
    parts: Parts,
    /// The task, shared by every node of one layer ([`delayed_layer`]).
    task: Arc<NodeTask>,
    record: Mutex<Record>,
    /// The position the node got under each client key it was computed under: a
    /// recomputation under the same key reuses it, so it draws the same numbers.
    positions: Mutex<NodePositions>,
}

/// What the nodes calling one task share: its name, and how to submit and run it.
/// A node made by [`delayed`] has one of its own; the nodes of a layer
/// ([`delayed_layer`], a collection's partitions) share one, as the layers of
/// Dask's high-level graphs do, so a node is its key, its arguments and its state.
pub(crate) struct NodeTask {
    pub(crate) name: &'static str,
    registered: bool,
    /// Submits a node alone.
    submit: SubmitNode,
    /// Submits a chain ending with a node of this task (typed by its result).
    submit_chain: SubmitChain,
    /// Runs the task on encoded arguments (a link of a chain, locally).
    run: LocalRun,
}

/// What happened to a node in its last computation, for [`to_dot`].
#[derive(Debug, Clone, Default)]
struct Record {
    state: Option<&'static str>,
    duration: Option<Duration>,
}

impl Parts {
    fn duplicate(&self) -> Parts {
        Parts {
            bytes: self.bytes.clone(),
            holes: self.holes.clone(),
            error: self.error.clone(),
        }
    }
}

/// A graph node calling `task` on `args` (values, or references to other delayed
/// values, futures or scattered values). Nothing runs until [`compute`] or
/// [`persist`]. Every call makes a new node with a unique key, so a random task
/// delayed twice is computed twice.
pub fn delayed<A: Value, R: Value, M: 'static>(
    task: impl IntoTask<A, R, M>,
    args: impl IntoArgs<A>,
) -> Delayed<R> {
    make_node(task, args, false, None)
}

/// Like [`delayed`], with the node's key made from `label` rather than the task's
/// name: a collection's node names its operation and the user's task
/// (`bag-map[is_obama]-17`) while it runs the collection's built-in task.
pub fn delayed_labelled<A: Value, R: Value, M: 'static>(
    label: &str,
    task: impl IntoTask<A, R, M>,
    args: impl IntoArgs<A>,
) -> Delayed<R> {
    make_node(task, args, false, Some(label))
}

/// Many nodes calling `task`, one per element of `args`, with keys made from
/// `label` (as [`delayed_labelled`]). The nodes share one description of the task
/// (its name and how to submit and run it), so each holds only its key, its
/// arguments and its state: a collection's layer of 100,000 partitions is
/// 100,000 small nodes.
pub fn delayed_layer<A: Value, R: Value, M: 'static, I>(
    label: &str,
    task: impl IntoTask<A, R, M>,
    args: I,
) -> Vec<Delayed<R>>
where
    I: IntoIterator,
    I::Item: IntoArgs<A>,
{
    let resolved = Resolved::new(task);
    let name = resolved.task_name();
    let shared = node_task(resolved);
    args.into_iter()
        .map(|args| new_node(shared.clone(), name, encode_args(args), false, Some(label)))
        .collect()
}

/// Like [`delayed`], for a pure function (same arguments, same result): calls with
/// equal arguments share one key and are computed once per computation. Never mark
/// a function that draws random numbers as pure.
pub fn delayed_pure<A: Value, R: Value, M: 'static>(
    task: impl IntoTask<A, R, M>,
    args: impl IntoArgs<A>,
) -> Delayed<R> {
    make_node(task, args, true, None)
}

fn make_node<A: Value, R: Value, M: 'static>(
    task: impl IntoTask<A, R, M>,
    args: impl IntoArgs<A>,
    pure: bool,
    label: Option<&str>,
) -> Delayed<R> {
    let shared = shared_node_task(task);
    let name = shared.name;
    new_node(shared, name, encode_args(args), pure, label)
}

/// The description of nodes calling `task`: one per call, except for a task that
/// is a plain function (a value of size zero, so every value of its type is the
/// same function), whose description this thread made once and shares (making one
/// took four allocations and a registry lookup per node).
fn shared_node_task<A: Value, R: Value, M: 'static, T: IntoTask<A, R, M>>(
    task: T,
) -> Arc<NodeTask> {
    if std::mem::size_of::<T>() != 0 {
        return node_task(Resolved::new(task));
    }
    crate::node_tasks::shared(std::any::TypeId::of::<(T, A, R, M)>(), || {
        node_task(Resolved::new(task))
    })
}

/// The arguments of a node, encoded (an encoding error is kept, and reported when
/// the node is computed).
fn encode_args<A: Value>(args: impl IntoArgs<A>) -> Parts {
    match args.into_args() {
        Args::Plain(args) => match wherever_core::codec::encode(&args) {
            Ok(bytes) => Parts {
                bytes,
                ..Parts::default()
            },
            Err(error) => Parts {
                error: Some(error.to_string()),
                ..Parts::default()
            },
        },
        Args::Parts(PartsBox(parts)) => parts,
    }
}

/// A node of `task` (named `name`) on `parts`, keyed by `label` or the task's name.
fn new_node<R>(
    task: Arc<NodeTask>,
    name: &str,
    parts: Parts,
    pure: bool,
    label: Option<&str>,
) -> Delayed<R> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let short = label.unwrap_or_else(|| short_name(name));
    let (key, number) = if pure {
        let key = Arc::from(format!("{short}-{:016x}", content_hash(name, &parts)));
        (key, NO_NUMBER)
    } else {
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        (numbered_key(short, number), number)
    };
    Delayed {
        node: NodeRef(Arc::new(Node {
            key,
            number,
            parts,
            task,
            record: Mutex::default(),
            positions: Mutex::default(),
        })),
        _value: PhantomData,
    }
}

/// The shared description of nodes calling `task`.
fn node_task<A: Value, R: Value, T: IntoTask<A, R>>(task: T) -> Arc<NodeTask> {
    let name = task.task_name();
    let registered = task.registered().is_some();
    let task = Arc::new(task);
    let for_submit = task.clone();
    let submit: SubmitNode = Box::new(move |client, parts, position| {
        let future: Future<R> = client.submit_parts(for_submit.clone(), parts, position);
        Submitted {
            slot: future.erased(),
            future: Some(Box::new(future)),
        }
    });
    let submit_chain: SubmitChain = Box::new(|client, head, links| {
        let future: Future<R> = client.submit_chain(head, links);
        Submitted {
            slot: future.erased(),
            future: Some(Box::new(future)),
        }
    });
    let run: LocalRun = Arc::new(move |bytes, key, seeded, position| {
        let args: A = wherever_core::codec::decode(bytes)
            .map_err(|e| TaskFailure::from_error(format!("cannot decode the arguments: {e}")))?;
        let mut ctx = TaskContext::new(key, seeded, position);
        let result = in_task(key, seeded, position, || task.run(args, &mut ctx))?;
        wherever_core::codec::encode(&result)
            .map_err(|e| TaskFailure::from_error(format!("cannot encode the result: {e}")))
    });
    Arc::new(NodeTask {
        name,
        registered,
        submit,
        submit_chain,
        run,
    })
}

/// FNV-1a over the task name, the encoded arguments and the dependencies' keys.
fn content_hash(name: &str, parts: &Parts) -> u64 {
    let mut digest = wherever_core::Fnv1a::default();
    let mut eat = |bytes: &[u8]| digest.eat(bytes);
    eat(name.as_bytes());
    eat(&parts.bytes);
    for (offset, dep) in &parts.holes {
        eat(&offset.to_le_bytes());
        match dep {
            DepRef::Node(node) => eat(node.0.key.as_bytes()),
            DepRef::Future(future) => {
                eat(&(Arc::as_ptr(future) as *const () as usize).to_le_bytes())
            }
            DepRef::Shared(shared) => eat(&(Arc::as_ptr(shared) as usize).to_le_bytes()),
        }
    }
    digest.finish()
}

impl<T> Delayed<T> {
    pub(crate) fn node(&self) -> NodeRef {
        self.node.clone()
    }

    /// The node's key: the task's name and a number unique to this call (or, for
    /// [`delayed_pure`], a digest of its arguments).
    pub fn key(&self) -> &str {
        &self.node.0.key
    }

    /// The graph behind this value in Graphviz DOT (see [`to_dot`]).
    pub fn to_dot(&self) -> String {
        to_dot(&[self])
    }
}

impl<T: Value> Delayed<T> {
    /// Computes this value on `client` (see [`compute`]).
    pub fn compute(&self, client: &Client) -> Result<T, TaskError> {
        compute(client, self)
    }
}

/// Computes `outputs` on `client`: submits every node they need exactly once
/// (shared subgraphs included), then waits for the outputs (Dask's
/// `dask.compute(a, b)`). `outputs` is one `&Delayed<T>` (giving `T`), a slice,
/// array or `Vec` of them (giving `Vec<T>`), or a tuple of up to 8 delayed values of
/// different types (giving a tuple of their values). The first failed output's
/// error (in the order given) is returned; independent branches still run to the
/// end.
///
/// Random streams: a node draws from the stream of its position under the client's
/// key, assigned in depth-first order the first time it is computed under that
/// key and kept in the node, so computing the same graph again gives the same
/// values. Rebuilding it (new `delayed` calls) and computing it under a fresh
/// [`Client::seeded`] client with the same label gives the same values too, since
/// the positions then start at 0 again.
///
/// ```
/// use wherever::prelude::*;
///
/// #[wherever::task]
/// fn load(n: u64) -> Vec<u64> {
///     (0..n).collect()
/// }
///
/// #[wherever::task]
/// fn total(values: Vec<u64>) -> u64 {
///     values.iter().sum()
/// }
///
/// #[wherever::task]
/// fn describe(values: Vec<u64>) -> String {
///     format!("{} values", values.len())
/// }
///
/// let client = Plan::parse("threads:2")?.start()?;
/// let data = delayed(load, 10); // shared: loaded once
/// let sum = delayed(total, &data);
/// let text = delayed(describe, &data);
/// let (sum, text) = compute(&client, (&sum, &text))?;
/// assert_eq!((sum, text.as_str()), (45, "10 values"));
/// # Ok::<(), wherever::Error>(())
/// ```
pub fn compute<O: ComputeOutputs>(client: &Client, outputs: O) -> Result<O::Values, TaskError> {
    let progress = client.track_submitted("compute", 0);
    let values = O::values(persist(client, outputs));
    if let Some(progress) = progress.filter(|_| values.is_ok()) {
        progress.all_done();
    }
    values
}

/// Submits the graph behind `outputs` (as for [`compute`]) and returns their
/// futures without waiting: results stay on the workers until the futures are
/// asked or dropped.
pub fn persist<O: ComputeOutputs>(client: &Client, outputs: O) -> O::Futures {
    let submitted = submit_graph(client, &outputs.nodes());
    outputs.futures(&SubmittedGraph(submitted))
}

/// The futures of a submitted graph, by node key (what [`ComputeOutputs`] reads).
#[doc(hidden)]
pub struct SubmittedGraph(KeyMap<Arc<str>, Submitted>);

impl SubmittedGraph {
    /// The future of the output `output`.
    pub(crate) fn future<T: Value>(&self, output: &Delayed<T>) -> Future<T> {
        self.0
            .get(&output.node.0.key)
            .and_then(|submitted| submitted.future.as_ref())
            .and_then(|any| any.downcast_ref::<Future<T>>())
            .cloned()
            .expect("outputs are never fused away, and a node's future has its type")
    }
}

/// Submits the graph nodes among `parts`' dependencies and points the holes at
/// their futures (for `client.submit(f, (&delayed,))`).
pub(crate) fn submit_nodes_in(client: &Client, parts: Parts) -> Parts {
    let roots: Vec<NodeRef> = parts
        .holes
        .iter()
        .filter_map(|(_, dep)| match dep {
            DepRef::Node(node) => Some(node.clone()),
            _ => None,
        })
        .collect();
    if roots.is_empty() {
        return parts;
    }
    let submitted = submit_graph(client, &roots);
    let holes = parts
        .holes
        .into_iter()
        .map(|(offset, dep)| match dep {
            DepRef::Node(node) => (offset, DepRef::Future(submitted[&node.0.key].slot.clone())),
            other => (offset, other),
        })
        .collect();
    Parts { holes, ..parts }
}

/// The optimised graph behind some outputs: the tasks that will be submitted,
/// each a chain of one or more fused nodes, in submission order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptimizedGraph {
    /// The tasks, dependencies before dependents.
    pub tasks: Vec<FusedTask>,
}

/// One task of an [`OptimizedGraph`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FusedTask {
    /// The keys of the nodes it runs, first to last (one key: not fused).
    pub keys: Vec<String>,
    /// The tasks it needs, by the key of their last node.
    pub deps: Vec<String>,
}

impl OptimizedGraph {
    /// The optimised graph in Graphviz DOT: one box per task, listing its nodes.
    pub fn to_dot(&self) -> String {
        let mut dot = String::from(
            "digraph optimized {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for task in &self.tasks {
            let last = task.keys.last().expect("a task runs at least one node");
            let _ = writeln!(dot, "  \"{last}\" [label=\"{}\"];", task.keys.join("\\n"));
            for dep in &task.deps {
                let _ = writeln!(dot, "  \"{dep}\" -> \"{last}\";");
            }
        }
        dot.push_str("}\n");
        dot
    }
}

/// Culls and fuses the graph behind `outputs` without running anything: what
/// [`compute`] and [`persist`] will submit.
pub fn optimize<G: GraphOutput>(outputs: &[&G]) -> OptimizedGraph {
    let roots: Vec<NodeRef> = outputs.iter().map(|o| o.graph_node()).collect();
    let layout = Layout::of(&roots);
    let tasks = layout
        .chains
        .iter()
        .map(|chain| {
            let head = &layout.order[chain[0]];
            FusedTask {
                keys: chain
                    .iter()
                    .map(|&i| layout.order[i].0.key.to_string())
                    .collect(),
                deps: head
                    .0
                    .parts
                    .holes
                    .iter()
                    .filter_map(|(_, dep)| match dep {
                        DepRef::Node(dep) => Some(dep.0.key.to_string()),
                        _ => None,
                    })
                    .collect(),
            }
        })
        .collect();
    OptimizedGraph { tasks }
}

/// The nodes to submit, depth first (dependencies first), grouped into chains.
struct Layout {
    order: Vec<NodeRef>,
    /// Indices into `order`; each chain head first; chains in submission order.
    chains: Vec<Vec<usize>>,
    /// The positions in `order` of each node's graph inputs, in the order of its
    /// holes: node `i`'s are `inputs[input_start[i]..input_start[i + 1]]`.
    inputs: Vec<usize>,
    input_start: Vec<usize>,
    /// Whether each node is one of the outputs.
    is_output: Vec<bool>,
}

impl NodeRef {
    /// This node's position in `index`, if it has one.
    fn position_in(&self, index: &NodeIndex) -> Option<usize> {
        index.get(self.0.number, &self.0.key)
    }
}

impl Layout {
    fn of(roots: &[NodeRef]) -> Layout {
        // Depth-first post-order, iteratively (long chains do not exhaust the stack).
        let mut order: Vec<NodeRef> = Vec::new();
        let mut index = NodeIndex::default();
        let mut stack: Vec<(NodeRef, bool)> =
            roots.iter().rev().map(|r| (r.clone(), false)).collect();
        while let Some((node, deps_done)) = stack.pop() {
            if node.position_in(&index).is_some() {
                continue;
            }
            if deps_done {
                index.insert(node.0.number, &node.0.key, order.len());
                order.push(node);
                continue;
            }
            stack.push((node.clone(), true));
            for (_, dep) in node.0.parts.holes.iter().rev() {
                if let DepRef::Node(dep) = dep {
                    if dep.position_in(&index).is_none() {
                        stack.push((dep.clone(), false));
                    }
                }
            }
        }
        // Each node's graph inputs, and how many holes of nodes in the graph each
        // node fills.
        let mut uses = vec![0usize; order.len()];
        let (mut inputs, mut input_start) = (Vec::new(), Vec::with_capacity(order.len() + 1));
        for node in &order {
            input_start.push(inputs.len());
            for dep in graph_inputs(node) {
                let i = dep
                    .position_in(&index)
                    .expect("a node's inputs are laid out before it");
                uses[i] += 1;
                inputs.push(i);
            }
        }
        input_start.push(inputs.len());
        let mut is_output = vec![false; order.len()];
        for root in roots {
            if let Some(i) = root.position_in(&index) {
                is_output[i] = true;
            }
        }
        let layout_inputs = |i: usize| &inputs[input_start[i]..input_start[i + 1]];
        // A node's only input, when that input is a node of this graph.
        let only_input = |i: usize| -> Option<usize> {
            match (order[i].0.parts.holes.as_slice(), layout_inputs(i)) {
                ([_], [input]) => Some(*input),
                _ => None,
            }
        };
        // Fused into its dependent: used once, by a node whose only input it is.
        let mut fused = vec![false; order.len()];
        for node in 0..order.len() {
            if let Some(i) = only_input(node) {
                fused[i] = uses[i] == 1 && !is_output[i];
            }
        }
        let mut chains = Vec::new();
        for last in 0..order.len() {
            if fused[last] {
                continue;
            }
            let mut chain = vec![last];
            let mut current = last;
            while let Some(i) = only_input(current).filter(|&i| fused[i]) {
                chain.push(i);
                current = i;
            }
            chain.reverse();
            chains.push(chain);
        }
        chains.sort_by_key(|chain| *chain.last().expect("non-empty"));
        Layout {
            order,
            chains,
            inputs,
            input_start,
            is_output,
        }
    }

    /// The positions of node `i`'s graph inputs, in the order of its holes.
    fn inputs_of(&self, i: usize) -> &[usize] {
        &self.inputs[self.input_start[i]..self.input_start[i + 1]]
    }
}
/// Submits everything `roots` need, chain by chain, and returns the outputs'
/// submissions by key. Every node gets the position it would have unfused (its
/// depth-first rank), so random streams do not depend on fusion.
fn submit_graph(client: &Client, roots: &[NodeRef]) -> KeyMap<Arc<str>, Submitted> {
    let layout = Layout::of(roots);
    let all_positions = positions_under(client, &layout.order);
    // How many chains still to submit read each node's result: once none does, its
    // future is dropped here, so its value is freed as soon as its consumers ran.
    let mut readers = vec![0usize; layout.order.len()];
    for chain in &layout.chains {
        for &input in layout.inputs_of(chain[0]) {
            readers[input] += 1;
        }
    }
    // The submission of each chain, at the position of its last node.
    let mut submitted: Vec<Option<Submitted>> = Vec::with_capacity(layout.order.len());
    submitted.resize_with(layout.order.len(), || None);
    let graph = next_graph_number();
    let mut described = (client.event_bus().is_observed()
        && layout.chains.len() <= MAX_GRAPH_TASKS)
        .then(GraphDescription::default);
    for chain in &layout.chains {
        if described.is_some() {
            crate::task_events::take_last_task_key();
        }
        let started = Instant::now();
        let last = *chain.last().expect("non-empty");
        let rank = GraphRank {
            graph,
            index: last as u64,
        };
        let wanted = layout.is_output[last];
        let done = crate::local::with_graph_rank(rank, || {
            crate::submission::with_result_wanted(wanted, || {
                submit_chain_nodes(client, &layout, chain, &all_positions, &submitted)
            })
        });
        for &input in layout.inputs_of(chain[0]) {
            readers[input] -= 1;
            if readers[input] == 0 && !layout.is_output[input] {
                submitted[input] = None;
            }
        }
        for &i in chain {
            *layout.order[i]
                .0
                .record
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Record {
                state: Some("processing"),
                duration: None,
            };
        }
        if let Some(described) = &mut described {
            described.add(&layout.order[chain[0]], &layout.order[last]);
        }
        let records: Vec<NodeRef> = chain.iter().map(|&i| layout.order[i].clone()).collect();
        done.slot.when_resolved_encoded(Box::new(move |outcome| {
            let state = if outcome.is_ok() { "memory" } else { "erred" };
            let fused = records.len() > 1;
            for node in &records {
                *node.0.record.lock().unwrap_or_else(|p| p.into_inner()) = Record {
                    state: Some(if fused && outcome.is_ok() {
                        "memory (fused)"
                    } else {
                        state
                    }),
                    duration: Some(started.elapsed()),
                };
            }
        }));
        submitted[last] = Some(done);
    }
    if let Some(described) = described.filter(|d| !d.tasks.is_empty()) {
        client.event_bus().emit(Event::GraphSubmitted {
            tasks: described.tasks,
        });
    }
    let mut outputs = KeyMap::default();
    for (i, node) in layout.order.iter().enumerate() {
        if let Some(done) = submitted[i].take().filter(|_| layout.is_output[i]) {
            outputs.insert(node.0.key.clone(), done);
        }
    }
    outputs
}

/// Submits one chain (or a lone node) of `layout`, its inputs taken from `submitted`.
fn submit_chain_nodes(
    client: &Client,
    layout: &Layout,
    chain: &[usize],
    positions: &[u64],
    submitted: &[Option<Submitted>],
) -> Submitted {
    let node = |i: usize| &layout.order[i];
    let (head, last) = (chain[0], *chain.last().expect("non-empty"));
    let head_parts = parts_for(layout, head, submitted);
    if chain.len() == 1 {
        return (node(last).0.task.submit)(client, head_parts, positions[last]);
    }
    let part = |i: usize, parts: Parts| ChainPart {
        name: node(i).0.task.name,
        registered: node(i).0.task.registered,
        parts,
        position: positions[i],
        run: node(i).0.task.run.clone(),
    };
    let links = chain[1..]
        .iter()
        .map(|&i| part(i, node(i).0.parts.duplicate()))
        .collect();
    (node(last).0.task.submit_chain)(client, part(head, head_parts), links)
}

/// The graph nodes among `node`'s inputs.
fn graph_inputs(node: &NodeRef) -> impl Iterator<Item = &NodeRef> {
    node.0.parts.holes.iter().filter_map(|(_, dep)| match dep {
        DepRef::Node(dep) => Some(dep),
        _ => None,
    })
}

/// A fresh number for each submitted graph: earlier graphs' tasks rank first.
fn next_graph_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The tasks of a graph being submitted, for its [`Event::GraphSubmitted`].
#[derive(Default)]
struct GraphDescription {
    tasks: Vec<GraphTask>,
    /// Each submitted chain's task, by its last node's key.
    task_of: KeyMap<Arc<str>, TaskKey>,
}

impl GraphDescription {
    /// Adds the task just submitted for the chain from `head` to `last`.
    fn add(&mut self, head: &NodeRef, last: &NodeRef) {
        let Some(task) = crate::task_events::take_last_task_key() else {
            return;
        };
        let deps = head
            .0
            .parts
            .holes
            .iter()
            .filter_map(|(_, dep)| match dep {
                DepRef::Node(dep) => self.task_of.get(&dep.0.key).copied(),
                _ => None,
            })
            .collect();
        self.tasks.push(GraphTask {
            task,
            name: last.0.task.name.to_string(),
            deps,
        });
        self.task_of.insert(last.0.key.clone(), task);
    }
}

/// Each node's position under `client`'s key: the one it got when first computed
/// under that key, else a new one taken from the client (in depth-first order).
fn positions_under(client: &Client, order: &[NodeRef]) -> Vec<u64> {
    let key = client.key;
    let known: Vec<Option<u64>> = order.iter().map(|node| node.position_under(&key)).collect();
    let fresh = known.iter().filter(|known| known.is_none()).count() as u64;
    let mut next = client.take_positions(fresh);
    known
        .into_iter()
        .zip(order)
        .map(|(known, node)| {
            known.unwrap_or_else(|| {
                next += 1;
                node.keep_position(key, next - 1)
            })
        })
        .collect()
}

impl NodeRef {
    /// The position this node got under `key`, if it was computed under it.
    fn position_under(&self, key: &StreamKey) -> Option<u64> {
        let positions = self.0.positions.lock().unwrap_or_else(|p| p.into_inner());
        positions.under(key)
    }

    /// Keeps `position` as this node's under `key` unless a concurrent computation
    /// kept one first; returns the position kept.
    fn keep_position(&self, key: StreamKey, position: u64) -> u64 {
        let mut positions = self.0.positions.lock().unwrap_or_else(|p| p.into_inner());
        positions.keep(key, position)
    }
}

/// The arguments of node `i` of `layout` with its graph inputs replaced by their
/// futures (from `submitted`, by position).
fn parts_for(layout: &Layout, i: usize, submitted: &[Option<Submitted>]) -> Parts {
    let mut parts = layout.order[i].0.parts.duplicate();
    let mut inputs = layout.inputs_of(i).iter();
    for (_, dep) in parts.holes.iter_mut() {
        if let DepRef::Node(_) = dep {
            let input = *inputs.next().expect("one input per node hole");
            let done = submitted[input]
                .as_ref()
                .expect("an input is submitted before its readers, and kept until they are");
            *dep = DepRef::Future(done.slot.clone());
        }
    }
    parts
}

/// Anything [`to_dot`] can draw: a [`Delayed`] of any type.
pub trait GraphOutput {
    #[doc(hidden)]
    fn graph_node(&self) -> NodeRef;
}

impl<T> GraphOutput for Delayed<T> {
    fn graph_node(&self) -> NodeRef {
        self.node.clone()
    }
}

/// The graph behind `outputs` in Graphviz DOT: one box per node with the task's
/// name and key (and, once computed, its state and how long it took from
/// submission to result), one edge per dependency.
pub fn to_dot<G: GraphOutput>(outputs: &[&G]) -> String {
    let mut dot = String::from(
        "digraph wherever {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<NodeRef> = outputs.iter().map(|o| o.graph_node()).collect();
    let mut lines = Vec::new();
    while let Some(node) = stack.pop() {
        if !seen.insert(node.0.key.clone()) {
            continue;
        }
        let record = node
            .0
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut label = format!(
            "{}\\n{}",
            node.0
                .task
                .name
                .rsplit("::")
                .next()
                .unwrap_or(node.0.task.name),
            node.0.key
        );
        if let Some(state) = record.state {
            let _ = write!(label, "\\n{state}");
        }
        if let Some(duration) = record.duration {
            let _ = write!(label, " in {:.3} ms", duration.as_secs_f64() * 1e3);
        }
        lines.push(format!("  \"{}\" [label=\"{label}\"];", node.0.key));
        for (_, dep) in &node.0.parts.holes {
            if let DepRef::Node(dep) = dep {
                lines.push(format!("  \"{}\" -> \"{}\";", dep.0.key, node.0.key));
                stack.push(dep.clone());
            }
        }
    }
    lines.sort();
    for line in lines {
        dot.push_str(&line);
        dot.push('\n');
    }
    dot.push_str("}\n");
    dot
}

/// A node description, for tests of the modules that keep them.
#[cfg(test)]
pub(crate) fn test_node_task() -> Arc<NodeTask> {
    fn one(x: u64) -> u64 {
        x
    }
    node_task::<(u64,), u64, _>(Resolved::new(one))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Plan;

    fn triple(x: u64) -> u64 {
        3 * x
    }

    fn add_pair(x: u64, y: u64) -> u64 {
        x + y
    }

    #[test]
    fn a_layer_of_nodes_shares_one_task_and_computes_like_single_nodes() {
        let layer = delayed_layer("triples", triple, 0..1000u64);
        assert_eq!(layer.len(), 1000);
        assert!(layer
            .iter()
            .all(|d| Arc::ptr_eq(&d.node.0.task, &layer[0].node.0.task)));
        assert!(layer[7].key().starts_with("triples-"), "{}", layer[7].key());
        let single = delayed(triple, 5u64);
        assert!(!Arc::ptr_eq(&single.node.0.task, &layer[0].node.0.task));
        let client = Plan::parse("threads:2").unwrap().start().unwrap();
        let values = compute(&client, &layer[..]).unwrap();
        assert_eq!(values, (0..1000u64).map(|x| 3 * x).collect::<Vec<_>>());
        assert_eq!(compute(&client, &single).unwrap(), 15);
    }

    #[test]
    fn nodes_of_one_plain_function_share_its_description_and_keep_their_own_keys() {
        let (a, b) = (delayed(triple, 1u64), delayed(triple, 2u64));
        assert!(Arc::ptr_eq(&a.node.0.task, &b.node.0.task));
        assert_ne!(a.key(), b.key());
        let pure = (delayed_pure(triple, 3u64), delayed_pure(triple, 3u64));
        assert_eq!(pure.0.key(), pure.1.key());
        assert_eq!(pure.0.node.0.number, NO_NUMBER);
        // A closure that captures a value is a description of its own each time.
        let factor = 5u64;
        let (c, d) = (
            delayed(move |x: u64| x * factor, 1u64),
            delayed(move |x: u64| x * factor, 1u64),
        );
        assert!(!Arc::ptr_eq(&c.node.0.task, &d.node.0.task));
        let client = Plan::parse("threads:2").unwrap().start().unwrap();
        let both = delayed(add_pair, (&pure.0, &pure.1));
        assert_eq!(compute(&client, (&a, &b, &both)).unwrap(), (3, 6, 18));
        assert_eq!(compute(&client, (&c, &d)).unwrap(), (5, 5));
    }
}
