//! Insertion and removal events.
//!
//! The test plugs and unplugs keys by rewriting `SOFTSKF_DIR/presence` (from any process).
//! A watcher thread blocks in inotify on the directory and, when `presence` changes, diffs it
//! against what this process saw last and queues insert/remove events. `SKF_WaitForDevEvent`
//! sleeps on a condition variable until an event or a cancel arrives: nothing polls.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchMask};

use crate::store::PRESENCE_FILE;
use crate::types::ULONG;

/// Events kept for a process that does not wait; older ones are dropped.
const MAX_QUEUED: usize = 64;

pub enum Wait {
    Event {
        name: Vec<u8>,
        event: ULONG,
    },
    /// The name needs this many bytes, its NUL included; the event stays queued.
    TooSmall(usize),
    Cancelled,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<(Vec<u8>, ULONG)>,
    waiters: usize,
    /// Bumped by each cancel that found waiters.
    cancel_generation: u64,
    cancelled_at: Option<Instant>,
    /// A cancel that found no waiter, kept for the next wait (not under cancel-lost-if-idle).
    pending_cancel: bool,
}

#[derive(Default)]
pub struct Events {
    queue: Mutex<Queue>,
    cv: Condvar,
}

impl Events {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, name: Vec<u8>, event: ULONG) {
        let mut q = self.lock();
        if q.events.len() == MAX_QUEUED {
            q.events.pop_front();
        }
        q.events.push_back((name, event));
        self.cv.notify_all();
    }

    /// Block until an event or a cancel. `capacity` is the caller's name buffer size.
    /// `longmai` imitates cancel-lost-if-idle: a cancel takes effect 1 s after it was issued.
    pub fn wait(&self, capacity: usize, longmai: bool) -> Wait {
        let mut q = self.lock();
        if q.pending_cancel {
            q.pending_cancel = false;
            return Wait::Cancelled;
        }
        let generation = q.cancel_generation;
        q.waiters += 1;
        let result = loop {
            if q.cancel_generation != generation {
                if longmai {
                    // Longmai: the wait returns about 1 s after the cancel.
                    let due = q.cancelled_at.unwrap_or_else(Instant::now) + Duration::from_secs(1);
                    while let Some(left) = due.checked_duration_since(Instant::now()) {
                        q = self
                            .cv
                            .wait_timeout(q, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
                break Wait::Cancelled;
            }
            if let Some((name, event)) = q.events.front() {
                if name.len() + 1 > capacity {
                    break Wait::TooSmall(name.len() + 1);
                }
                let (name, event) = (name.clone(), *event);
                q.events.pop_front();
                break Wait::Event { name, event };
            }
            q = self.cv.wait(q).unwrap_or_else(|p| p.into_inner());
        };
        q.waiters -= 1;
        result
    }

    /// Wake the pending waits. Without waiters the cancel is kept for the next wait, unless
    /// `longmai` (cancel-lost-if-idle), where it is forgotten and the call itself takes 2 s.
    pub fn cancel(&self, longmai: bool) {
        {
            let mut q = self.lock();
            if q.waiters > 0 {
                q.cancel_generation += 1;
                q.cancelled_at = Some(Instant::now());
                self.cv.notify_all();
            } else if !longmai {
                q.pending_cancel = true;
            }
        }
        if longmai {
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// Start a thread that calls `changed` whenever `dir/presence` is rewritten. It blocks in
/// inotify; the library is linked with `-z nodelete` (build.rs), so unloading it cannot pull
/// the code from under this thread.
pub fn watch(dir: PathBuf, changed: impl Fn() + Send + 'static) -> Result<(), String> {
    let mut inotify = Inotify::init().map_err(|e| format!("inotify: {e}"))?;
    inotify
        .watches()
        .add(
            &dir,
            WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::CREATE
                | WatchMask::DELETE,
        )
        .map_err(|e| format!("inotify {}: {e}", dir.display()))?;
    std::thread::Builder::new()
        .name("softskf-presence".into())
        .spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let events = match inotify.read_events_blocking(&mut buffer) {
                    Ok(events) => events,
                    Err(e) => {
                        eprintln!("softskf: presence watcher stops: {e}");
                        return;
                    }
                };
                if events
                    .into_iter()
                    .any(|e| e.name.is_some_and(|n| n == PRESENCE_FILE))
                {
                    changed();
                }
            }
        })
        .map_err(|e| format!("spawn: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_returns_queued_event_and_respects_capacity() {
        let ev = Events::default();
        ev.push(b"DEV".to_vec(), 1);
        assert!(matches!(ev.wait(3, false), Wait::TooSmall(4)));
        match ev.wait(4, false) {
            Wait::Event { name, event } => assert_eq!((name, event), (b"DEV".to_vec(), 1)),
            _ => panic!("expected the event"),
        }
    }

    #[test]
    fn cancel_wakes_a_waiter_and_is_remembered_when_idle() {
        let ev = Arc::new(Events::default());
        let waiter = {
            let ev = ev.clone();
            std::thread::spawn(move || matches!(ev.wait(64, false), Wait::Cancelled))
        };
        while ev.lock().waiters == 0 {
            std::thread::yield_now();
        }
        ev.cancel(false);
        assert!(waiter.join().unwrap());
        // Idle cancel: the next wait returns at once.
        ev.cancel(false);
        assert!(matches!(ev.wait(64, false), Wait::Cancelled));
    }

    #[test]
    fn longmai_forgets_an_idle_cancel() {
        let ev = Events::default();
        let t = Instant::now();
        ev.cancel(true);
        assert!(t.elapsed() >= Duration::from_secs(2));
        assert!(!ev.lock().pending_cancel);
    }
}
