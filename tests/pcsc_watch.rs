//! The PC/SC watcher against the real thing: a private pcscd, vpcd's virtual readers and
//! vicc's virtual card (see `common::pcsc`).
//!
//! The watcher runs in this process, and libpcsclite reads `PCSCLITE_CSOCK_NAME` once per
//! process and caches it. So every test here calls `process_socket()` (which sets that
//! variable once, before the first PC/SC context) and starts its own pcscd on that same
//! path, on fresh ports; the tests are serialised. pcscd polls vpcd every 400 ms: event
//! timeouts are generous.

mod common;

use std::fs;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use certray::token::pcsc::{PcscEvent, PcscWatcher, ReaderState, THREAD_NAME};
use common::pcsc::{Pcscd, VICC_ATR, Vicc, process_socket};
use serial_test::serial;

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

struct Watched {
    watcher: PcscWatcher,
    events: Receiver<PcscEvent>,
}

/// Spawn a watcher whose events arrive on a channel.
fn watch() -> Watched {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("certray=debug")
        .with_test_writer()
        .with_ansi(false)
        .try_init();
    let (tx, events) = mpsc::channel();
    let watcher = PcscWatcher::spawn(move |e| {
        let _ = tx.send(e);
    })
    .expect("spawn the watcher");
    Watched { watcher, events }
}

impl Watched {
    fn next(&self, waiting_for: &str) -> PcscEvent {
        match self.events.recv_timeout(EVENT_TIMEOUT) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no event within {EVENT_TIMEOUT:?}; expected {waiting_for}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the watcher thread ended; expected {waiting_for}")
            }
        }
    }

    fn expect(&self, expected: PcscEvent) {
        let got = self.next(&format!("{expected:?}"));
        assert_eq!(got, expected);
    }

    /// The next event must be ServiceDown; returns its reason.
    fn expect_service_down(&self) -> String {
        match self.next("ServiceDown") {
            PcscEvent::ServiceDown { reason } => reason,
            other => panic!("expected ServiceDown, got {other:?}"),
        }
    }

    /// No event for `d`.
    fn quiet(&self, d: Duration) {
        if let Ok(e) = self.events.recv_timeout(d) {
            panic!("unexpected event {e:?}");
        }
    }

    /// Drop the watcher and check that it stops promptly.
    fn stop(self) {
        let t = Instant::now();
        drop(self.watcher);
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "dropping the watcher took {took:?}"
        );
    }
}

fn added(reader: &str) -> PcscEvent {
    PcscEvent::ReaderAdded {
        reader: reader.into(),
    }
}

fn inserted(reader: &str) -> PcscEvent {
    PcscEvent::CardInserted {
        reader: reader.into(),
        atr: VICC_ATR.to_vec(),
    }
}

fn card_removed(reader: &str) -> PcscEvent {
    PcscEvent::CardRemoved {
        reader: reader.into(),
    }
}

fn state(reader: &str, atr: Option<&[u8]>) -> ReaderState {
    ReaderState {
        name: reader.into(),
        atr: atr.map(<[u8]>::to_vec),
    }
}

#[test]
#[serial(pcsc_watch)]
fn readers_then_card_inserted_and_removed() {
    let pcscd = Pcscd::start_at(process_socket());
    let [r0, r1] = pcscd.reader_names();
    let w = watch();
    w.expect(added(&r0));
    w.expect(added(&r1));
    w.quiet(Duration::from_millis(800));
    assert_eq!(w.watcher.snapshot(), [state(&r0, None), state(&r1, None)]);

    let vicc = Vicc::insert(&pcscd);
    w.expect(inserted(&r0));
    assert_eq!(
        w.watcher.snapshot(),
        [state(&r0, Some(&VICC_ATR)), state(&r1, None)]
    );

    vicc.remove();
    w.expect(card_removed(&r0));
    w.quiet(Duration::from_millis(800));
    assert_eq!(w.watcher.snapshot(), [state(&r0, None), state(&r1, None)]);
    w.stop();
}

/// How pcscd goes away in the restart tests.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// SIGTERM, as a service manager stops it.
    Stop,
    /// SIGKILL: a crash.
    Crash,
}

#[test]
#[serial(pcsc_watch)]
fn pcscd_restart_with_the_card_present_reports_the_card_once() {
    restart_with_card_present(Outage::Stop);
}

#[test]
#[serial(pcsc_watch)]
fn pcscd_crash_with_the_card_present_reports_the_card_once() {
    restart_with_card_present(Outage::Crash);
}

fn restart_with_card_present(outage: Outage) {
    let mut pcscd = Pcscd::start_at(process_socket());
    let [r0, r1] = pcscd.reader_names();
    let first_card = Vicc::insert(&pcscd);
    let w = watch();
    w.expect(added(&r0));
    w.expect(added(&r1));
    w.expect(inserted(&r0));

    // vicc exits with the daemon; the new daemon gets the card before clients can see it.
    if let Outage::Crash = outage {
        pcscd.kill();
    }
    let card = pcscd.restart_with(Vicc::insert);
    drop(first_card);

    let reason = w.expect_service_down();
    eprintln!("ServiceDown reason on pcscd {outage:?}: {reason}");
    w.expect(PcscEvent::ServiceUp);
    // Present before and after the restart: not reported again.
    w.quiet(Duration::from_secs(2));
    assert_eq!(
        w.watcher.snapshot(),
        [state(&r0, Some(&VICC_ATR)), state(&r1, None)]
    );

    // Events resume.
    card.remove();
    w.expect(card_removed(&r0));
    w.quiet(Duration::from_millis(800));
    w.stop();
}

#[test]
#[serial(pcsc_watch)]
fn card_removed_while_pcscd_was_down_is_reported_removed() {
    let mut pcscd = Pcscd::start_at(process_socket());
    let [r0, r1] = pcscd.reader_names();
    let card = Vicc::insert(&pcscd);
    let w = watch();
    w.expect(added(&r0));
    w.expect(added(&r1));
    w.expect(inserted(&r0));

    // The card leaves with the old daemon and is not inserted again.
    pcscd.restart();
    drop(card);

    w.expect_service_down();
    w.expect(PcscEvent::ServiceUp);
    w.expect(card_removed(&r0));
    w.quiet(Duration::from_millis(800));
    assert_eq!(w.watcher.snapshot(), [state(&r0, None), state(&r1, None)]);
    w.stop();
}

#[test]
#[serial(pcsc_watch)]
fn pcscd_not_running_at_spawn() {
    let mut pcscd = Pcscd::stopped_at(process_socket());
    let [r0, r1] = pcscd.reader_names();
    let w = watch();
    let reason = w.expect_service_down();
    eprintln!("ServiceDown reason with no pcscd: {reason}");
    // Reported once per outage, not once per retry (100, 200, 400, 800 ms…).
    w.quiet(Duration::from_millis(1600));
    assert_eq!(w.watcher.snapshot(), []);

    pcscd.restart();
    w.expect(PcscEvent::ServiceUp);
    w.expect(added(&r0));
    w.expect(added(&r1));
    w.quiet(Duration::from_millis(800));
    w.stop();
}

#[test]
#[serial(pcsc_watch)]
fn no_readers_then_readers_then_none() {
    let mut pcscd = Pcscd::stopped_at(process_socket());
    let [r0, r1] = pcscd.reader_names();
    pcscd.set_vpcd(false);
    pcscd.restart();
    // pcscd up without readers (SCardListReaders says NoReadersAvailable): nothing to
    // report, and the watcher waits on PnP only, without spinning.
    let w = watch();
    let tid = watcher_tid();
    let before = thread_cpu(&tid);
    w.quiet(Duration::from_millis(1500));
    let used = thread_cpu(&tid) - before;
    assert!(
        used < Duration::from_millis(30),
        "the watcher used {used:?} of CPU waiting without readers"
    );
    assert_eq!(w.watcher.snapshot(), []);

    pcscd.set_vpcd(true);
    pcscd.restart();
    w.expect_service_down();
    w.expect(PcscEvent::ServiceUp);
    w.expect(added(&r0));
    w.expect(added(&r1));
    let card = Vicc::insert(&pcscd);
    w.expect(inserted(&r0));

    // The readers disappear (with the card in one) while the service is away.
    pcscd.set_vpcd(false);
    pcscd.restart();
    drop(card);
    w.expect_service_down();
    w.expect(PcscEvent::ServiceUp);
    w.expect(card_removed(&r0));
    w.expect(PcscEvent::ReaderRemoved { reader: r0.clone() });
    w.expect(PcscEvent::ReaderRemoved { reader: r1.clone() });
    w.quiet(Duration::from_millis(800));
    assert_eq!(w.watcher.snapshot(), []);
    w.stop();
}

#[test]
#[serial(pcsc_watch)]
fn drop_interrupts_the_back_off() {
    let _pcscd = Pcscd::stopped_at(process_socket());
    let w = watch();
    w.expect_service_down();
    // By now the watcher sleeps for 1.6 s or 3.2 s before its next attempt.
    std::thread::sleep(Duration::from_millis(1700));
    w.stop();
}

#[test]
#[serial(pcsc_watch)]
fn idle_watcher_uses_no_cpu() {
    let pcscd = Pcscd::start_at(process_socket());
    let [r0, r1] = pcscd.reader_names();
    let _card = Vicc::insert(&pcscd);
    let w = watch();
    w.expect(added(&r0));
    w.expect(added(&r1));
    w.expect(inserted(&r0));

    let tid = watcher_tid();
    let before = thread_cpu(&tid);
    std::thread::sleep(Duration::from_secs(3));
    let used = thread_cpu(&tid) - before;
    eprintln!("watcher thread CPU over 3 s idle: {used:?}");
    assert!(
        used < Duration::from_millis(30),
        "the idle watcher thread used {used:?} of CPU in 3 s"
    );
    w.quiet(Duration::ZERO);
    w.stop();
}

/// Not a watcher test: the harness gives each `Pcscd::start()` its own socket and ports, so
/// daemons (and the programs given their `env()`) do not see each other. No `serial`.
#[test]
fn private_daemons_run_side_by_side() {
    let scan = common::require("pcsc_scan", "pcsc-tools");
    let a = Pcscd::start();
    let b = Pcscd::start();
    assert_ne!(a.socket(), b.socket());
    assert_ne!(a.vicc_port(), b.vicc_port());
    let _card = Vicc::insert(&b);
    let cards = |p: &Pcscd| {
        let out = common::run(
            std::process::Command::new(&scan)
                .args(["-c", "-n"])
                .envs(p.env()),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let atr = "3B 95 13 81 01 80 73 FF 01 00 0B";
    let (in_a, in_b) = (cards(&a), cards(&b));
    assert!(in_b.contains(atr), "no card in b:\n{in_b}");
    assert!(!in_a.contains(atr), "b's card seen in a:\n{in_a}");
    assert!(in_a.contains(&a.reader_name()), "{in_a}");
}

/// The id of this process's watcher thread, found by its name (which the new thread sets
/// itself, so it may take a moment to appear).
fn watcher_tid() -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
            let entry = entry.expect("task entry");
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == THREAD_NAME {
                found.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        match found.len() {
            1 => return found.remove(0),
            0 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => panic!("threads named {THREAD_NAME}: {found:?}"),
        }
    }
}

/// CPU time of a thread of this process: `schedstat` (ns) when the kernel has it, else
/// utime + stime from `stat` (clock ticks, 100 per second on Linux).
fn thread_cpu(tid: &str) -> Duration {
    let dir = format!("/proc/self/task/{tid}");
    if let Ok(s) = fs::read_to_string(format!("{dir}/schedstat"))
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return Duration::from_nanos(ns);
    }
    let stat = fs::read_to_string(format!("{dir}/stat")).expect("read thread stat");
    // "TID (comm) STATE ..."; utime and stime are fields 14 and 15.
    let after_comm = &stat[stat.rfind(')').expect("stat comm") + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}
