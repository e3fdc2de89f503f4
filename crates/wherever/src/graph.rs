//! Lazy task graphs (Dask's `delayed`): [`delayed`] builds a node without running
//! anything; [`compute`] runs the graph behind one or many outputs on any client,
//! computing shared parts once; [`persist`] keeps the results on the workers and
//! returns futures. Only what the outputs need is ever submitted (culling), in
//! depth-first order so one branch finishes before many start.

use crate::arguments::{Args, DepRef, IntoArgs, Parts, PartsBox};
use crate::client::Client;
use crate::future::{ErasedSlot, Future};
use crate::{IntoTask, TaskError, Value};
use std::any::Any;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

pub(crate) struct Node {
    key: String,
    name: &'static str,
    parts: Parts,
    submit: SubmitNode,
    record: Mutex<Record>,
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
pub fn delayed<A: Value, R: Value>(
    task: impl IntoTask<A, R>,
    args: impl IntoArgs<A>,
) -> Delayed<R> {
    make_node(task, args, false)
}

/// Like [`delayed`], for a pure function (same arguments, same result): calls with
/// equal arguments share one key and are computed once per computation. Never mark
/// a function that draws random numbers as pure.
pub fn delayed_pure<A: Value, R: Value>(
    task: impl IntoTask<A, R>,
    args: impl IntoArgs<A>,
) -> Delayed<R> {
    make_node(task, args, true)
}

fn make_node<A: Value, R: Value, T: IntoTask<A, R>>(
    task: T,
    args: impl IntoArgs<A>,
    pure: bool,
) -> Delayed<R> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let parts = match args.into_args() {
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
    };
    let name = task.task_name();
    let short = name.rsplit("::").next().unwrap_or(name);
    let key = if pure {
        format!("{short}-{:016x}", content_hash(name, &parts))
    } else {
        format!("{short}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
    };
    let task = Arc::new(task);
    let submit: SubmitNode = Box::new(move |client, parts, position| {
        let future: Future<R> = client.submit_parts(task.clone(), parts, position);
        Submitted {
            slot: future.erased(),
            future: Some(Box::new(future)),
        }
    });
    Delayed {
        node: NodeRef(Arc::new(Node {
            key,
            name,
            parts,
            submit,
            record: Mutex::default(),
        })),
        _value: PhantomData,
    }
}

/// FNV-1a over the task name, the encoded arguments and the dependencies' keys.
fn content_hash(name: &str, parts: &Parts) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
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
    hash
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
        compute(client, &[self]).map(|mut values| values.remove(0))
    }
}

/// Computes `outputs` on `client`: submits every node they need exactly once
/// (shared subgraphs included), then waits for the outputs. The first failed
/// output's error is returned; independent branches still run to the end.
pub fn compute<T: Value>(client: &Client, outputs: &[&Delayed<T>]) -> Result<Vec<T>, TaskError> {
    persist(client, outputs)
        .into_iter()
        .map(Future::value)
        .collect()
}

/// Submits the graph behind `outputs` and returns their futures without waiting:
/// results stay on the workers until the futures are asked or dropped.
pub fn persist<T: Value>(client: &Client, outputs: &[&Delayed<T>]) -> Vec<Future<T>> {
    let mut submitted = HashMap::new();
    let mut futures = Vec::with_capacity(outputs.len());
    for output in outputs {
        submit_graph(client, &output.node, &mut submitted);
        let entry = submitted
            .get_mut(&output.node.0.key)
            .expect("just submitted");
        let future = entry
            .future
            .take()
            .and_then(|any| any.downcast::<Future<T>>().ok());
        futures.push(match future {
            Some(future) => *future,
            None => {
                // The same output asked twice: the second asks for its own copy.
                let again = (output.node.0.submit)(
                    client,
                    parts_for(&output.node, &submitted),
                    client.take_positions(1),
                );
                *again
                    .future
                    .and_then(|any| any.downcast::<Future<T>>().ok())
                    .expect("a node's future has its type")
            }
        });
    }
    futures
}

/// Submits the graph nodes among `parts`' dependencies and points the holes at
/// their futures (for `client.submit(f, (&delayed,))`).
pub(crate) fn submit_nodes_in(client: &Client, parts: Parts) -> Parts {
    if !parts
        .holes
        .iter()
        .any(|(_, dep)| matches!(dep, DepRef::Node(_)))
    {
        return parts;
    }
    let mut submitted = HashMap::new();
    let holes = parts
        .holes
        .into_iter()
        .map(|(offset, dep)| match dep {
            DepRef::Node(node) => {
                submit_graph(client, &node, &mut submitted);
                (offset, DepRef::Future(submitted[&node.0.key].slot.clone()))
            }
            other => (offset, other),
        })
        .collect();
    Parts { holes, ..parts }
}

/// Submits `root` and everything it needs that is not in `submitted`, dependencies
/// first, depth first (iteratively: long chains do not exhaust the stack).
fn submit_graph(client: &Client, root: &NodeRef, submitted: &mut HashMap<String, Submitted>) {
    let mut stack: Vec<(NodeRef, bool)> = vec![(root.clone(), false)];
    while let Some((node, deps_done)) = stack.pop() {
        if submitted.contains_key(&node.0.key) {
            continue;
        }
        if !deps_done {
            stack.push((node.clone(), true));
            for (_, dep) in node.0.parts.holes.iter().rev() {
                if let DepRef::Node(dep) = dep {
                    if !submitted.contains_key(&dep.0.key) {
                        stack.push((dep.clone(), false));
                    }
                }
            }
            continue;
        }
        let parts = parts_for(&node, submitted);
        let started = Instant::now();
        let done = (node.0.submit)(client, parts, client.take_positions(1));
        *node.0.record.lock().unwrap_or_else(|p| p.into_inner()) = Record {
            state: Some("processing"),
            duration: None,
        };
        let record = node.clone();
        done.slot.when_resolved_encoded(Box::new(move |outcome| {
            let state = if outcome.is_ok() { "memory" } else { "erred" };
            *record.0.record.lock().unwrap_or_else(|p| p.into_inner()) = Record {
                state: Some(state),
                duration: Some(started.elapsed()),
            };
        }));
        submitted.insert(node.0.key.clone(), done);
    }
}

/// The node's arguments with its graph dependencies replaced by their futures.
fn parts_for(node: &NodeRef, submitted: &HashMap<String, Submitted>) -> Parts {
    let mut parts = node.0.parts.duplicate();
    for (_, dep) in parts.holes.iter_mut() {
        if let DepRef::Node(inner) = dep {
            *dep = DepRef::Future(submitted[&inner.0.key].slot.clone());
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
            node.0.name.rsplit("::").next().unwrap_or(node.0.name),
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
