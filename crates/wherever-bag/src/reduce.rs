//! How a partition task finishes its partition ([`Finish`]) and how a tree
//! reduction merges the partial results ([`Combine`]). Counting, taking, distinct
//! values and frequencies work on the elements' records (their bytes) and need no
//! element type; sums need plain numbers; folds call the user's registered fold
//! functions.

use crate::job::missing_task;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use wherever::__private::element::{self, ElementCall, ElementOp};
use wherever::partition::{Layout, NumberKind, Partition, PartitionBuilder};
use wherever::{TaskContext, TaskFailure};

/// What becomes of a partition after its element operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Finish {
    /// Kept whole.
    Keep,
    /// Its number of elements.
    Count,
    /// The sum of its numbers.
    Sum,
    /// Each distinct element with how often it occurs.
    Frequencies,
    /// Its distinct elements.
    Distinct,
    /// Its first elements.
    Take(u64),
    /// Folded with the registered fold function `binop` from `initial`.
    Fold {
        /// The fold function's registered name.
        binop: String,
        /// The initial accumulator (one element).
        initial: Partition,
    },
    /// Grouped by the registered element function `key`, each group folded with
    /// `binop` from `initial`.
    FoldBy {
        /// The key function's registered name.
        key: String,
        /// The fold function's registered name.
        binop: String,
        /// The initial accumulator (one element).
        initial: Partition,
    },
    /// Written as lines to the file `path`.
    WriteText {
        /// The file.
        path: String,
    },
}

/// How partial results are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Combine {
    /// Partitions concatenated (up to `limit` elements).
    Concat {
        /// At most this many elements.
        limit: Option<u64>,
    },
    /// Counts added.
    Count,
    /// Sums added.
    Sum,
    /// Frequencies added per element.
    Frequencies,
    /// Distinct elements united.
    Distinct,
    /// Accumulators folded with the registered fold function `combine`.
    Fold {
        /// The combining function's registered name.
        combine: String,
    },
    /// Accumulators of equal keys folded with the registered fold function `combine`.
    FoldBy {
        /// The combining function's registered name.
        combine: String,
    },
}

/// A partition task's result, or a partial result of a reduction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Partial {
    /// A partition.
    Part(Partition),
    /// A count.
    Count(u64),
    /// Keys (distinct elements) and, for frequencies, how often each occurs.
    Tally {
        /// The distinct elements.
        keys: Partition,
        /// How often each occurs (empty for distinct values).
        counts: Vec<u64>,
    },
    /// Keys and their accumulators (`foldby`).
    Groups {
        /// The distinct keys.
        keys: Partition,
        /// Each key's accumulator.
        accs: Partition,
    },
}

impl Partial {
    /// What kind of result this is, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Partial::Part(_) => "partition",
            Partial::Count(_) => "count",
            Partial::Tally { .. } => "tally",
            Partial::Groups { .. } => "group table",
        }
    }
}

fn fail(message: impl std::fmt::Display) -> TaskFailure {
    TaskFailure::from_error(message)
}

/// Finishes one partition.
pub(crate) fn finish(
    how: &Finish,
    partition: Partition,
    ctx: &mut TaskContext,
) -> Result<Partial, TaskFailure> {
    Ok(match how {
        Finish::Keep => Partial::Part(partition),
        Finish::Count => Partial::Count(partition.len() as u64),
        Finish::Sum => Partial::Part(sum(&partition)?),
        Finish::Frequencies => tally([&partition], true),
        Finish::Distinct => tally([&partition], false),
        Finish::Take(n) => Partial::Part(first(&partition, *n)),
        Finish::Fold { binop, initial } => Partial::Part(fold(binop, initial, &partition, ctx)?),
        Finish::FoldBy {
            key,
            binop,
            initial,
        } => fold_by(key, binop, initial, &partition, ctx)?,
        Finish::WriteText { path } => Partial::Count(write_text(Path::new(path), &partition)?),
    })
}

/// Merges partial results.
pub(crate) fn combine(
    how: &Combine,
    parts: Vec<Partial>,
    ctx: &mut TaskContext,
) -> Result<Partial, TaskFailure> {
    let mismatch = |part: &Partial| fail(format!("cannot combine a {} here", part.kind()));
    match how {
        Combine::Concat { limit } => {
            let mut all = Partition::empty();
            for part in &parts {
                let Partial::Part(partition) = part else {
                    return Err(mismatch(part));
                };
                all.append(partition);
            }
            Ok(Partial::Part(match limit {
                Some(n) => first(&all, *n),
                None => all,
            }))
        }
        Combine::Count => {
            let mut total = 0u64;
            for part in &parts {
                let Partial::Count(n) = part else {
                    return Err(mismatch(part));
                };
                total += n;
            }
            Ok(Partial::Count(total))
        }
        Combine::Sum => {
            let mut all = Partition::empty();
            for part in &parts {
                let Partial::Part(partition) = part else {
                    return Err(mismatch(part));
                };
                all.append(partition);
            }
            Ok(Partial::Part(sum(&all)?))
        }
        Combine::Frequencies | Combine::Distinct => {
            let mut keys = Vec::new();
            let mut counts = Vec::new();
            for part in &parts {
                let Partial::Tally { keys: k, counts: c } = part else {
                    return Err(mismatch(part));
                };
                keys.push(k);
                counts.push(c.as_slice());
            }
            Ok(merge_tallies(
                &keys,
                &counts,
                matches!(how, Combine::Frequencies),
            ))
        }
        Combine::Fold { combine } => {
            let mut accs = Partition::empty();
            for part in &parts {
                let Partial::Part(partition) = part else {
                    return Err(mismatch(part));
                };
                accs.append(partition);
            }
            Ok(Partial::Part(fold_records(combine, &accs, ctx)?))
        }
        Combine::FoldBy { combine } => {
            let mut order: Vec<Vec<u8>> = Vec::new();
            let mut groups: HashMap<Vec<u8>, (Layout, PartitionBuilder)> = HashMap::new();
            let mut key_layout = Layout::Text;
            for part in &parts {
                let Partial::Groups { keys, accs } = part else {
                    return Err(mismatch(part));
                };
                if !keys.is_empty() {
                    key_layout = keys.layout;
                }
                for (key, acc) in keys.records().zip(accs.records()) {
                    let group = groups.entry(key.to_vec()).or_insert_with(|| {
                        order.push(key.to_vec());
                        (accs.layout, PartitionBuilder::default())
                    });
                    group.1.push_record(accs.layout, acc);
                }
            }
            let mut keys = PartitionBuilder::default();
            let mut accs = Partition::empty();
            for key in order {
                let (_, builder) = groups.remove(&key).expect("every key has a group");
                keys.push_record(key_layout, &key);
                accs.append(&fold_records(combine, &builder.finish(), ctx)?);
            }
            Ok(Partial::Groups {
                keys: keys.finish(),
                accs,
            })
        }
    }
}

/// The first `n` elements of `partition`.
fn first(partition: &Partition, n: u64) -> Partition {
    let mut out = PartitionBuilder::default();
    for record in partition.records().take(n as usize) {
        out.push_record(partition.layout, record);
    }
    out.finish()
}

/// The sum of a partition of numbers, as a one-element partition (empty if the
/// partition is).
fn sum(partition: &Partition) -> Result<Partition, TaskFailure> {
    let kind = match partition.layout {
        _ if partition.is_empty() => return Ok(Partition::empty()),
        Layout::Numbers(kind) => kind,
        _ => return Err(fail("sum needs a bag of plain numbers")),
    };
    macro_rules! total {
        ($t:ty, $zero:expr, $add:ident) => {{
            let total = partition
                .values::<$t>()
                .map_err(fail)?
                .into_iter()
                .fold($zero, |a: $t, b| a.$add(b));
            Partition::from_values(&[total]).map_err(fail)
        }};
    }
    match kind {
        NumberKind::U8 => total!(u8, 0, wrapping_add),
        NumberKind::U16 => total!(u16, 0, wrapping_add),
        NumberKind::U32 => total!(u32, 0, wrapping_add),
        NumberKind::U64 => total!(u64, 0, wrapping_add),
        NumberKind::I8 => total!(i8, 0, wrapping_add),
        NumberKind::I16 => total!(i16, 0, wrapping_add),
        NumberKind::I32 => total!(i32, 0, wrapping_add),
        NumberKind::I64 => total!(i64, 0, wrapping_add),
        NumberKind::F32 => total!(f32, 0.0, add),
        NumberKind::F64 => total!(f64, 0.0, add),
    }
}

use std::ops::Add;

/// The distinct elements of `partitions` (in order of first appearance) and,
/// when `counting`, how often each occurs.
fn tally<'a>(partitions: impl IntoIterator<Item = &'a Partition>, counting: bool) -> Partial {
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let mut keys = PartitionBuilder::default();
    let mut counts: Vec<u64> = Vec::new();
    for partition in partitions {
        for record in partition.records() {
            let next = index.len();
            let at = *index.entry(record).or_insert_with(|| {
                keys.push_record(partition.layout, record);
                next
            });
            if counting {
                if at == counts.len() {
                    counts.push(0);
                }
                counts[at] += 1;
            }
        }
    }
    Partial::Tally {
        keys: keys.finish(),
        counts,
    }
}

/// Merges tallies: counts of equal elements added.
fn merge_tallies(keys: &[&Partition], counts: &[&[u64]], counting: bool) -> Partial {
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let mut merged_keys = PartitionBuilder::default();
    let mut merged_counts: Vec<u64> = Vec::new();
    for (part, part_counts) in keys.iter().zip(counts) {
        for (i, record) in part.records().enumerate() {
            let next = index.len();
            let at = *index.entry(record).or_insert_with(|| {
                merged_keys.push_record(part.layout, record);
                next
            });
            if counting {
                if at == merged_counts.len() {
                    merged_counts.push(0);
                }
                merged_counts[at] += part_counts.get(i).copied().unwrap_or(0);
            }
        }
    }
    Partial::Tally {
        keys: merged_keys.finish(),
        counts: merged_counts,
    }
}

/// Folds `partition` into `initial` with the registered fold function `binop`.
fn fold(
    binop: &str,
    initial: &Partition,
    partition: &Partition,
    ctx: &mut TaskContext,
) -> Result<Partition, TaskFailure> {
    let fold = element::lookup(binop)
        .and_then(|f| f.fold)
        .ok_or_else(|| missing_task(binop))?;
    fold(initial, partition, ctx)
}

/// Folds accumulators (the records of `accs`) into one with `combine`, the first
/// being the initial value.
fn fold_records(
    combine: &str,
    accs: &Partition,
    ctx: &mut TaskContext,
) -> Result<Partition, TaskFailure> {
    let mut records = accs.records();
    let Some(head) = records.next() else {
        return Ok(Partition::empty());
    };
    let mut initial = PartitionBuilder::default();
    initial.push_record(accs.layout, head);
    let mut rest = PartitionBuilder::default();
    for record in records {
        rest.push_record(accs.layout, record);
    }
    fold(combine, &initial.finish(), &rest.finish(), ctx)
}

/// Groups `partition` by the registered element function `key` and folds each
/// group with `binop` from `initial`.
fn fold_by(
    key: &str,
    binop: &str,
    initial: &Partition,
    partition: &Partition,
    ctx: &mut TaskContext,
) -> Result<Partial, TaskFailure> {
    let apply = element::lookup(key)
        .and_then(|f| f.apply)
        .ok_or_else(|| missing_task(key))?;
    let keys = apply(ElementCall {
        op: ElementOp::Map,
        input: partition,
        extra: None,
        ctx,
    })?;
    let mut order: Vec<&[u8]> = Vec::new();
    let mut groups: HashMap<&[u8], PartitionBuilder> = HashMap::new();
    for (key, record) in keys.records().zip(partition.records()) {
        groups
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                PartitionBuilder::default()
            })
            .push_record(partition.layout, record);
    }
    let mut out_keys = PartitionBuilder::default();
    let mut accs = Partition::empty();
    for key in order {
        let group = groups.remove(key).expect("every key has a group").finish();
        out_keys.push_record(keys.layout, key);
        accs.append(&fold(binop, initial, &group, ctx)?);
    }
    Ok(Partial::Groups {
        keys: out_keys.finish(),
        accs,
    })
}

/// Writes the partition's elements as lines of `path`; returns how many.
fn write_text(path: &Path, partition: &Partition) -> Result<u64, TaskFailure> {
    let failed = |e: std::io::Error| fail(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let text = match partition.layout {
        Layout::Text => partition.data.clone(),
        _ if partition.is_empty() => Vec::new(),
        layout => {
            let mut text = Vec::with_capacity(partition.data.len());
            for record in partition.records() {
                let line = wherever::partition::text_element(layout, record)
                    .map_err(|e| fail(format!("to_textfiles needs a bag of strings: {e}")))?;
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
            }
            text
        }
    };
    std::fs::write(path, text).map_err(failed)?;
    Ok(partition.len() as u64)
}
