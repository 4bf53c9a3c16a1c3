//! softskf: a software GM/T 0016-2012 (SKF) device library, used ONLY by certray's tests as a
//! stand-in for the Chinese PKI USB keys (Longmai, Feitian, Haitai…) that cannot be plugged
//! into CI. It is a mock of hardware, named as such everywhere, and kept honest by referees
//! that are not ours: gcc lays out `include/skf.h` and drives this library from C
//! (`c/client.c`), and OpenSSL verifies every signature it makes.
//!
//! Written from the specification and the facts in `../shared/docs/SKF.md` §3 and §5.2; no
//! third-party SKF code was copied. Its types (`types`) are its own, not certray's.
//!
//! - exports: `extern "system"`, undecorated, the 2012 set certray uses; the ones certray's
//!   loader treats as optional only with the `optional` feature, `SKF_ECCSignData` only with
//!   `ecc-sign` (tests/softskf/build.sh builds the variants);
//! - state: `SOFTSKF_DIR` (see `store`), persistent like a key: PIN counters survive
//!   `SKF_DisConnectDev`, reconnects and process restarts;
//! - presence: the test rewrites `SOFTSKF_DIR/presence`; `SKF_WaitForDevEvent` blocks on a
//!   condition variable fed by an inotify thread (see `events`); handles opened before a
//!   removal answer `SAR_DEVICE_REMOVED`;
//! - vendor quirks (`SOFTSKF_QUIRKS`) and faults (`SOFTSKF_FAULT`): see `config`;
//! - every call is appended to `SOFTSKF_DIR/calls.log` (`<ms> <pid> <tid> enter|exit NAME [rc]`)
//!   so tests can count calls and check that calls do not overlap.
//!
//! Safety of the exports: each one relies on the C contract of GM/T 0016 (`include/skf.h`):
//! pointers are NULL or valid for what the specification says is read or written there.

#![allow(non_snake_case, clippy::missing_safety_doc)]
// The variants without optional exports leave some helpers unused.
#![cfg_attr(
    not(all(feature = "optional", feature = "ecc-sign")),
    allow(dead_code, unused_imports)
)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod config;
mod crypto;
mod events;
mod store;
mod types;

use std::collections::{BTreeSet, HashMap};
use std::ffi::{CStr, CString, c_char};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use config::{Config, Fault, Quirk};
use crypto::{DEFAULT_ID, Hasher, Key};
use events::{Events, Wait};
use store::{Attempt, PinRecord, State, Store};
use types::*;

// ---------------------------------------------------------------------------------------------
// Process-wide state
// ---------------------------------------------------------------------------------------------

struct Global {
    config: Config,
    store: Option<Store>,
    inner: Mutex<Inner>,
    events: Events,
    reported: AtomicBool,
}

#[derive(Default)]
struct Inner {
    ready: bool,
    /// Provisioned device names, in order.
    devices: Vec<Vec<u8>>,
    present: BTreeSet<Vec<u8>>,
    /// Bumped at each removal: a handle remembers the epoch it was opened in.
    epochs: HashMap<Vec<u8>, u64>,
    handles: HashMap<usize, Obj>,
    next: usize,
}

enum Obj {
    Dev(Dev),
    App { dev: usize, name: Vec<u8> },
    Con { app: usize, name: Vec<u8> },
    Hash { dev: usize, hasher: Option<Hasher> },
}

struct Dev {
    name: Vec<u8>,
    epoch: u64,
    /// Security state per application name: (user, admin) logged in.
    logins: HashMap<Vec<u8>, (bool, bool)>,
    random: Option<Vec<u8>>,
    authenticated: bool,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

fn global() -> &'static Global {
    GLOBAL.get_or_init(|| {
        let config = Config::from_env();
        let store = config.dir.clone().map(Store::new);
        Global {
            config,
            store,
            inner: Mutex::new(Inner::default()),
            events: Events::default(),
            reported: AtomicBool::new(false),
        }
    })
}

type R<T> = Result<T, ULONG>;

impl Global {
    fn quirk(&self, q: Quirk) -> bool {
        self.config.has(q)
    }

    fn log(&self, name: &str, what: &str, rc: Option<ULONG>) {
        let Some(dir) = &self.config.dir else { return };
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let line = match rc {
            Some(rc) => format!(
                "{ms} {} {tid} {what} {name} 0x{rc:08X}\n",
                std::process::id()
            ),
            None => format!("{ms} {} {tid} {what} {name}\n", std::process::id()),
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("calls.log"))
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("checked in call()")
    }

    fn fail(&self, why: &str) -> ULONG {
        eprintln!("softskf: {why}");
        SAR_FAIL
    }

    /// The handle table, after provisioning (first call) and a presence check.
    fn inner(&'static self) -> R<MutexGuard<'static, Inner>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.ready {
            let names = self
                .store()
                .with(|s| (s.devices.iter().map(|d| d.name.0.clone()).collect(), false))
                .map_err(|e| self.fail(&e))?;
            inner.devices = names;
            inner.present = self.present_now().map_err(|e| self.fail(&e))?;
            events::watch(self.store().dir().to_path_buf(), || {
                let g = global();
                let mut inner = g.inner.lock().unwrap_or_else(|p| p.into_inner());
                g.sync(&mut inner);
            })
            .map_err(|e| self.fail(&e))?;
            inner.ready = true;
        }
        self.sync(&mut inner);
        Ok(inner)
    }

    fn present_now(&self) -> Result<BTreeSet<Vec<u8>>, String> {
        self.store().presence()
    }

    /// Compare `presence` with what this process saw last: queue events, expire handles.
    fn sync(&self, inner: &mut Inner) {
        let Ok(now) = self.present_now() else { return };
        for name in inner.devices.clone() {
            let was = inner.present.contains(&name);
            let is = now.contains(&name);
            if was && !is {
                *inner.epochs.entry(name.clone()).or_default() += 1;
                self.events.push(name, DEV_EVENT_REMOVE);
            } else if !was && is {
                self.events.push(name, DEV_EVENT_INSERT);
            }
        }
        inner.present = now
            .into_iter()
            .filter(|n| inner.devices.contains(n))
            .collect();
    }

    /// Run `f` on the state of the device behind `dev` (a live device handle).
    fn with_device<T>(
        &self,
        inner: &Inner,
        dev: usize,
        f: impl FnOnce(&mut store::Device) -> (R<T>, bool),
    ) -> R<T> {
        let name = inner.dev(dev)?.name.clone();
        self.store()
            .with(|s: &mut State| match s.device_mut(&name) {
                Some(d) => f(d),
                None => (Err(SAR_FAIL), false),
            })
            .map_err(|e| self.fail(&e))?
    }

    fn with_app<T>(
        &self,
        inner: &Inner,
        app: usize,
        f: impl FnOnce(&mut store::Application) -> (R<T>, bool),
    ) -> R<T> {
        let (dev, name) = inner.app(app)?;
        let name = name.to_vec();
        self.with_device(inner, dev, |d| match d.application_mut(&name) {
            Some(a) => f(a),
            None => (Err(SAR_APPLICATION_NOT_EXISTS), false),
        })
    }

    fn with_container<T>(
        &self,
        inner: &Inner,
        con: usize,
        f: impl FnOnce(&mut store::Container) -> (R<T>, bool),
    ) -> R<T> {
        let (app, name) = inner.con(con)?;
        let name = name.to_vec();
        self.with_app(inner, app, |a| match a.container_mut(&name) {
            Some(c) => f(c),
            None => (Err(SAR_FILE_NOT_EXIST), false),
        })
    }
}

impl Inner {
    fn add(&mut self, obj: Obj) -> usize {
        self.next += 1;
        let h = 0x5f_0000 + self.next * 0x10;
        self.handles.insert(h, obj);
        h
    }

    fn alive(&self, dev: &Dev) -> bool {
        self.present.contains(&dev.name)
            && self.epochs.get(&dev.name).copied().unwrap_or(0) == dev.epoch
    }

    fn dev(&self, h: usize) -> R<&Dev> {
        match self.handles.get(&h) {
            Some(Obj::Dev(d)) if self.alive(d) => Ok(d),
            Some(Obj::Dev(_)) => Err(SAR_DEVICE_REMOVED),
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    }

    fn dev_mut(&mut self, h: usize) -> R<&mut Dev> {
        self.dev(h)?;
        match self.handles.get_mut(&h) {
            Some(Obj::Dev(d)) => Ok(d),
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    }

    /// (device handle, application name) of a live application handle.
    fn app(&self, h: usize) -> R<(usize, &[u8])> {
        match self.handles.get(&h) {
            Some(Obj::App { dev, name }) => {
                self.dev(*dev)?;
                Ok((*dev, name))
            }
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    }

    /// (application handle, container name) of a live container handle.
    fn con(&self, h: usize) -> R<(usize, &[u8])> {
        match self.handles.get(&h) {
            Some(Obj::Con { app, name }) => {
                self.app(*app)?;
                Ok((*app, name))
            }
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    }

    fn logins(&mut self, app: usize) -> R<&mut (bool, bool)> {
        let (dev, name) = self.app(app)?;
        let name = name.to_vec();
        Ok(self.dev_mut(dev)?.logins.entry(name).or_default())
    }

    fn user_logged_in_for_container(&mut self, con: usize) -> R<bool> {
        let (app, _) = self.con(con)?;
        Ok(self.logins(app)?.0)
    }

    /// Drop `h` and every handle opened through it.
    fn close_tree(&mut self, h: usize) {
        self.handles.remove(&h);
        loop {
            let orphans: Vec<usize> = self
                .handles
                .iter()
                .filter(|(_, o)| {
                    let parent = match o {
                        Obj::Dev(_) => return false,
                        Obj::App { dev, .. } | Obj::Hash { dev, .. } => *dev,
                        Obj::Con { app, .. } => *app,
                    };
                    !self.handles.contains_key(&parent)
                })
                .map(|(h, _)| *h)
                .collect();
            if orphans.is_empty() {
                break;
            }
            for o in orphans {
                self.handles.remove(&o);
            }
        }
    }
}

/// Every export goes through here: the call log, configuration errors, injected faults.
fn call(name: &'static str, f: impl FnOnce(&'static Global) -> R<ULONG>) -> ULONG {
    let g = global();
    g.log(name, "enter", None);
    if let Some(e) = &g.config.error {
        if !g.reported.swap(true, Ordering::Relaxed) {
            eprintln!("softskf: every call fails: {e}");
        }
        g.log(name, "exit", Some(SAR_FAIL));
        return SAR_FAIL;
    }
    match g.config.fault(name) {
        Some(Fault::Crash) => crash(name),
        Some(Fault::Hang) => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Some(Fault::Rc(rc)) => {
            g.log(name, "exit", Some(*rc));
            return *rc;
        }
        Some(Fault::Delay(d)) => std::thread::sleep(*d),
        None => {}
    }
    let rc = f(g).unwrap_or_else(|e| e);
    g.log(name, "exit", Some(rc));
    rc
}

fn crash(name: &str) -> ! {
    eprintln!("softskf: injected crash in {name} (SOFTSKF_FAULT)");
    // SAFETY: restoring the default SIGSEGV action and raising it has no memory-safety
    // preconditions; it ends the process like a vendor library's segfault would.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    std::process::abort()
}

// ---------------------------------------------------------------------------------------------
// Caller memory
// ---------------------------------------------------------------------------------------------

/// An output pointer the caller may have passed as NULL.
struct Out<T>(*mut T);

impl<T> Out<T> {
    /// # Safety
    /// `p` is NULL or valid for one (possibly unaligned) write of `T`.
    unsafe fn new(p: *mut T) -> Out<T> {
        Out(p)
    }

    fn set(&self, v: T) -> R<()> {
        if self.0.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        // SAFETY: non-NULL, and `new`'s contract makes it valid for this write.
        unsafe { self.0.write_unaligned(v) };
        Ok(())
    }

    fn is_null(&self) -> bool {
        self.0.is_null()
    }
}

/// A caller's buffer and its in/out length: the two-call convention (NULL buffer → the
/// length needed; too small → `SAR_BUFFER_TOO_SMALL` and the length needed).
struct OutBuf {
    buf: *mut u8,
    len: *mut ULONG,
}

impl OutBuf {
    /// # Safety
    /// `len` is NULL or valid for reads and writes of a ULONG; `buf` is NULL or valid for
    /// `*len` bytes of writes.
    unsafe fn new(buf: *mut u8, len: *mut ULONG) -> OutBuf {
        OutBuf { buf, len }
    }

    /// The capacity the caller announces (0 with a NULL buffer).
    fn capacity(&self) -> R<usize> {
        if self.len.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        if self.buf.is_null() {
            return Ok(0);
        }
        // SAFETY: non-NULL, readable by `new`'s contract.
        Ok(unsafe { self.len.read_unaligned() } as usize)
    }

    fn set_len(&self, n: usize) {
        // SAFETY: only called after `capacity` checked `len` is non-NULL.
        unsafe { self.len.write_unaligned(n as ULONG) }
    }

    fn fill(&self, data: &[u8]) -> R<ULONG> {
        let capacity = self.capacity()?;
        self.set_len(data.len());
        if self.buf.is_null() {
            return Ok(SAR_OK);
        }
        if capacity < data.len() {
            return Ok(SAR_BUFFER_TOO_SMALL);
        }
        // SAFETY: `buf` holds `capacity` >= data.len() writable bytes (`new`'s contract);
        // `data` is ours, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.buf, data.len()) };
        Ok(SAR_OK)
    }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn c_str(p: *const c_char) -> R<Vec<u8>> {
    if p.is_null() {
        return Err(SAR_INVALIDPARAMERR);
    }
    // SAFETY: non-NULL and NUL-terminated by the contract.
    Ok(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
}

/// # Safety
/// `p` is NULL or valid for `len` bytes of reads.
unsafe fn in_bytes(p: *const u8, len: ULONG) -> R<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(SAR_INVALIDPARAMERR);
    }
    // SAFETY: non-NULL and `len` readable bytes by the contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len as usize) }.to_vec())
}

/// A multi-string: each name NUL-terminated, then one more NUL (unless `no-double-nul`).
fn name_list(g: &Global, names: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        out.extend_from_slice(n);
        out.push(0);
    }
    if !g.quirk(Quirk::NoDoubleNul) {
        out.push(0);
        if names.is_empty() {
            out.push(0);
        }
    }
    out
}

fn handle(h: HANDLE) -> usize {
    h as usize
}

fn fixed<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let b = text.as_bytes();
    let n = b.len().min(N - 1);
    out[..n].copy_from_slice(&b[..n]);
    out
}

fn pin_of(app: &mut store::Application, ty: ULONG) -> R<&mut PinRecord> {
    match ty {
        ADMIN_TYPE => Ok(&mut app.admin_pin),
        USER_TYPE => Ok(&mut app.user_pin),
        _ => Err(SAR_USER_TYPE_INVALID),
    }
}

/// The code and retry count a failed attempt reports.
fn failed_attempt(g: &Global, a: Attempt) -> (ULONG, ULONG) {
    match a {
        Attempt::Ok => (SAR_OK, 0),
        Attempt::Incorrect(n) => (SAR_PIN_INCORRECT, n),
        Attempt::LockedNow if g.quirk(Quirk::PinIncorrectAtZero) => (SAR_PIN_INCORRECT, 0),
        Attempt::LockedNow | Attempt::AlreadyLocked => (SAR_PIN_LOCKED, 0),
    }
}

// ---------------------------------------------------------------------------------------------
// Not SKF: for the layout test
// ---------------------------------------------------------------------------------------------

/// softskf's own struct sizes and field offsets, in the format of `c/layout.c`. Static
/// string; needs no `SOFTSKF_DIR`.
#[unsafe(no_mangle)]
pub extern "C" fn softskf_layout() -> *const c_char {
    static TEXT: OnceLock<CString> = OnceLock::new();
    TEXT.get_or_init(|| CString::new(layout_text()).expect("no NUL"))
        .as_ptr()
}

// ---------------------------------------------------------------------------------------------
// 7.1 Device management
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_WaitForDevEvent(
    szDevName: LPSTR,
    pulDevNameLen: *mut ULONG,
    pulEvent: *mut ULONG,
) -> ULONG {
    call("SKF_WaitForDevEvent", |g| {
        // SAFETY: the SKF contract: a buffer of *pulDevNameLen bytes, and two ULONG outputs.
        let (name_buf, event) = unsafe {
            (
                OutBuf::new(szDevName.cast(), pulDevNameLen),
                Out::new(pulEvent),
            )
        };
        if name_buf.buf.is_null() || event.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let capacity = name_buf.capacity()?;
        drop(g.inner()?); // provisioned, watcher running, presence up to date
        match g.events.wait(capacity, g.quirk(Quirk::CancelLostIfIdle)) {
            Wait::Event { name, event: e } => {
                let mut with_nul = name;
                with_nul.push(0);
                name_buf.fill(&with_nul)?;
                event.set(e)?;
                Ok(SAR_OK)
            }
            Wait::TooSmall(n) => {
                name_buf.set_len(n);
                Ok(SAR_BUFFER_TOO_SMALL)
            }
            Wait::Cancelled => Ok(SAR_NOT_EVENTERR),
        }
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub extern "system" fn SKF_CancelWaitForDevEvent() -> ULONG {
    call("SKF_CancelWaitForDevEvent", |g| {
        g.events.cancel(g.quirk(Quirk::CancelLostIfIdle));
        Ok(SAR_OK)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EnumDev(
    bPresent: BOOL,
    szNameList: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    call("SKF_EnumDev", |g| {
        // SAFETY: the SKF contract: a buffer of *pulSize bytes.
        let out = unsafe { OutBuf::new(szNameList.cast(), pulSize) };
        out.capacity()?;
        let inner = g.inner()?;
        let names: Vec<Vec<u8>> = inner
            .devices
            .iter()
            .filter(|n| bPresent == 0 || inner.present.contains(*n))
            .cloned()
            .collect();
        if names.is_empty() && bPresent != 0 && g.quirk(Quirk::EnumGarbageSize) {
            if out.buf.is_null() {
                out.set_len(0xFFFF_FFC2);
                return Ok(SAR_OK);
            }
            return Ok(SAR_FAIL);
        }
        out.fill(&name_list(g, &names))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ConnectDev(szName: LPSTR, phDev: *mut HANDLE) -> ULONG {
    call("SKF_ConnectDev", |g| {
        // SAFETY: the SKF contract: a NUL-terminated name and a HANDLE output.
        let (name, out) = unsafe { (c_str(szName), Out::new(phDev)) };
        let name = name?;
        if out.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        // As a real library does (SKF.md §3.8 #4): unknown or absent → SAR_DEVICE_REMOVED.
        if !inner.present.contains(&name) {
            return Err(SAR_DEVICE_REMOVED);
        }
        let epoch = inner.epochs.get(&name).copied().unwrap_or(0);
        let h = inner.add(Obj::Dev(Dev {
            name,
            epoch,
            logins: HashMap::new(),
            random: None,
            authenticated: false,
        }));
        out.set(h as HANDLE)?;
        Ok(SAR_OK)
    })
}

/// Always releases the handle, also on a removed device (cleanup must not fail).
#[unsafe(no_mangle)]
pub extern "system" fn SKF_DisConnectDev(hDev: HANDLE) -> ULONG {
    call("SKF_DisConnectDev", |g| {
        let mut inner = g.inner()?;
        match inner.handles.get(&handle(hDev)) {
            Some(Obj::Dev(_)) => {
                inner.close_tree(handle(hDev));
                Ok(SAR_OK)
            }
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetDevState(szDevName: LPSTR, pulDevState: *mut ULONG) -> ULONG {
    call("SKF_GetDevState", |g| {
        // SAFETY: the SKF contract: a NUL-terminated name and a ULONG output.
        let (name, out) = unsafe { (c_str(szDevName), Out::new(pulDevState)) };
        let name = name?;
        let inner = g.inner()?;
        // Unknown names are "absent", SAR_OK (as observed on a vendor library).
        out.set(if inner.present.contains(&name) {
            DEV_PRESENT_STATE
        } else {
            DEV_ABSENT_STATE
        })?;
        Ok(SAR_OK)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetDevInfo(hDev: HANDLE, pDevInfo: *mut DEVINFO) -> ULONG {
    call("SKF_GetDevInfo", |g| {
        // SAFETY: the SKF contract: a DEVINFO (294 bytes, packed) to fill.
        let out = unsafe { Out::new(pDevInfo) };
        let inner = g.inner()?;
        let vendor_bits = if g.quirk(Quirk::CapsVendorBits) {
            0x8008_0000
        } else {
            0
        };
        let info = g.with_device(&inner, handle(hDev), |d| {
            let used: usize = d
                .applications
                .iter()
                .flat_map(|a| &a.containers)
                .map(|c| {
                    c.sign_cert.as_ref().map_or(0, Vec::len)
                        + c.enc_cert.as_ref().map_or(0, Vec::len)
                })
                .sum();
            let info = DEVINFO {
                Version: VERSION { major: 1, minor: 0 },
                Manufacturer: fixed(&d.manufacturer),
                Issuer: fixed(&d.issuer),
                Label: fixed(&d.label),
                SerialNumber: fixed(&d.serial),
                HWVersion: VERSION { major: 1, minor: 0 },
                FirmwareVersion: VERSION { major: 1, minor: 0 },
                AlgSymCap: SGD_SM4_ECB,
                AlgAsymCap: SGD_RSA | SGD_SM2_1,
                AlgHashCap: SGD_SM3 | SGD_SHA1 | SGD_SHA256 | vendor_bits,
                DevAuthAlgId: SGD_SM4_ECB,
                TotalSpace: 65536,
                FreeSpace: 65536u32.saturating_sub(used as u32),
                MaxECCBufferSize: 2048,
                MaxBufferSize: 2048,
                Reserved: [0; 64],
            };
            (Ok(info), false)
        })?;
        out.set(info)?;
        Ok(SAR_OK)
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub extern "system" fn SKF_Transmit(
    hDev: HANDLE,
    _pbCommand: *mut BYTE,
    _ulCommandLen: ULONG,
    _pbData: *mut BYTE,
    _pulDataLen: *mut ULONG,
) -> ULONG {
    call("SKF_Transmit", |g| {
        g.inner()?.dev(handle(hDev))?;
        // There is no card behind softskf to send APDUs to.
        Ok(SAR_NOTSUPPORTYETERR)
    })
}

// ---------------------------------------------------------------------------------------------
// 7.2 Access control
// ---------------------------------------------------------------------------------------------

/// Device authentication: the caller takes a random from `SKF_GenRandom`, pads it with
/// zeros to 16 bytes, encrypts it with the device key (`DEVINFO.DevAuthAlgId`, SM4-ECB).
#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DevAuth(
    hDev: HANDLE,
    pbAuthData: *mut BYTE,
    ulLen: ULONG,
) -> ULONG {
    call("SKF_DevAuth", |g| {
        // SAFETY: the SKF contract: ulLen readable bytes.
        let data = unsafe { in_bytes(pbAuthData, ulLen) }?;
        let mut inner = g.inner()?;
        let dev = handle(hDev);
        let random = inner.dev_mut(dev)?.random.take().ok_or(SAR_FAIL)?;
        let key = g.with_device(&inner, dev, |d| (Ok(d.auth_key.clone()), false))?;
        let mut block = [0u8; 16];
        let n = random.len().min(16);
        block[..n].copy_from_slice(&random[..n]);
        let expected = crypto::sm4_ecb(&key, &block).ok_or(SAR_FAIL)?;
        if data != expected {
            return Err(SAR_FAIL);
        }
        inner.dev_mut(dev)?.authenticated = true;
        Ok(SAR_OK)
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ChangeDevAuthKey(
    hDev: HANDLE,
    pbKeyValue: *mut BYTE,
    ulKeyLen: ULONG,
) -> ULONG {
    call("SKF_ChangeDevAuthKey", |g| {
        // SAFETY: the SKF contract: ulKeyLen readable bytes.
        let key = unsafe { in_bytes(pbKeyValue, ulKeyLen) }?;
        let inner = g.inner()?;
        if !inner.dev(handle(hDev))?.authenticated {
            return Err(SAR_FAIL);
        }
        if key.len() != 16 {
            return Err(SAR_INVALIDPARAMERR);
        }
        g.with_device(&inner, handle(hDev), |d| {
            d.auth_key = key;
            (Ok(SAR_OK), true)
        })
    })
}

/// Returns a 64-bit value: the code in the low half (what a loader reading ULONG sees); under
/// `getpininfo-long` the high half is 0xFFFFFFFF, as from a library whose LONG is LP64.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetPINInfo(
    hApplication: HANDLE,
    ulPINType: ULONG,
    pulMaxRetryCount: *mut ULONG,
    pulRemainRetryCount: *mut ULONG,
    pbDefaultPin: *mut BOOL,
) -> u64 {
    let rc = call("SKF_GetPINInfo", |g| {
        // SAFETY: the SKF contract: three outputs (ULONG, ULONG, BOOL).
        let (max, remain, default) = unsafe {
            (
                Out::new(pulMaxRetryCount),
                Out::new(pulRemainRetryCount),
                Out::new(pbDefaultPin),
            )
        };
        let inner = g.inner()?;
        let pin = g.with_app(&inner, handle(hApplication), |a| {
            (pin_of(a, ulPINType).map(|p| p.clone()), false)
        })?;
        max.set(pin.max_retries)?;
        remain.set(pin.remaining)?;
        default.set(BOOL::from(pin.default_pin))?;
        Ok(SAR_OK)
    });
    let high = if global().quirk(Quirk::GetPinInfoLong) {
        0xFFFF_FFFF_0000_0000
    } else {
        0
    };
    high | u64::from(rc)
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_VerifyPIN(
    hApplication: HANDLE,
    ulPINType: ULONG,
    szPIN: LPSTR,
    pulRetryCount: *mut ULONG,
) -> ULONG {
    call("SKF_VerifyPIN", |g| {
        // SAFETY: the SKF contract: a NUL-terminated PIN and a ULONG output.
        let (pin, retry) = unsafe { (c_str(szPIN), Out::new(pulRetryCount)) };
        let pin = pin?;
        let app = handle(hApplication);
        let mut inner = g.inner()?;
        let (rc, left) = g.with_app(&inner, app, |a| {
            let len_ok = a.pin_len_ok(&pin);
            let record = match pin_of(a, ulPINType) {
                Ok(r) => r,
                Err(e) => return (Err(e), false),
            };
            if record.remaining > 0 && !len_ok {
                return (Ok((SAR_PIN_LEN_RANGE, record.remaining)), false);
            }
            match record.attempt(&pin) {
                Attempt::Ok => (Ok((SAR_OK, record.remaining)), true),
                Attempt::AlreadyLocked => (Ok((SAR_PIN_LOCKED, 0)), false),
                a => (Ok(failed_attempt(g, a)), true),
            }
        })?;
        let login = inner.logins(app)?;
        let role = if ulPINType == ADMIN_TYPE {
            &mut login.1
        } else {
            &mut login.0
        };
        *role = rc == SAR_OK;
        if !retry.is_null() {
            retry.set(left)?;
        }
        Ok(rc)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ChangePIN(
    hApplication: HANDLE,
    ulPINType: ULONG,
    szOldPin: LPSTR,
    szNewPin: LPSTR,
    pulRetryCount: *mut ULONG,
) -> ULONG {
    call("SKF_ChangePIN", |g| {
        // SAFETY: the SKF contract: two NUL-terminated PINs and a ULONG output.
        let (old, new, retry) =
            unsafe { (c_str(szOldPin), c_str(szNewPin), Out::new(pulRetryCount)) };
        let (old, new) = (old?, new?);
        let inner = g.inner()?;
        let (rc, left) = g.with_app(&inner, handle(hApplication), |a| {
            let new_ok = a.pin_len_ok(&new);
            let record = match pin_of(a, ulPINType) {
                Ok(r) => r,
                Err(e) => return (Err(e), false),
            };
            if record.remaining == 0 {
                return (Ok((SAR_PIN_LOCKED, 0)), false);
            }
            if !new_ok {
                return (Ok((SAR_PIN_LEN_RANGE, record.remaining)), false);
            }
            match record.attempt(&old) {
                Attempt::Ok => {
                    record.set(&new);
                    (Ok((SAR_OK, record.remaining)), true)
                }
                a => (Ok(failed_attempt(g, a)), true),
            }
        })?;
        if !retry.is_null() {
            retry.set(left)?;
        }
        Ok(rc)
    })
}

/// With the admin PIN, set a new user PIN (and so unlock it). On failure the retry count is
/// the ADMIN PIN's.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_UnblockPIN(
    hApplication: HANDLE,
    szAdminPIN: LPSTR,
    szNewUserPIN: LPSTR,
    pulRetryCount: *mut ULONG,
) -> ULONG {
    call("SKF_UnblockPIN", |g| {
        // SAFETY: the SKF contract: two NUL-terminated PINs and a ULONG output.
        let (admin, new, retry) = unsafe {
            (
                c_str(szAdminPIN),
                c_str(szNewUserPIN),
                Out::new(pulRetryCount),
            )
        };
        let (admin, new) = (admin?, new?);
        let inner = g.inner()?;
        let (rc, left) = g.with_app(&inner, handle(hApplication), |a| {
            if a.admin_pin.remaining == 0 {
                return (Ok((SAR_PIN_LOCKED, 0)), false);
            }
            if !a.pin_len_ok(&new) {
                return (Ok((SAR_PIN_LEN_RANGE, a.admin_pin.remaining)), false);
            }
            match a.admin_pin.attempt(&admin) {
                Attempt::Ok => {
                    a.user_pin.set(&new);
                    (Ok((SAR_OK, a.admin_pin.remaining)), true)
                }
                at => (Ok(failed_attempt(g, at)), true),
            }
        })?;
        if !retry.is_null() {
            retry.set(left)?;
        }
        Ok(rc)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn SKF_ClearSecureState(hApplication: HANDLE) -> ULONG {
    call("SKF_ClearSecureState", |g| {
        let mut inner = g.inner()?;
        *inner.logins(handle(hApplication))? = (false, false);
        Ok(SAR_OK)
    })
}

// ---------------------------------------------------------------------------------------------
// 7.3 Applications
// ---------------------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EnumApplication(
    hDev: HANDLE,
    szAppName: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    call("SKF_EnumApplication", |g| {
        // SAFETY: the SKF contract: a buffer of *pulSize bytes.
        let out = unsafe { OutBuf::new(szAppName.cast(), pulSize) };
        let inner = g.inner()?;
        let names = g.with_device(&inner, handle(hDev), |d| {
            (
                Ok(d.applications
                    .iter()
                    .map(|a| a.name.0.clone())
                    .collect::<Vec<_>>()),
                false,
            )
        })?;
        out.fill(&name_list(g, &names))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_OpenApplication(
    hDev: HANDLE,
    szAppName: LPSTR,
    phApplication: *mut HANDLE,
) -> ULONG {
    call("SKF_OpenApplication", |g| {
        // SAFETY: the SKF contract: a NUL-terminated name and a HANDLE output.
        let (name, out) = unsafe { (c_str(szAppName), Out::new(phApplication)) };
        let name = name?;
        if out.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        let dev = handle(hDev);
        let exists = g.with_device(&inner, dev, |d| {
            (Ok(d.applications.iter().any(|a| a.name.0 == name)), false)
        })?;
        if !exists {
            return Err(SAR_APPLICATION_NOT_EXISTS);
        }
        let h = inner.add(Obj::App { dev, name });
        out.set(h as HANDLE)?;
        Ok(SAR_OK)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn SKF_CloseApplication(hApplication: HANDLE) -> ULONG {
    call("SKF_CloseApplication", |g| {
        let mut inner = g.inner()?;
        match inner.handles.get(&handle(hApplication)) {
            Some(Obj::App { .. }) => {
                inner.close_tree(handle(hApplication));
                Ok(SAR_OK)
            }
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// 7.5 Containers
// ---------------------------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_EnumContainer(
    hApplication: HANDLE,
    szContainerName: LPSTR,
    pulSize: *mut ULONG,
) -> ULONG {
    call("SKF_EnumContainer", |g| {
        // SAFETY: the SKF contract: a buffer of *pulSize bytes.
        let out = unsafe { OutBuf::new(szContainerName.cast(), pulSize) };
        let inner = g.inner()?;
        let names = g.with_app(&inner, handle(hApplication), |a| {
            (
                Ok(a.containers
                    .iter()
                    .map(|c| c.name.0.clone())
                    .collect::<Vec<_>>()),
                false,
            )
        })?;
        out.fill(&name_list(g, &names))
    })
}

/// An unknown container gives `SAR_FILE_NOT_EXIST`: the 2012 annex has no container code
/// (Longmai uses its vendor 0x0B000035).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_OpenContainer(
    hApplication: HANDLE,
    szContainerName: LPSTR,
    phContainer: *mut HANDLE,
) -> ULONG {
    call("SKF_OpenContainer", |g| {
        // SAFETY: the SKF contract: a NUL-terminated name and a HANDLE output.
        let (name, out) = unsafe { (c_str(szContainerName), Out::new(phContainer)) };
        let name = name?;
        if out.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        let app = handle(hApplication);
        let exists = g.with_app(&inner, app, |a| {
            (Ok(a.containers.iter().any(|c| c.name.0 == name)), false)
        })?;
        if !exists {
            return Err(SAR_FILE_NOT_EXIST);
        }
        let h = inner.add(Obj::Con { app, name });
        out.set(h as HANDLE)?;
        Ok(SAR_OK)
    })
}

#[unsafe(no_mangle)]
pub extern "system" fn SKF_CloseContainer(hContainer: HANDLE) -> ULONG {
    call("SKF_CloseContainer", |g| {
        let mut inner = g.inner()?;
        match inner.handles.get(&handle(hContainer)) {
            Some(Obj::Con { .. }) => {
                inner.close_tree(handle(hContainer));
                Ok(SAR_OK)
            }
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GetContainerType(
    hContainer: HANDLE,
    pulContainerType: *mut ULONG,
) -> ULONG {
    call("SKF_GetContainerType", |g| {
        // SAFETY: the SKF contract: a ULONG output.
        let out = unsafe { Out::new(pulContainerType) };
        let inner = g.inner()?;
        let ty = g.with_container(&inner, handle(hContainer), |c| {
            let ty = c
                .sign_key
                .as_ref()
                .or(c.enc_key.as_ref())
                .map_or(CONTAINER_TYPE_EMPTY, Key::container_type);
            (Ok(ty), false)
        })?;
        out.set(ty)?;
        Ok(SAR_OK)
    })
}

/// Needs the user PIN (writing to the key).
#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ImportCertificate(
    hContainer: HANDLE,
    bSignFlag: BOOL,
    pbCert: *mut BYTE,
    ulCertLen: ULONG,
) -> ULONG {
    call("SKF_ImportCertificate", |g| {
        // SAFETY: the SKF contract: ulCertLen readable bytes.
        let cert = unsafe { in_bytes(pbCert, ulCertLen) }?;
        if cert.is_empty() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        let con = handle(hContainer);
        if !inner.user_logged_in_for_container(con)? {
            return Err(SAR_USER_NOT_LOGGED_IN);
        }
        g.with_container(&inner, con, |c| {
            if bSignFlag != 0 {
                c.sign_cert = Some(cert);
            } else {
                c.enc_cert = Some(cert);
            }
            (Ok(SAR_OK), true)
        })
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExportCertificate(
    hContainer: HANDLE,
    bSignFlag: BOOL,
    pbCert: *mut BYTE,
    pulCertLen: *mut ULONG,
) -> ULONG {
    call("SKF_ExportCertificate", |g| {
        // SAFETY: the SKF contract: a buffer of *pulCertLen bytes.
        let out = unsafe { OutBuf::new(pbCert, pulCertLen) };
        out.capacity()?;
        let inner = g.inner()?;
        let der = g.with_container(&inner, handle(hContainer), |c| {
            let cert = if bSignFlag != 0 {
                &c.sign_cert
            } else {
                &c.enc_cert
            };
            (cert.clone().ok_or(SAR_CERTNOTFOUNTERR), false)
        })?;
        if g.quirk(Quirk::PemCert) {
            let pem = pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &der)
                .map_err(|_| SAR_FAIL)?;
            return out.fill(pem.as_bytes());
        }
        out.fill(&der)
    })
}

// ---------------------------------------------------------------------------------------------
// 7.6 Cryptographic services
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenRandom(
    hDev: HANDLE,
    pbRandom: *mut BYTE,
    ulRandomLen: ULONG,
) -> ULONG {
    call("SKF_GenRandom", |g| {
        if pbRandom.is_null() || ulRandomLen == 0 || ulRandomLen > 4096 {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        let random = crypto::random(ulRandomLen as usize);
        // SAFETY: the SKF contract: ulRandomLen writable bytes (checked non-NULL above).
        unsafe { std::ptr::copy_nonoverlapping(random.as_ptr(), pbRandom, random.len()) };
        inner.dev_mut(handle(hDev))?.random = Some(random);
        Ok(SAR_OK)
    })
}

/// Only `SGD_SM2_1` (the SKF value 0x00020100); needs the user PIN. Replaces the signing
/// key (and drops its certificate, which no longer matches).
#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_GenECCKeyPair(
    hContainer: HANDLE,
    ulAlgId: ULONG,
    pBlob: *mut ECCPUBLICKEYBLOB,
) -> ULONG {
    call("SKF_GenECCKeyPair", |g| {
        // SAFETY: the SKF contract: an ECCPUBLICKEYBLOB output.
        let out = unsafe { Out::new(pBlob) };
        if out.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        let con = handle(hContainer);
        if !inner.user_logged_in_for_container(con)? {
            return Err(SAR_USER_NOT_LOGGED_IN);
        }
        if ulAlgId != SGD_SM2_1 {
            return Err(SAR_NOTSUPPORTYETERR);
        }
        let key = Key::generate_sm2();
        let blob = key.public_blob();
        g.with_container(&inner, con, |c| {
            if c.enc_key
                .as_ref()
                .is_some_and(|k| k.container_type() != CONTAINER_TYPE_ECC)
            {
                c.enc_key = None;
                c.enc_cert = None;
            }
            c.sign_key = Some(key);
            c.sign_cert = None;
            (Ok(()), true)
        })?;
        // SAFETY: `blob` is exactly the bytes of an ECCPUBLICKEYBLOB (public_blob of SM2).
        out.set(unsafe { std::ptr::read_unaligned(blob.as_ptr().cast::<ECCPUBLICKEYBLOB>()) })?;
        Ok(SAR_OK)
    })
}

/// Signs the given `e` = SM3(Z‖M) (32 bytes) with the container's SM2 signing key, after a
/// user login. r and s are right-aligned in their 64-byte fields.
#[cfg(feature = "ecc-sign")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ECCSignData(
    hContainer: HANDLE,
    pbDigest: *mut BYTE,
    ulDigestLen: ULONG,
    pSignature: *mut ECCSIGNATUREBLOB,
) -> ULONG {
    call("SKF_ECCSignData", |g| {
        // SAFETY: the SKF contract: ulDigestLen readable bytes and an ECCSIGNATUREBLOB output.
        let (e, out) = unsafe { (in_bytes(pbDigest, ulDigestLen), Out::new(pSignature)) };
        let e = e?;
        if out.is_null() || pbDigest.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        let con = handle(hContainer);
        if !inner.user_logged_in_for_container(con)? {
            return Err(SAR_USER_NOT_LOGGED_IN);
        }
        if e.len() != 32 {
            return Err(SAR_INDATALENERR);
        }
        let key = g.with_container(&inner, con, |c| (Ok(c.sign_key.clone()), false))?;
        let sig = key
            .filter(|k| k.container_type() == CONTAINER_TYPE_ECC)
            .ok_or(SAR_KEYNOTFOUNTERR)?
            .sm2_sign(&e, g.quirk(Quirk::Sm2DoubleHash))
            .ok_or(SAR_FAIL)?;
        out.set(sig)?;
        Ok(SAR_OK)
    })
}

/// PKCS#1 v1.5 type 1 over the given bytes (the caller passes DigestInfo‖hash), at most
/// k − 11 of them, after a user login.
#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_RSASignData(
    hContainer: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbSignature: *mut BYTE,
    pulSignLen: *mut ULONG,
) -> ULONG {
    call("SKF_RSASignData", |g| {
        // SAFETY: the SKF contract: ulDataLen readable bytes, a buffer of *pulSignLen bytes.
        let (data, out) = unsafe {
            (
                in_bytes(pbData, ulDataLen),
                OutBuf::new(pbSignature, pulSignLen),
            )
        };
        let data = data?;
        let capacity = out.capacity()?;
        let mut inner = g.inner()?;
        let con = handle(hContainer);
        if !inner.user_logged_in_for_container(con)? {
            return Err(SAR_USER_NOT_LOGGED_IN);
        }
        let key = g
            .with_container(&inner, con, |c| (Ok(c.sign_key.clone()), false))?
            .filter(|k| k.container_type() == CONTAINER_TYPE_RSA)
            .ok_or(SAR_KEYNOTFOUNTERR)?;
        let k = key.rsa_size().ok_or(SAR_FAIL)?;
        if data.is_empty() || data.len() > k - 11 {
            return Err(SAR_INDATALENERR);
        }
        if out.buf.is_null() || capacity < k {
            out.set_len(k);
            return Ok(if out.buf.is_null() {
                SAR_OK
            } else {
                SAR_BUFFER_TOO_SMALL
            });
        }
        out.fill(&key.rsa_sign(&data).ok_or(SAR_FAIL)?)
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_ExportPublicKey(
    hContainer: HANDLE,
    bSignFlag: BOOL,
    pbBlob: *mut BYTE,
    pulBlobLen: *mut ULONG,
) -> ULONG {
    call("SKF_ExportPublicKey", |g| {
        // SAFETY: the SKF contract: a buffer of *pulBlobLen bytes.
        let out = unsafe { OutBuf::new(pbBlob, pulBlobLen) };
        out.capacity()?;
        let inner = g.inner()?;
        let key = g.with_container(&inner, handle(hContainer), |c| {
            let key = if bSignFlag != 0 {
                &c.sign_key
            } else {
                &c.enc_key
            };
            (key.clone().ok_or(SAR_KEYNOTFOUNTERR), false)
        })?;
        out.fill(&key.public_blob())
    })
}

/// With `pPubKey` (SM3 only) the hash starts with Z of that key and the ID (`pucID`, or the
/// default 1234567812345678 when NULL/empty): `SKF_Digest` then returns e = SM3(Z‖M).
#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DigestInit(
    hDev: HANDLE,
    ulAlgID: ULONG,
    pPubKey: *mut ECCPUBLICKEYBLOB,
    pucID: *mut u8,
    ulIDLen: ULONG,
    phHash: *mut HANDLE,
) -> ULONG {
    call("SKF_DigestInit", |g| {
        // SAFETY: the SKF contract: ulIDLen readable bytes and a HANDLE output; the public
        // key blob is read below only when non-NULL.
        let (id, out) = unsafe { (in_bytes(pucID, ulIDLen), Out::new(phHash)) };
        let id = id?;
        if out.is_null() {
            return Err(SAR_INVALIDPARAMERR);
        }
        let mut inner = g.inner()?;
        let dev = handle(hDev);
        inner.dev(dev)?;
        let mut hasher = Hasher::new(ulAlgID).ok_or(SAR_NOTSUPPORTYETERR)?;
        if !pPubKey.is_null() {
            if ulAlgID != SGD_SM3 {
                return Err(SAR_INVALIDPARAMERR);
            }
            // SAFETY: non-NULL; the SKF contract makes it a readable ECCPUBLICKEYBLOB.
            let blob = unsafe { pPubKey.read_unaligned() };
            let id = if id.is_empty() { DEFAULT_ID } else { &id };
            hasher.update(&crypto::sm2_z(&blob, id).ok_or(SAR_INVALIDPARAMERR)?);
        }
        let h = inner.add(Obj::Hash {
            dev,
            hasher: Some(hasher),
        });
        out.set(h as HANDLE)?;
        Ok(SAR_OK)
    })
}

fn hasher_mut(inner: &mut Inner, h: usize) -> R<&mut Option<Hasher>> {
    let dev = match inner.handles.get(&h) {
        Some(Obj::Hash { dev, .. }) => *dev,
        _ => return Err(SAR_INVALIDHANDLEERR),
    };
    inner.dev(dev)?;
    match inner.handles.get_mut(&h) {
        Some(Obj::Hash { hasher, .. }) => Ok(hasher),
        _ => Err(SAR_INVALIDHANDLEERR),
    }
}

/// Finish into the caller's buffer; a NULL buffer or a too-small one only reports the size
/// and keeps the hash running.
fn finish_into(hasher: &mut Option<Hasher>, data: Option<&[u8]>, out: &OutBuf) -> R<ULONG> {
    let running = hasher.as_ref().ok_or(SAR_HASHOBJERR)?;
    let capacity = out.capacity()?;
    if out.buf.is_null() || capacity < running.len() {
        out.set_len(running.len());
        return Ok(if out.buf.is_null() {
            SAR_OK
        } else {
            SAR_BUFFER_TOO_SMALL
        });
    }
    let mut h = hasher.take().expect("checked");
    if let Some(data) = data {
        h.update(data);
    }
    out.fill(&h.finish())
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_Digest(
    hHash: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
    pbHashData: *mut BYTE,
    pulHashLen: *mut ULONG,
) -> ULONG {
    call("SKF_Digest", |g| {
        // SAFETY: the SKF contract: ulDataLen readable bytes, a buffer of *pulHashLen bytes.
        let (data, out) = unsafe {
            (
                in_bytes(pbData, ulDataLen),
                OutBuf::new(pbHashData, pulHashLen),
            )
        };
        let data = data?;
        let mut inner = g.inner()?;
        finish_into(hasher_mut(&mut inner, handle(hHash))?, Some(&data), &out)
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DigestUpdate(
    hHash: HANDLE,
    pbData: *mut BYTE,
    ulDataLen: ULONG,
) -> ULONG {
    call("SKF_DigestUpdate", |g| {
        // SAFETY: the SKF contract: ulDataLen readable bytes.
        let data = unsafe { in_bytes(pbData, ulDataLen) }?;
        let mut inner = g.inner()?;
        hasher_mut(&mut inner, handle(hHash))?
            .as_mut()
            .ok_or(SAR_HASHOBJERR)?
            .update(&data);
        Ok(SAR_OK)
    })
}

#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SKF_DigestFinal(
    hHash: HANDLE,
    pHashData: *mut BYTE,
    pulHashLen: *mut ULONG,
) -> ULONG {
    call("SKF_DigestFinal", |g| {
        // SAFETY: the SKF contract: a buffer of *pulHashLen bytes.
        let out = unsafe { OutBuf::new(pHashData, pulHashLen) };
        let mut inner = g.inner()?;
        finish_into(hasher_mut(&mut inner, handle(hHash))?, None, &out)
    })
}

/// Closes hash handles (the only kind softskf hands out for it).
#[cfg(feature = "optional")]
#[unsafe(no_mangle)]
pub extern "system" fn SKF_CloseHandle(hHandle: HANDLE) -> ULONG {
    call("SKF_CloseHandle", |g| {
        let mut inner = g.inner()?;
        match inner.handles.get(&handle(hHandle)) {
            Some(Obj::Hash { .. }) => {
                inner.handles.remove(&handle(hHandle));
                Ok(SAR_OK)
            }
            _ => Err(SAR_INVALIDHANDLEERR),
        }
    })
}
