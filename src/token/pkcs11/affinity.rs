//! Where a worker thread runs. A blocking caller does nothing but wait for the worker's
//! answer, so it and the worker share the caller's CPU for the request
//! ([`Worker::join_caller`]): the hand-over is then a switch between two threads on one CPU
//! instead of waking another CPU, which in a virtual machine with an idle vCPU costs
//! 50–150 µs each way, up to a sixth of an RSA-2048 signature on SoftHSM (`cargo bench
//! --bench token_sign`). The worker keeps that CPU for the next request and may run
//! anywhere again once idle for [`RELEASE_AFTER`] ([`Worker::release`]). Async callers (the
//! bridge) do not do this: their thread goes on with other tasks meanwhile.
//!
//! Every worker has its own: the module thread and each token's thread. A token's thread is
//! started by the module thread, which may be on a caller's CPU at that moment; it takes the
//! module thread's own CPU set as its home ([`Worker::started_from`]) rather than the one
//! CPU it inherited. Linux only; a no-op elsewhere.

#[cfg(target_os = "linux")]
use std::cell::Cell;
#[cfg(target_os = "linux")]
use std::sync::OnceLock;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// How long the worker stays on its last caller's CPU once requests stop.
pub const RELEASE_AFTER: Duration = Duration::from_millis(100);

#[cfg(target_os = "linux")]
thread_local! {
    /// A caller thread's own CPU set, read once.
    static OWN: Cell<Option<libc::cpu_set_t>> = const { Cell::new(None) };
}

#[derive(Default)]
pub struct Worker {
    /// The worker's thread id, once it runs.
    #[cfg(target_os = "linux")]
    tid: AtomicI32,
    /// The CPUs it may use when no caller lends it one.
    #[cfg(target_os = "linux")]
    home: OnceLock<libc::cpu_set_t>,
    /// The CPU a caller has pinned it to, plus one (0: not pinned).
    #[cfg(target_os = "linux")]
    pinned: AtomicI32,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("affinity::Worker")
    }
}

#[cfg(target_os = "linux")]
impl Worker {
    /// On the worker thread, first thing.
    pub fn started(&self) {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
        if let Some(set) = this_thread() {
            let _ = self.home.set(set);
        }
    }

    /// On a worker thread started by the thread `parent` serves, first thing: its home is
    /// `parent`'s home, and it moves there (the CPU it inherited may be a caller's, lent
    /// to `parent` for one request).
    pub fn started_from(&self, parent: &Worker) {
        // SAFETY: gettid has no preconditions.
        self.tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
        match parent.home.get() {
            Some(home) if set_thread(0, home) => {
                let _ = self.home.set(*home);
            }
            _ => {
                if let Some(set) = this_thread() {
                    let _ = self.home.set(set);
                }
            }
        }
    }

    /// On a caller's thread, before it sends a request and waits: the worker and this
    /// thread share this CPU until the returned guard drops (after the answer), so that
    /// neither the request nor the answer wakes another CPU. The worker stays there
    /// for the next request (see [`RELEASE_AFTER`]); this thread gets its CPUs back.
    pub fn join_caller(&self) -> Together {
        let tid = self.tid.load(Ordering::SeqCst);
        // SAFETY: sched_getcpu has no preconditions.
        let cpu = unsafe { libc::sched_getcpu() };
        // Without its own CPU set the worker could never be given it back.
        if tid == 0 || cpu < 0 || self.home.get().is_none() {
            return Together { own: None };
        }
        let Some(own) = OWN.with(|o| {
            if o.get().is_none() {
                o.set(this_thread());
            }
            o.get()
        }) else {
            return Together { own: None };
        };
        // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it
        // (sched_getcpu answers below CPU_SETSIZE).
        let one = unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            one
        };
        if self.pinned.load(Ordering::SeqCst) != cpu + 1 {
            // A worker thread that has ended makes this fail, harmlessly.
            if !set_thread(tid, &one) {
                return Together { own: None };
            }
            self.pinned.store(cpu + 1, Ordering::SeqCst);
        }
        if !set_thread(0, &one) {
            return Together { own: None };
        }
        Together { own: Some(own) }
    }

    /// On the worker thread, once idle: it may run anywhere again.
    pub fn release(&self) {
        if self.pinned.swap(0, Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(set) = self.home.get() {
            set_thread(0, set);
        }
    }
}

/// The calling thread's CPU set.
#[cfg(target_os = "linux")]
fn this_thread() -> Option<libc::cpu_set_t> {
    // SAFETY: a zeroed cpu_set_t is a valid (empty) set, and the size passed is its own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
            .then_some(set)
    }
}

/// Move thread `tid` (0: the calling one) onto `set`; false if the kernel refused.
#[cfg(target_os = "linux")]
fn set_thread(tid: libc::pid_t, set: &libc::cpu_set_t) -> bool {
    // SAFETY: `set` is a whole cpu_set_t and the size passed is its own.
    unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), set) == 0 }
}

/// A caller kept on one CPU with the worker; dropping it gives the caller back the
/// CPUs it had.
pub struct Together {
    #[cfg(target_os = "linux")]
    own: Option<libc::cpu_set_t>,
}

#[cfg(target_os = "linux")]
impl Drop for Together {
    fn drop(&mut self) {
        if let Some(own) = &self.own {
            set_thread(0, own);
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl Worker {
    pub fn started(&self) {}
    pub fn started_from(&self, _parent: &Worker) {}
    pub fn join_caller(&self) -> Together {
        Together {}
    }
    pub fn release(&self) {}
}
