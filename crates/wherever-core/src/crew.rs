//! A crew of threads fed from one queue, where a job that blocks secedes.
//!
//! Each thread takes jobs from the queue and runs them. A job that blocks waiting
//! on other jobs (through [`crate::scope::while_blocked`]) secedes: a stand-in
//! thread takes its place for the wait, and when the job rejoins one thread of the
//! crew retires after its current job, so the crew returns to its size and waiting
//! jobs never starve the jobs they wait for.
//!
//! What a job is, what a thread does when it starts and what seceding means beyond
//! the stand-in is up to the [`CrewWork`]: the thread pool of the facade and the
//! task threads of a cluster worker are both crews.

use crossbeam_channel::Receiver;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a [`Crew`]'s threads do: run jobs, and what seceding means to them.
pub trait CrewWork: Send + Sync + 'static {
    /// One unit of work taken from the queue.
    type Job: Send + 'static;
    /// What a thread is told when it starts (for example a label to report).
    type Thread: Send + 'static;
    /// What a blocked job is to the work while it is seceded (for example its id).
    type Blocked: Send + 'static;

    /// Runs on each new thread before it takes any job.
    fn start_thread(&self, thread: Self::Thread);

    /// Runs one job; `false` stops the thread that ran it.
    fn run(&self, job: Self::Job) -> bool;

    /// The job running in this thread blocks: what stands in for it, or `None`
    /// to wait without seceding.
    fn stand_in(&self) -> Option<StandIn<Self>>;

    /// The stand-in thread has started for `blocked`.
    fn seceded(&self, blocked: &Self::Blocked);

    /// The wait of `blocked` is over; one thread will retire.
    fn rejoined(&self, blocked: Self::Blocked);
}

/// The stand-in thread started for a job that blocks.
pub struct StandIn<W: CrewWork + ?Sized> {
    /// The stand-in thread's name.
    pub name: String,
    /// What the stand-in thread is told when it starts.
    pub thread: W::Thread,
    /// The blocked job, handed to [`CrewWork::seceded`] and [`CrewWork::rejoined`].
    pub blocked: W::Blocked,
}

/// Threads fed from one queue; see the [module documentation](self).
///
/// Threads exit when the queue is closed and empty (every sender dropped), when
/// [`CrewWork::run`] returns `false`, or when they retire after a rejoin. A job
/// that panics ends its thread, as a panic ends any thread; works that must keep
/// their threads catch panics in [`CrewWork::run`].
pub struct Crew<W: CrewWork> {
    work: Arc<W>,
    jobs: Receiver<W::Job>,
    retire: Arc<AtomicUsize>,
}

impl<W: CrewWork> Clone for Crew<W> {
    fn clone(&self) -> Self {
        Crew {
            work: self.work.clone(),
            jobs: self.jobs.clone(),
            retire: self.retire.clone(),
        }
    }
}

impl<W: CrewWork> Crew<W> {
    /// A crew doing `work` on the jobs from `jobs`, with no threads yet.
    pub fn new(work: W, jobs: Receiver<W::Job>) -> Self {
        Crew {
            work: Arc::new(work),
            jobs,
            retire: Arc::default(),
        }
    }

    /// Starts one more thread, named `name`, that is told `thread` when it starts.
    pub fn spawn_thread(&self, name: String, thread: W::Thread) -> std::io::Result<()> {
        let crew = self.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || crew.serve(thread))?;
        Ok(())
    }

    /// The body of each thread.
    fn serve(self, thread: W::Thread) {
        self.work.start_thread(thread);
        let hook_crew = self.clone();
        crate::scope::set_secede_hook(Arc::new(move || hook_crew.secede()));
        for job in &self.jobs {
            if !self.work.run(job) {
                return;
            }
            if self.take_retirement() {
                return;
            }
        }
    }

    /// Whether this thread is the one to retire (and if so counts it retired).
    fn take_retirement(&self) -> bool {
        self.retire
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Starts a stand-in thread; the returned function rejoins (one thread retires).
    fn secede(&self) -> Box<dyn FnOnce()> {
        let Some(stand_in) = self.work.stand_in() else {
            return Box::new(|| {});
        };
        if self.spawn_thread(stand_in.name, stand_in.thread).is_err() {
            return Box::new(|| {});
        }
        self.work.seceded(&stand_in.blocked);
        let crew = self.clone();
        let blocked = stand_in.blocked;
        Box::new(move || {
            crew.work.rejoined(blocked);
            crew.retire.fetch_add(1, Ordering::AcqRel);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{in_task, while_blocked};
    use crate::StreamKey;
    use crossbeam_channel::{unbounded, Sender};
    use std::cell::RefCell;
    use std::time::Duration;

    /// A hang guard only: no test asserts on how long anything takes.
    const HANG_GUARD: Duration = Duration::from_secs(60);

    type Job = Box<dyn FnOnce() -> bool + Send>;

    /// Counts the live threads of a crew; each thread's exit is reported on `exits`.
    struct LiveThread {
        live: Arc<AtomicUsize>,
        exits: Sender<()>,
    }

    impl Drop for LiveThread {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::AcqRel);
            let _ = self.exits.send(());
        }
    }

    thread_local! {
        static LIVE: RefCell<Option<LiveThread>> = const { RefCell::new(None) };
    }

    struct TestWork {
        live: Arc<AtomicUsize>,
        exits: Sender<()>,
        starts: Sender<()>,
        events: Sender<&'static str>,
    }

    impl CrewWork for TestWork {
        type Job = Job;
        type Thread = ();
        type Blocked = ();

        fn start_thread(&self, (): ()) {
            self.live.fetch_add(1, Ordering::AcqRel);
            let guard = LiveThread {
                live: self.live.clone(),
                exits: self.exits.clone(),
            };
            LIVE.with(|slot| *slot.borrow_mut() = Some(guard));
            let _ = self.starts.send(());
        }

        fn run(&self, job: Job) -> bool {
            job()
        }

        fn stand_in(&self) -> Option<StandIn<Self>> {
            Some(StandIn {
                name: "test-stand-in".into(),
                thread: (),
                blocked: (),
            })
        }

        fn seceded(&self, (): &()) {
            let _ = self.events.send("seceded");
        }

        fn rejoined(&self, (): ()) {
            let _ = self.events.send("rejoined");
        }
    }

    struct Fixture {
        queue: Sender<Job>,
        live: Arc<AtomicUsize>,
        exits: crossbeam_channel::Receiver<()>,
        starts: crossbeam_channel::Receiver<()>,
        events: crossbeam_channel::Receiver<&'static str>,
    }

    fn crew_of(threads: usize) -> Fixture {
        let (queue, jobs) = unbounded::<Job>();
        let (exit_sender, exits) = unbounded();
        let (event_sender, events) = unbounded();
        let (start_sender, starts) = unbounded();
        let live = Arc::new(AtomicUsize::new(0));
        let crew = Crew::new(
            TestWork {
                live: live.clone(),
                exits: exit_sender,
                starts: start_sender,
                events: event_sender,
            },
            jobs,
        );
        for index in 0..threads {
            crew.spawn_thread(format!("test-thread-{index}"), ())
                .expect("spawn");
        }
        for _ in 0..threads {
            starts.recv_timeout(HANG_GUARD).expect("a thread starts");
        }
        Fixture {
            queue,
            live,
            exits,
            starts,
            events,
        }
    }

    /// Runs `job` on the crew and waits for it to finish.
    fn run_on(fixture: &Fixture, job: impl FnOnce() + Send + 'static) {
        let (done, finished) = unbounded();
        fixture
            .queue
            .send(Box::new(move || {
                job();
                let _ = done.send(());
                true
            }))
            .expect("crew alive");
        finished.recv_timeout(HANG_GUARD).expect("the job ran");
    }

    #[test]
    fn a_blocked_job_lets_the_next_job_run_on_a_one_thread_crew() {
        let fixture = crew_of(1);
        let (release, released) = unbounded::<u32>();
        let (result, results) = unbounded();
        fixture
            .queue
            .send(Box::new(move || {
                let got = in_task(StreamKey::from_seed(0), false, 0, || {
                    while_blocked(|| released.recv_timeout(HANG_GUARD))
                });
                let _ = result.send(got.ok());
                true
            }))
            .unwrap();
        fixture
            .queue
            .send(Box::new(move || {
                release.send(7).unwrap();
                true
            }))
            .unwrap();
        assert_eq!(results.recv_timeout(HANG_GUARD).unwrap(), Some(7));
        let events: Vec<_> = (0..2)
            .map(|_| fixture.events.recv_timeout(HANG_GUARD).unwrap())
            .collect();
        assert_eq!(events, ["seceded", "rejoined"]);
    }

    #[test]
    fn after_a_rejoin_the_crew_returns_to_its_size() {
        let fixture = crew_of(2);
        let (release, released) = unbounded::<()>();
        let (waiting, is_waiting) = unbounded::<()>();
        fixture
            .queue
            .send(Box::new(move || {
                in_task(StreamKey::from_seed(0), false, 0, || {
                    while_blocked(|| {
                        waiting.send(()).unwrap();
                        released.recv_timeout(HANG_GUARD).unwrap()
                    })
                });
                true
            }))
            .unwrap();
        is_waiting.recv_timeout(HANG_GUARD).unwrap();
        fixture
            .starts
            .recv_timeout(HANG_GUARD)
            .expect("a stand-in starts");
        assert_eq!(
            fixture.live.load(Ordering::Acquire),
            3,
            "a stand-in started"
        );
        release.send(()).unwrap();
        // The rejoin comes before the blocked job ends, so its thread retires then.
        fixture
            .exits
            .recv_timeout(HANG_GUARD)
            .expect("a thread retires");
        assert_eq!(fixture.live.load(Ordering::Acquire), 2);
        // Only one thread retires.
        for _ in 0..20 {
            run_on(&fixture, || {});
        }
        assert!(fixture.exits.try_recv().is_err());
        assert_eq!(fixture.live.load(Ordering::Acquire), 2);
    }

    #[test]
    fn without_a_task_scope_a_wait_does_not_secede() {
        let fixture = crew_of(1);
        run_on(&fixture, || {
            while_blocked(|| ());
        });
        assert!(fixture.events.try_recv().is_err());
        assert_eq!(fixture.live.load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_job_returning_false_stops_its_thread() {
        let fixture = crew_of(1);
        fixture.queue.send(Box::new(|| false)).unwrap();
        fixture
            .exits
            .recv_timeout(HANG_GUARD)
            .expect("the thread exits");
        assert_eq!(fixture.live.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_panicking_job_ends_its_thread_and_only_that_thread() {
        let fixture = crew_of(2);
        fixture
            .queue
            .send(Box::new(|| panic!("a job that panics")))
            .unwrap();
        fixture
            .exits
            .recv_timeout(HANG_GUARD)
            .expect("the thread exits");
        assert_eq!(fixture.live.load(Ordering::Acquire), 1);
        run_on(&fixture, || {});
    }

    #[test]
    fn closing_the_queue_ends_every_thread() {
        let fixture = crew_of(3);
        drop(fixture.queue);
        for _ in 0..3 {
            fixture
                .exits
                .recv_timeout(HANG_GUARD)
                .expect("a thread exits");
        }
        assert_eq!(fixture.live.load(Ordering::Acquire), 0);
    }
}
