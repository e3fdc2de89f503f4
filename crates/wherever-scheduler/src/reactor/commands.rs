//! Turning the scheduler's commands into messages to workers and clients.

use super::{Comm, Reactor};
use crate::protocol::{Input, Message};
use crate::Command;
use wherever_core::events::{Event as Observed, FailureKind};
use wherever_core::TaskErrorKind;

impl Reactor {
    /// Turns the scheduler's commands into messages.
    pub(super) fn carry_out(&mut self, comm: &mut impl Comm) {
        // Before any `Compute`: a task sent from here on reports its start if read.
        self.tell_workers_if_observed(comm);
        let mut commands = std::mem::take(&mut self.commands);
        // Results whose value went to the client inline, for the scheduler.
        let mut delivered = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Compute {
                    worker,
                    task,
                    inputs,
                } => {
                    let Some(record) = self.records.get(task) else {
                        continue;
                    };
                    if let Some(attempts) = self.scheduler.attempts(task).filter(|a| *a > 0) {
                        self.events
                            .emit_with(|| Observed::TaskRetried { task, attempts });
                    }
                    let inputs = inputs
                        .iter()
                        .map(|(task, holders)| Input {
                            task: *task,
                            holders: self.data_addresses(holders),
                        })
                        .collect();
                    let message = Message::Compute {
                        task: Box::new(record.task.message(task)),
                        inputs,
                    };
                    if self.scheduler.tasks_left(worker).is_some() {
                        if let Message::Compute { task, .. } = &message {
                            self.note_limited_placement(worker, &task.name, task.position);
                        }
                    }
                    self.send_to_worker(worker, message, comm);
                }
                Command::Steal { worker, task } => {
                    self.send_to_worker(worker, Message::Steal { task }, comm)
                }
                Command::Free { worker, task } => {
                    self.send_to_worker(worker, Message::Free { tasks: vec![task] }, comm)
                }
                Command::Replicate {
                    worker,
                    task,
                    holders,
                } => {
                    let holders = self.data_addresses(&holders);
                    self.send_to_worker(worker, Message::Replicate { task, holders }, comm)
                }
                Command::Retired { worker } => self.worker_retired(worker, comm),
                Command::Cancel { worker, task } => {
                    self.send_to_worker(worker, Message::Drop { task }, comm)
                }
                Command::Done { task } => {
                    // Nobody reads a graph intermediate's or a released task's result
                    // on the client: it stays on its workers, and the client hears
                    // nothing (its failure still reaches it, as `Failed`).
                    let Some(record) = self.records.get(task) else {
                        continue;
                    };
                    let (wanted, owner) = (record.task.wanted(), record.task.owner());
                    let result = self.records.take_result(task);
                    if !wanted {
                        continue;
                    }
                    // A client whose queue is full fetches the result from a worker.
                    let result = result.filter(|bytes| comm.has_room(owner, bytes.len()));
                    let holders = if result.is_some() {
                        delivered.push(task);
                        Vec::new()
                    } else {
                        self.data_addresses(self.scheduler.who_has(task))
                    };
                    let done = Message::Done {
                        task,
                        result,
                        holders,
                    };
                    self.send_to_owner(task, done, comm);
                }
                Command::Erred { task, cause } => {
                    let error = self.records.error_for(task, cause);
                    self.events.emit_with(|| Observed::TaskFailed {
                        task,
                        worker: None,
                        kind: FailureKind::from(&error.kind),
                    });
                    let failed = Message::Failed {
                        task,
                        error: Box::new(error),
                    };
                    self.send_to_owner(task, failed, comm);
                }
                Command::NoWorkerFits { task, reason } => {
                    // The `Erred` that follows sends it.
                    let error = self
                        .records
                        .new_error(task, TaskErrorKind::Runtime, &reason);
                    self.records.set_error(task, error);
                }
                Command::Lost { task, attempts } => {
                    self.events.emit_with(|| Observed::TaskFailed {
                        task,
                        worker: None,
                        kind: FailureKind::WorkerLost,
                    });
                    let reason = self.lost_reasons.remove(&task).unwrap_or_default();
                    let error = self.records.new_error(
                        task,
                        TaskErrorKind::WorkerLost { attempts },
                        &reason,
                    );
                    let failed = Message::Failed {
                        task,
                        error: Box::new(error),
                    };
                    self.send_to_owner(task, failed, comm);
                }
                Command::Cancelled { task } => {
                    self.events.emit_with(|| Observed::TaskFailed {
                        task,
                        worker: None,
                        kind: FailureKind::Cancelled,
                    });
                    let error = self.records.new_error(
                        task,
                        TaskErrorKind::Cancelled,
                        "cancelled before it finished",
                    );
                    let failed = Message::Failed {
                        task,
                        error: Box::new(error),
                    };
                    self.send_to_owner(task, failed, comm);
                }
            }
        }
        // Keep the buffer's capacity for the next event.
        self.commands = commands;
        for task in delivered {
            self.feed(crate::Event::Delivered { task });
        }
        if !self.commands.is_empty() {
            // A worker that only waited for the client to have its results retires.
            self.carry_out(comm);
            return;
        }
        self.forward_events(comm);
    }
}
