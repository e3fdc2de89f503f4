//! Bags: partitioned collections of records (Dask's `dask.bag`), built as lazy
//! graphs that any plan computes.
//!
//! ```no_run
//! use wherever::prelude::*;
//! use wherever_bag::Bag;
//!
//! #[wherever::task]
//! fn is_obama(line: &str) -> bool {
//!     line.contains("Obama")
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Plan::parse("threads:2")?.start()?;
//! let lines = Bag::read_text("pagecounts/*.gz")?;
//! let matches = lines.filter(is_obama).count().compute(&client)?;
//! # Ok(()) }
//! ```
//!
//! How it runs: a bag is a list of partition sources (files, blocks of large plain
//! files, or elements given) and a list of element operations. Operations are
//! functions registered with `#[wherever::task]`, so workers find them by name;
//! a chain of `map`/`filter`/`flat_map` becomes one built-in partition task per
//! partition that applies them all in one pass (node keys name them:
//! `bag-filter[is_obama]-count-12`). Partition data travels as one byte buffer
//! ([`wherever::partition`]): lines of text as newline-joined text, plain numbers
//! as raw little-endian bytes. Reductions are trees of combining tasks over the
//! partitions' partial results.

mod element_fn;
mod error;
mod job;
mod read;
mod reduce;

pub use element_fn::{markers, BoundFn, ElementFn, FoldFn};
pub use error::BagError;

use element_fn::{registered_name, Use};
use job::{bag_partition, Op, PartitionJob};
use read::SourceSpec;
use reduce::{Combine, Finish, Partial};
use serde::Serialize;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wherever::__private::element::ElementOp;
use wherever::partition::{Partition, PartitionBuilder};
use wherever::{compute, delayed_layer, Client, Delayed, Value};

/// The block size `read_text` splits large plain files into.
pub const DEFAULT_BLOCK_SIZE: u64 = 64 << 20;

/// How many partial results one combining task merges.
const SPLIT_EVERY: usize = 8;

/// A partitioned collection of elements of type `T` (lazy: nothing runs until a
/// result is computed on a client).
pub struct Bag<T> {
    sources: Arc<Vec<Source>>,
    ops: Vec<Op>,
    /// The operations, for node keys (`filter[is_obama]`).
    labels: Vec<String>,
    /// The first error building the bag, returned when it is computed.
    error: Option<String>,
    _element: PhantomData<fn() -> T>,
}

impl<T> Clone for Bag<T> {
    fn clone(&self) -> Self {
        Bag {
            sources: self.sources.clone(),
            ops: self.ops.clone(),
            labels: self.labels.clone(),
            error: self.error.clone(),
            _element: PhantomData,
        }
    }
}

/// Where one partition comes from.
#[derive(Clone)]
enum Source {
    /// Read (or given) by the partition task itself.
    Spec(SourceSpec),
}

/// A lazy result of a bag (Dask's `Item`): [`Item::compute`] computes it.
pub struct Item<T> {
    node: Result<Delayed<Partial>, String>,
    decode: fn(Partial) -> Result<T, String>,
}

impl<T> Item<T> {
    /// Computes the value on `client`.
    pub fn compute(&self, client: &Client) -> Result<T, BagError> {
        let node = self
            .node
            .as_ref()
            .map_err(|e| BagError::Function(e.clone()))?;
        let partial = compute(client, node)?;
        (self.decode)(partial).map_err(BagError::Decode)
    }

    /// The graph behind the value in Graphviz DOT.
    pub fn to_dot(&self) -> String {
        match &self.node {
            Ok(node) => node.to_dot(),
            Err(_) => String::new(),
        }
    }
}

impl Bag<String> {
    /// The lines of the files matching the glob `pattern` (sorted by path): plain,
    /// gzip (`.gz`), bzip2 (`.bz2`) or zstd (`.zst`), told by extension or magic
    /// bytes. One partition per file; plain files over 64 MiB are split into blocks
    /// of whole lines. Line ends (`\n` or `\r\n`) are not part of the lines. A
    /// pattern matching no file is an error naming it.
    pub fn read_text(pattern: &str) -> Result<Bag<String>, BagError> {
        Bag::read_text_blocks(pattern, DEFAULT_BLOCK_SIZE)
    }

    /// [`Bag::read_text`], splitting plain files into blocks of `block_size` bytes.
    pub fn read_text_blocks(pattern: &str, block_size: u64) -> Result<Bag<String>, BagError> {
        let sources = read::sources(pattern, block_size.max(1))?;
        Ok(Bag::of_sources(
            sources.into_iter().map(Source::Spec).collect(),
        ))
    }

    /// Writes each partition as the text file `dir/NNNNN.part` (one element per
    /// line), computing the bag on `client`; returns the files. On a plan with
    /// remote workers, `dir` is on the workers' hosts.
    pub fn to_textfiles(
        &self,
        dir: impl AsRef<Path>,
        client: &Client,
    ) -> Result<Vec<PathBuf>, BagError> {
        let dir = dir.as_ref();
        let paths: Vec<PathBuf> = (0..self.sources.len())
            .map(|i| dir.join(format!("{i:05}.part")))
            .collect();
        let nodes: Vec<Delayed<Partial>> = self
            .partition_nodes_each("write", |i| Finish::WriteText {
                path: paths[i].display().to_string(),
            })
            .map_err(BagError::Function)?;
        compute(client, &nodes[..])?;
        Ok(paths)
    }
}

impl<T: Value> Bag<T> {
    /// A bag of `items` in `npartitions` partitions of (nearly) equal length.
    pub fn from_iter(items: impl IntoIterator<Item = T>, npartitions: usize) -> Bag<T> {
        let items: Vec<T> = items.into_iter().collect();
        let npartitions = npartitions.max(1);
        let mut sources = Vec::with_capacity(npartitions);
        let mut error = None;
        let (per, extra) = (items.len() / npartitions, items.len() % npartitions);
        let mut start = 0;
        for i in 0..npartitions {
            let len = per + usize::from(i < extra);
            let partition =
                Partition::from_values(&items[start..start + len]).unwrap_or_else(|e| {
                    error.get_or_insert(e);
                    Partition::empty()
                });
            sources.push(Source::Spec(SourceSpec::Inline(partition)));
            start += len;
        }
        let mut bag = Bag::of_sources(sources);
        bag.error = error;
        bag
    }

    fn of_sources(sources: Vec<Source>) -> Bag<T> {
        Bag {
            sources: Arc::new(sources),
            ops: Vec::new(),
            labels: Vec::new(),
            error: None,
            _element: PhantomData,
        }
    }

    /// How many partitions the bag has.
    pub fn npartitions(&self) -> usize {
        self.sources.len()
    }

    /// This bag with one more element operation (the task `F`, registered with
    /// arguments `A` and result `R`), typed `U`.
    fn with_op<U, F: 'static, A: 'static, R: 'static>(
        &self,
        op: ElementOp,
        bound: Option<Result<Vec<u8>, String>>,
    ) -> Bag<U> {
        let mut error = self.error.clone();
        let name = registered_name::<F, A, R>(Use::Apply).unwrap_or_else(|e| {
            error.get_or_insert(e);
            ""
        });
        let bound = bound.and_then(|b| {
            b.map_err(|e| {
                error.get_or_insert(format!("cannot encode the bound value: {e}"));
            })
            .ok()
        });
        let mut ops = self.ops.clone();
        ops.push(Op {
            op,
            task: name.to_string(),
            bound: bound.map(serde_bytes::ByteBuf::from),
        });
        let mut labels = self.labels.clone();
        let verb = match op {
            ElementOp::Map => "map",
            ElementOp::Filter => "filter",
            ElementOp::FlatMap => "flat_map",
        };
        labels.push(format!(
            "{verb}[{}]",
            name.rsplit("::").next().unwrap_or(name)
        ));
        Bag {
            sources: self.sources.clone(),
            ops,
            labels,
            error,
            _element: PhantomData,
        }
    }

    /// Each element becomes `f(element)`; `f` is a `#[wherever::task]` function.
    pub fn map<R: Value, M>(&self, f: impl ElementFn<T, R, M>) -> Bag<R> {
        self.with_op_of::<R, _, (T,), R>(&f, ElementOp::Map, None)
    }

    /// The elements for which `f(element)` is true.
    pub fn filter<M>(&self, f: impl ElementFn<T, bool, M>) -> Bag<T> {
        self.with_op_of::<T, _, (T,), bool>(&f, ElementOp::Filter, None)
    }

    /// Each element becomes the elements of `f(element)`.
    pub fn flat_map<U: Value, M>(&self, f: impl ElementFn<T, Vec<U>, M>) -> Bag<U> {
        self.with_op_of::<U, _, (T,), Vec<U>>(&f, ElementOp::FlatMap, None)
    }

    /// Each element becomes `f(element, &bound)`: `bound` is encoded once and
    /// decoded once per partition (for a compiled pattern, a lookup table...).
    pub fn map_with<E: Value, R: Value, M>(
        &self,
        f: impl BoundFn<T, E, R, M>,
        bound: &E,
    ) -> Bag<R> {
        self.with_op_of::<R, _, (T, E), R>(&f, ElementOp::Map, Some(encode(bound)))
    }

    /// The elements for which `f(element, &bound)` is true.
    pub fn filter_with<E: Value, M>(&self, f: impl BoundFn<T, E, bool, M>, bound: &E) -> Bag<T> {
        self.with_op_of::<T, _, (T, E), bool>(&f, ElementOp::Filter, Some(encode(bound)))
    }

    /// Each element becomes the elements of `f(element, &bound)`.
    pub fn flat_map_with<E: Value, U: Value, M>(
        &self,
        f: impl BoundFn<T, E, Vec<U>, M>,
        bound: &E,
    ) -> Bag<U> {
        self.with_op_of::<U, _, (T, E), Vec<U>>(&f, ElementOp::FlatMap, Some(encode(bound)))
    }

    /// [`Bag::with_op`] for the function `_f`.
    fn with_op_of<U, F: 'static, A: 'static, R: 'static>(
        &self,
        _f: &F,
        op: ElementOp,
        bound: Option<Result<Vec<u8>, String>>,
    ) -> Bag<U> {
        self.with_op::<U, F, A, R>(op, bound)
    }

    /// The graph node of every partition, finished by `finish(i)`.
    fn partition_nodes_each(
        &self,
        finish_label: &str,
        finish: impl Fn(usize) -> Finish,
    ) -> Result<Vec<Delayed<Partial>>, String> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let mut label = String::from("bag");
        for op in &self.labels {
            label.push('-');
            label.push_str(op);
        }
        if !finish_label.is_empty() {
            label.push('-');
            label.push_str(finish_label);
        }
        let jobs = self.sources.iter().enumerate().map(|(i, source)| {
            let Source::Spec(spec) = source;
            PartitionJob {
                source: spec.clone(),
                ops: self.ops.clone(),
                finish: finish(i),
            }
        });
        Ok(delayed_layer(&label, bag_partition, jobs))
    }

    /// A tree reduction of every partition finished by `finish`, merged by `how`.
    fn reduce(
        &self,
        finish_label: &str,
        finish: Finish,
        how: Combine,
    ) -> Result<Delayed<Partial>, String> {
        let mut level = self.partition_nodes_each(finish_label, |_| finish.clone())?;
        let label = format!("bag-{finish_label}-combine");
        while level.len() > 1 {
            let chunks = level.chunks(SPLIT_EVERY).map(|chunk| (how.clone(), chunk));
            level = delayed_layer(&label, job::bag_combine, chunks);
        }
        Ok(level.pop().expect("a bag has at least one partition"))
    }

    /// The number of elements.
    pub fn count(&self) -> Item<u64> {
        Item {
            node: self.reduce("count", Finish::Count, Combine::Count),
            decode: |partial| match partial {
                Partial::Count(n) => Ok(n),
                other => Err(format!("a {} where a count was expected", other.kind())),
            },
        }
    }

    /// The sum of the elements, which must be plain numbers (integers wrap on
    /// overflow); zero for an empty bag.
    pub fn sum(&self) -> Item<T>
    where
        T: Default,
    {
        Item {
            node: self.reduce("sum", Finish::Sum, Combine::Sum),
            decode: |partial| match partial {
                Partial::Part(partition) => Ok(partition.values::<T>()?.pop().unwrap_or_default()),
                other => Err(format!("a {} where a sum was expected", other.kind())),
            },
        }
    }

    /// Each distinct element with how often it occurs, in order of first
    /// appearance. Elements are equal when their encodings are.
    pub fn frequencies(&self) -> Item<Vec<(T, u64)>> {
        Item {
            node: self.reduce("frequencies", Finish::Frequencies, Combine::Frequencies),
            decode: |partial| match partial {
                Partial::Tally { keys, counts } => {
                    Ok(keys.values::<T>()?.into_iter().zip(counts).collect())
                }
                other => Err(format!(
                    "a {} where frequencies were expected",
                    other.kind()
                )),
            },
        }
    }

    /// The distinct elements, in order of first appearance. Elements are equal
    /// when their encodings are.
    pub fn distinct(&self) -> Item<Vec<T>> {
        Item {
            node: self.reduce("distinct", Finish::Distinct, Combine::Distinct),
            decode: |partial| match partial {
                Partial::Tally { keys, .. } => keys.values::<T>(),
                other => Err(format!(
                    "a {} where distinct values were expected",
                    other.kind()
                )),
            },
        }
    }

    /// Folds each partition with `binop` from `initial`, then the partitions'
    /// results with `combine` (both `#[wherever::task]` functions of an
    /// accumulator and an element returning the accumulator).
    pub fn fold<A: Value, M1, M2>(
        &self,
        binop: impl FoldFn<A, T, M1>,
        combine: impl FoldFn<A, A, M2>,
        initial: A,
    ) -> Item<A> {
        let node = (|| {
            let binop = fn_name::<_, (A, T), A>(&binop, Use::Fold)?;
            let combine = fn_name::<_, (A, A), A>(&combine, Use::Fold)?;
            let initial = one(&initial)?;
            self.reduce(
                "fold",
                Finish::Fold {
                    binop: binop.into(),
                    initial,
                },
                Combine::Fold {
                    combine: combine.into(),
                },
            )
        })();
        Item {
            node,
            decode: |partial| match partial {
                Partial::Part(partition) => partition
                    .values::<A>()?
                    .pop()
                    .ok_or_else(|| "a fold without a result".to_string()),
                other => Err(format!("a {} where a fold was expected", other.kind())),
            },
        }
    }

    /// Groups the elements by `key(element)` and folds each group with `binop`
    /// from `initial`, then merges the partitions' groups of equal keys with
    /// `combine` (Dask's `foldby`). Keys are equal when their encodings are.
    pub fn foldby<K: Value, A: Value, M0, M1, M2>(
        &self,
        key: impl ElementFn<T, K, M0>,
        binop: impl FoldFn<A, T, M1>,
        initial: A,
        combine: impl FoldFn<A, A, M2>,
    ) -> Item<Vec<(K, A)>> {
        let node = (|| {
            let key = fn_name::<_, (T,), K>(&key, Use::Apply)?;
            let binop = fn_name::<_, (A, T), A>(&binop, Use::Fold)?;
            let combine = fn_name::<_, (A, A), A>(&combine, Use::Fold)?;
            let initial = one(&initial)?;
            self.reduce(
                "foldby",
                Finish::FoldBy {
                    key: key.into(),
                    binop: binop.into(),
                    initial,
                },
                Combine::FoldBy {
                    combine: combine.into(),
                },
            )
        })();
        Item {
            node,
            decode: |partial| match partial {
                Partial::Groups { keys, accs } => Ok(keys
                    .values::<K>()?
                    .into_iter()
                    .zip(accs.values::<A>()?)
                    .collect()),
                other => Err(format!("a {} where groups were expected", other.kind())),
            },
        }
    }

    /// The first `n` elements, computing only the partitions needed, one after
    /// the other.
    pub fn take(&self, n: usize, client: &Client) -> Result<Vec<T>, BagError> {
        let nodes = self
            .partition_nodes_each("take", |_| Finish::Take(n as u64))
            .map_err(BagError::Function)?;
        let mut taken = Vec::new();
        for node in nodes {
            if taken.len() >= n {
                break;
            }
            match compute(client, &node)? {
                Partial::Part(partition) => {
                    let values = partition.values::<T>().map_err(BagError::Decode)?;
                    taken.extend(values.into_iter().take(n - taken.len()));
                }
                other => {
                    return Err(BagError::Decode(format!(
                        "a {} where elements were expected",
                        other.kind()
                    )))
                }
            }
        }
        Ok(taken)
    }

    /// Every element, partition by partition.
    pub fn compute(&self, client: &Client) -> Result<Vec<T>, BagError> {
        let nodes = self
            .partition_nodes_each("", |_| Finish::Keep)
            .map_err(BagError::Function)?;
        let mut values = Vec::new();
        for partial in compute(client, &nodes[..])? {
            match partial {
                Partial::Part(partition) => {
                    values.extend(partition.values::<T>().map_err(BagError::Decode)?)
                }
                other => {
                    return Err(BagError::Decode(format!(
                        "a {} where elements were expected",
                        other.kind()
                    )))
                }
            }
        }
        Ok(values)
    }

    /// The graph of every partition (kept whole) in Graphviz DOT.
    pub fn to_dot(&self) -> String {
        match self.partition_nodes_each("", |_| Finish::Keep) {
            Ok(nodes) => wherever::to_dot(&nodes.iter().collect::<Vec<_>>()),
            Err(_) => String::new(),
        }
    }
}

/// The registered name of the function `f` (see [`registered_name`]).
fn fn_name<F: 'static, A: 'static, R: 'static>(_f: &F, used: Use) -> Result<&'static str, String> {
    registered_name::<F, A, R>(used)
}

/// `value` as a one-element partition.
fn one<A: Serialize + 'static>(value: &A) -> Result<Partition, String> {
    let mut builder = PartitionBuilder::default();
    builder.push(value)?;
    Ok(builder.finish())
}

/// `value` encoded as a task argument.
fn encode<E: Serialize>(value: &E) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(value).map_err(|e| e.to_string())
}
