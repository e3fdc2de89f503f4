//! Plain closures run as tasks on the local plans.

mod common;

use common::{start, LOCAL_PLANS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn a_closure_is_submitted_like_a_task() {
    for plan in LOCAL_PLANS {
        let client = start(plan);
        assert_eq!(
            client.submit(|x: u64| x + 1, 1).value().unwrap(),
            2,
            "{plan}"
        );
        let future = client.submit(
            |(a, b): (String, u32)| a.repeat(b as usize),
            ("ab".into(), 3),
        );
        assert_eq!(future.task_name(), "closure");
        assert_eq!(future.value().unwrap(), "ababab");
    }
}

#[test]
fn closures_may_capture_shared_state() {
    let total = Arc::new(AtomicU64::new(0));
    let client = start("threads:2");
    let futures: Vec<_> = (1..=100u64)
        .map(|x| {
            let total = total.clone();
            client.submit(move |x: u64| total.fetch_add(x, Ordering::SeqCst), x)
        })
        .collect();
    client.gather(futures).unwrap();
    assert_eq!(total.load(Ordering::SeqCst), 5050);
}
