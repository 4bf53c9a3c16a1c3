//! `certray skf-host --library PATH`: the process that loads one vendor SKF library, so that
//! a library that crashes or hangs (SKF.md §3.8: one segfaults in `SKF_EnumDev` without
//! `/dev/bus/usb`) costs a restart of this process, never the daemon.
//!
//! certray ([`super::SkfBackend`]) writes [`Request`] frames to its stdin; this process
//! answers each on its stdout ([`super::protocol`]), one at a time: every call into the
//! library happens on the main thread, in order (vendor libraries are rarely thread-safe).
//! The only exception is the device-event thread (started by [`Request::Watch`]), which
//! blocks in `SKF_WaitForDevEvent` and pushes [`HostFrame::Event`] frames; on shutdown it is
//! woken with `SKF_CancelWaitForDevEvent`, re-issued until it ends (a vendor library forgets
//! a cancel issued while no wait is pending, SKF.md §3.8.3), within [`CANCEL_BOUND`].
//!
//! The protocol's stdout is a duplicate of the original descriptor 1; descriptor 1 itself
//! is pointed at stderr, so a library that prints does not corrupt the pipe. PINs arrive as
//! [`WirePin`](super::protocol::WirePin) and are never logged.
//!
//! The PIN rules apply here, to the state `SKF_GetPINInfo` reports right before each
//! submission ([`PinState::admit`]); one submission per request, never a retry.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::abi::{self, Functions, Handle, Name, Sar, Ulong};
use super::protocol::{
    Answer, CertFound, DeviceFound, Failure, HostFrame, Request, RequestFrame, SignAuth, SignData,
    WirePin, read_frame, write_frame,
};
use crate::model::PinState;
use crate::text::vendor_text;

/// How long shutdown waits for the event thread to leave `SKF_WaitForDevEvent`.
pub const CANCEL_BOUND: Duration = Duration::from_secs(6);

type Out = Arc<Mutex<File>>;

/// Run the host for `library` until stdin closes or a `Shutdown` arrives. The exit code:
/// 0, or 3 when the library cannot be loaded (the reason on stderr).
pub fn run(library: &Path) -> i32 {
    let (input, output) = match protocol_streams() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skf-host: cannot set up the pipe: {e}");
            return 2;
        }
    };
    let functions = match Functions::load(library) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            eprintln!("skf-host: {e}");
            return 3;
        }
    };
    let out: Out = Arc::new(Mutex::new(output));
    let mut host = Host {
        f: functions.clone(),
        sessions: HashMap::new(),
    };
    let mut events: Option<Events> = None;
    let mut input = io::BufReader::new(input);
    loop {
        let frame: RequestFrame = match read_frame(&mut input) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                eprintln!("skf-host: bad frame: {e}");
                break;
            }
        };
        let (result, stop) = match frame.request {
            Request::Shutdown => (Ok(Answer::Done), true),
            Request::Watch => {
                if events.is_none() {
                    events = Events::start(functions.clone(), out.clone());
                }
                (Ok(Answer::Watching(events.is_some())), false)
            }
            request => (host.handle(request), false),
        };
        let reply = HostFrame::Reply {
            id: frame.id,
            result,
        };
        if send(&out, &reply).is_err() || stop {
            break;
        }
    }
    host.close_all();
    if let Some(events) = events {
        events.stop(&functions);
    }
    0
}

fn send(out: &Out, frame: &HostFrame) -> io::Result<()> {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    write_frame(&mut *out, frame)
}

/// The pipe's two ends: stdin, and a duplicate of stdout; descriptor 1 then points at
/// stderr so that whatever the library prints cannot corrupt a frame.
#[cfg(unix)]
fn protocol_streams() -> io::Result<(File, File)> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup/dup2 on the process's own standard descriptors; the new descriptors are
    // owned by the Files made from them and by nothing else.
    unsafe {
        let out = libc::dup(1);
        if out < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::dup2(2, 1) < 0 {
            return Err(io::Error::last_os_error());
        }
        let input = libc::dup(0);
        if input < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((File::from_raw_fd(input), File::from_raw_fd(out)))
    }
}

#[cfg(windows)]
fn protocol_streams() -> io::Result<(File, File)> {
    use std::os::windows::io::{AsHandle, OwnedHandle};
    let input = io::stdin().as_handle().try_clone_to_owned()?;
    let output = io::stdout().as_handle().try_clone_to_owned()?;
    Ok((File::from(OwnedHandle::from(input)), File::from(output)))
}

// ---------------------------------------------------------------------------------------------
// Device events
// ---------------------------------------------------------------------------------------------

struct Events {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
}

impl Events {
    fn start(f: Arc<Functions>, out: Out) -> Option<Events> {
        let wait = f.wait_for_dev_event?;
        f.cancel_wait_for_dev_event?;
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = mpsc::channel::<()>();
        let flag = stop.clone();
        thread::Builder::new()
            .name("skf-events".into())
            .spawn(move || {
                let _done = done_tx;
                let mut failures = 0u32;
                loop {
                    let mut name = [0u8; 1024];
                    let mut len = name.len() as Ulong;
                    let mut event: Ulong = 0;
                    // SAFETY: the buffer holds `len` bytes; the function table outlives this
                    // thread (`f` is kept by it).
                    let rc = unsafe { wait(name.as_mut_ptr().cast(), &mut len, &mut event) };
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    match rc {
                        abi::SAR_OK => {
                            failures = 0;
                            let n = (len as usize).min(name.len());
                            let device: Vec<u8> =
                                name[..n].iter().copied().take_while(|&b| b != 0).collect();
                            if event == abi::DEV_EVENT_INSERT || event == abi::DEV_EVENT_REMOVE {
                                let frame = HostFrame::Event {
                                    device,
                                    inserted: event == abi::DEV_EVENT_INSERT,
                                };
                                if send(&out, &frame).is_err() {
                                    break;
                                }
                            }
                        }
                        // A cancel meant for an earlier wait (or spurious): wait again.
                        abi::SAR_NOT_EVENTERR => {}
                        rc => {
                            failures += 1;
                            eprintln!("skf-host: SKF_WaitForDevEvent: {}", Sar(rc));
                            if failures >= 5 {
                                let _ = send(&out, &HostFrame::EventsUnsupported);
                                break;
                            }
                            thread::sleep(Duration::from_millis(500));
                        }
                    }
                }
            })
            .ok()?;
        Some(Events { stop, done })
    }

    /// Wake the waiter with `SKF_CancelWaitForDevEvent`, again and again, until it has
    /// left, for at most [`CANCEL_BOUND`].
    fn stop(self, f: &Functions) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(cancel) = f.cancel_wait_for_dev_event else {
            return;
        };
        let deadline = Instant::now() + CANCEL_BOUND;
        while Instant::now() < deadline {
            // SAFETY: no arguments; allowed while another thread waits (its whole purpose).
            unsafe { cancel() };
            match self.done.recv_timeout(Duration::from_millis(500)) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                _ => return,
            }
        }
        eprintln!("skf-host: the event wait did not end within {CANCEL_BOUND:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A login kept for later requests (`remember`).
struct Session {
    dev: Handle,
    app: Handle,
    /// Containers opened through it, kept open while it lasts (a signature on a kept
    /// login is then one library call).
    containers: HashMap<Vec<u8>, Handle>,
}

struct Host {
    f: Arc<Functions>,
    /// device name → its kept login.
    sessions: HashMap<Vec<u8>, Session>,
}

/// A handle closed when dropped.
struct Opened {
    f: Arc<Functions>,
    handle: Handle,
    close: fn(&Functions, Handle),
}

impl Opened {
    /// Keep the handle open (it moves into a session).
    fn keep(mut self) -> Handle {
        self.close = |_, _| {};
        self.handle
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        (self.close)(&self.f, self.handle);
    }
}

fn close_dev(f: &Functions, h: Handle) {
    // SAFETY: a handle from SKF_ConnectDev, closed once.
    unsafe { (f.disconnect_dev)(h) };
}

fn close_app(f: &Functions, h: Handle) {
    // SAFETY: a handle from SKF_OpenApplication, closed once.
    unsafe { (f.close_application)(h) };
}

fn close_container(f: &Functions, h: Handle) {
    // SAFETY: a handle from SKF_OpenContainer, closed once.
    unsafe { (f.close_container)(h) };
}

fn failure(function: &str, rc: Ulong) -> Failure {
    match rc {
        abi::SAR_DEVICE_REMOVED | abi::SAR_INVALIDHANDLEERR => Failure::DeviceRemoved,
        abi::SAR_NOTSUPPORTYETERR => Failure::Unsupported(format!("{function}: {}", Sar(rc))),
        _ => Failure::Sar {
            function: function.to_owned(),
            rc: Sar(rc).to_string(),
        },
    }
}

fn check(function: &str, rc: Ulong) -> Result<(), Failure> {
    if rc == abi::SAR_OK {
        Ok(())
    } else {
        Err(failure(function, rc))
    }
}

fn c_name(bytes: &[u8]) -> Result<CString, Failure> {
    Name::new(bytes.to_vec())
        .map(|n| n.to_cstring())
        .ok_or_else(|| Failure::Other("empty name or a NUL inside".into()))
}

fn c_pin(pin: &WirePin) -> Result<zeroize::Zeroizing<Vec<u8>>, Failure> {
    use secrecy::ExposeSecret;
    let pin = pin.to_pin();
    let bytes = pin.expose_secret().as_bytes();
    if bytes.contains(&0) {
        return Err(Failure::Other("a PIN cannot contain NUL".into()));
    }
    let mut v = zeroize::Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
    v.extend_from_slice(bytes);
    v.push(0);
    Ok(v)
}

fn pin_len(pin: &WirePin) -> usize {
    use secrecy::ExposeSecret;
    pin.to_pin().expose_secret().len()
}

/// The PIN state from `SKF_GetPINInfo`'s numbers. SKF does not report the length range: any
/// non-empty PIN may be tried (the key answers `SAR_PIN_LEN_RANGE`, which costs no try).
pub fn pin_state(max: Ulong, remaining: Ulong, default: bool) -> PinState {
    PinState {
        min_len: 1,
        max_len: 0,
        initialized: true,
        count_low: remaining > 0 && remaining < max,
        final_try: remaining == 1,
        locked: remaining == 0,
        to_be_changed: false,
        default_pin: default,
        tries_left: Some(remaining),
    }
}

/// A refused PIN before it is sent.
fn admit(state: PinState, force: bool) -> Result<(), Failure> {
    use crate::model::PinRefusal;
    match state.admit(force) {
        Ok(()) => Ok(()),
        Err(PinRefusal::Locked(s)) => Err(Failure::RefusedLocked(s)),
        Err(PinRefusal::FinalTry(s)) => Err(Failure::RefusedFinalTry(s)),
        Err(e) => Err(Failure::Other(e.to_string())),
    }
}

/// PEM text (some libraries export it, SKF.md §3.8.10) to DER; DER stays as it is.
fn cert_der(bytes: Vec<u8>) -> Vec<u8> {
    use base64::Engine as _;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return bytes;
    };
    if !text.trim_start().starts_with("-----BEGIN") {
        return bytes;
    }
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or(bytes)
}

impl Host {
    fn handle(&mut self, request: Request) -> Result<Answer, Failure> {
        match request {
            Request::Scan => self.scan().map(Answer::Devices),
            Request::PinState { device } => {
                let dev = self.connect(&device)?;
                let (_, app) = self.token_app(dev.handle)?;
                self.pin_info(app.handle, abi::USER_TYPE).map(Answer::Pin)
            }
            Request::Sign {
                device,
                container,
                data,
                auth,
            } => self.sign(&device, &container, &data, auth),
            Request::ChangePin {
                device,
                old,
                new,
                force,
            } => self.change_pin(&device, &old, &new, force),
            Request::Unlock {
                device,
                admin,
                new,
                force,
            } => self.unlock(&device, &admin, &new, force),
            Request::Logout { device } => {
                self.end_session(&device);
                Ok(Answer::Done)
            }
            Request::Reset => {
                self.close_all();
                Ok(Answer::Done)
            }
            Request::Watch | Request::Shutdown => Ok(Answer::Done),
        }
    }

    fn close_all(&mut self) {
        let devices: Vec<Vec<u8>> = self.sessions.keys().cloned().collect();
        for d in devices {
            self.end_session(&d);
        }
    }

    fn end_session(&mut self, device: &[u8]) {
        if let Some(s) = self.sessions.remove(device) {
            let f = &*self.f;
            // SAFETY: the session's handles, still open; closed once here.
            unsafe {
                for c in s.containers.into_values() {
                    (f.close_container)(c);
                }
                (f.clear_secure_state)(s.app);
                (f.close_application)(s.app);
                (f.disconnect_dev)(s.dev);
            }
        }
    }

    fn names(
        &self,
        function: &str,
        call: impl FnMut(*mut u8, &mut Ulong) -> Ulong,
    ) -> Result<Vec<Name>, Failure> {
        match abi::read_sized(abi::MAX_BUFFER, call) {
            Ok(bytes) => Ok(abi::parse_name_list(&bytes)),
            Err(abi::SizedError::Call(Sar(rc))) => Err(failure(function, rc)),
            Err(e) => Err(Failure::Other(format!("{function}: {e}"))),
        }
    }

    fn connect(&self, device: &[u8]) -> Result<Opened, Failure> {
        let name = c_name(device)?;
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: a NUL-terminated name and an out-pointer to a handle.
        check("SKF_ConnectDev", unsafe {
            (self.f.connect_dev)(name.as_ptr(), &mut h)
        })?;
        Ok(Opened {
            f: self.f.clone(),
            handle: h,
            close: close_dev,
        })
    }

    fn applications(&self, dev: Handle) -> Result<Vec<Name>, Failure> {
        let f = &self.f;
        // SAFETY: read_sized passes NULL or a buffer of *len bytes.
        self.names("SKF_EnumApplication", |buf, len| unsafe {
            (f.enum_application)(dev, buf.cast(), len)
        })
    }

    fn open_app(&self, dev: Handle, name: &Name) -> Result<Opened, Failure> {
        let cname = name.to_cstring();
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: a device handle, a NUL-terminated name, an out-pointer.
        check("SKF_OpenApplication", unsafe {
            (self.f.open_application)(dev, cname.as_ptr().cast_mut(), &mut h)
        })?;
        Ok(Opened {
            f: self.f.clone(),
            handle: h,
            close: close_app,
        })
    }

    fn containers(&self, app: Handle) -> Result<Vec<Name>, Failure> {
        let f = &self.f;
        // SAFETY: read_sized passes NULL or a buffer of *len bytes.
        self.names("SKF_EnumContainer", |buf, len| unsafe {
            (f.enum_container)(app, buf.cast(), len)
        })
    }

    fn open_container(&self, app: Handle, name: &[u8]) -> Result<Opened, Failure> {
        let cname = c_name(name)?;
        let mut h: Handle = std::ptr::null_mut();
        // SAFETY: an application handle, a NUL-terminated name, an out-pointer.
        let rc = unsafe { (self.f.open_container)(app, cname.as_ptr().cast_mut(), &mut h) };
        if rc == abi::SAR_FILE_NOT_EXIST || rc == 0x0B00_0035 {
            return Err(Failure::NoContainer(vendor_text(name).into()));
        }
        check("SKF_OpenContainer", rc)?;
        Ok(Opened {
            f: self.f.clone(),
            handle: h,
            close: close_container,
        })
    }

    fn certificate(&self, container: Handle, sign: bool) -> Result<Option<Vec<u8>>, Failure> {
        let f = &self.f;
        let flag = if sign { abi::TRUE } else { abi::FALSE };
        // SAFETY: read_sized passes NULL or a buffer of *len bytes.
        match abi::read_sized(abi::MAX_BUFFER, |buf, len| unsafe {
            (f.export_certificate)(container, flag, buf, len)
        }) {
            Ok(bytes) if bytes.is_empty() => Ok(None),
            Ok(bytes) => Ok(Some(cert_der(bytes))),
            Err(abi::SizedError::Call(Sar(
                abi::SAR_CERTNOTFOUNTERR | abi::SAR_FILE_NOT_EXIST | abi::SAR_KEYNOTFOUNTERR,
            ))) => Ok(None),
            Err(abi::SizedError::Call(Sar(rc))) => Err(failure("SKF_ExportCertificate", rc)),
            Err(e) => Err(Failure::Other(format!("SKF_ExportCertificate: {e}"))),
        }
    }

    fn pin_info(&self, app: Handle, kind: Ulong) -> Result<PinState, Failure> {
        let (mut max, mut remaining, mut default) = (0, 0, abi::FALSE);
        // SAFETY: an application handle and three out-pointers; only the low 32 bits of the
        // return are read (the function type returns u32).
        check("SKF_GetPINInfo", unsafe {
            (self.f.get_pin_info)(app, kind, &mut max, &mut remaining, &mut default)
        })?;
        Ok(pin_state(max, remaining, default != abi::FALSE))
    }

    /// The application whose PINs are the token's: the first holding containers, else the
    /// first.
    fn token_app(&self, dev: Handle) -> Result<(Name, Opened), Failure> {
        let apps = self.applications(dev)?;
        let mut first = None;
        for name in apps {
            let app = self.open_app(dev, &name)?;
            if !self.containers(app.handle)?.is_empty() {
                return Ok((name, app));
            }
            if first.is_none() {
                first = Some(name);
            }
        }
        let name = first.ok_or_else(|| Failure::Other("the key holds no application".into()))?;
        let app = self.open_app(dev, &name)?;
        Ok((name, app))
    }

    fn scan(&mut self) -> Result<Vec<DeviceFound>, Failure> {
        let f = self.f.clone();
        // SAFETY: read_sized passes NULL or a buffer of *len bytes.
        let devices = self.names("SKF_EnumDev", |buf, len| unsafe {
            (f.enum_dev)(abi::TRUE, buf.cast(), len)
        })?;
        let mut found = Vec::new();
        for name in devices {
            match self.scan_device(&name) {
                Ok(d) => found.push(d),
                // Gone between the list and the connect.
                Err(Failure::DeviceRemoved) => {}
                Err(e) => eprintln!("skf-host: device {name}: {e}"),
            }
        }
        Ok(found)
    }

    fn scan_device(&self, name: &Name) -> Result<DeviceFound, Failure> {
        let dev = self.connect(name.as_bytes())?;
        let mut info = abi::DevInfo::zeroed();
        // SAFETY: a device handle and a 294-byte packed DEVINFO to write.
        check("SKF_GetDevInfo", unsafe {
            (self.f.get_dev_info)(dev.handle, &mut info)
        })?;
        let mut device = DeviceFound {
            name: name.as_bytes().to_vec(),
            manufacturer: info.manufacturer(),
            issuer: info.issuer(),
            label: info.label(),
            serial: info.serial(),
            application: None,
            pin: PinState::default(),
            admin_pin: PinState::default(),
            certificates: Vec::new(),
        };
        for app_name in self.applications(dev.handle)? {
            let app = self.open_app(dev.handle, &app_name)?;
            let containers = self.containers(app.handle)?;
            if device.application.is_none() && !containers.is_empty() {
                device.application = Some(app_name.as_bytes().to_vec());
                device.pin = self.pin_info(app.handle, abi::USER_TYPE)?;
                device.admin_pin = self.pin_info(app.handle, abi::ADMIN_TYPE)?;
            }
            for c in containers {
                let container = self.open_container(app.handle, c.as_bytes())?;
                for sign in [true, false] {
                    if let Some(der) = self.certificate(container.handle, sign)? {
                        device.certificates.push(CertFound {
                            container: c.as_bytes().to_vec(),
                            sign,
                            der,
                        });
                    }
                }
            }
        }
        if device.application.is_none() {
            // No containers anywhere: the first application's PINs, if any.
            if let Ok((app_name, app)) = self.token_app(dev.handle) {
                device.application = Some(app_name.as_bytes().to_vec());
                device.pin = self.pin_info(app.handle, abi::USER_TYPE)?;
                device.admin_pin = self.pin_info(app.handle, abi::ADMIN_TYPE)?;
            }
        }
        Ok(device)
    }

    /// After a failed PIN: the state now, as `PinIncorrect` or `PinLocked`.
    fn wrong_pin(&self, app: Handle, kind: Ulong, rc: Ulong, function: &str) -> Failure {
        let state = self.pin_info(app, kind);
        match (rc, state) {
            (abi::SAR_PIN_LOCKED, Ok(s)) => Failure::PinLocked(s),
            (abi::SAR_PIN_INCORRECT, Ok(s)) if s.locked => Failure::PinLocked(s),
            (abi::SAR_PIN_INCORRECT, Ok(s)) => Failure::PinIncorrect(s),
            (abi::SAR_PIN_LOCKED, Err(_)) => Failure::PinLocked(pin_state(0, 0, false)),
            (abi::SAR_PIN_INCORRECT, Err(e)) => e,
            _ => failure(function, rc),
        }
    }

    fn pin_failure(
        &self,
        app: Handle,
        kind: Ulong,
        rc: Ulong,
        function: &str,
        len: usize,
    ) -> Failure {
        match rc {
            abi::SAR_PIN_INCORRECT | abi::SAR_PIN_LOCKED => self.wrong_pin(app, kind, rc, function),
            abi::SAR_PIN_LEN_RANGE | abi::SAR_PIN_INVALID => Failure::PinLenRange { len },
            _ => failure(function, rc),
        }
    }

    /// The application holding `container`, opened.
    fn app_with(&self, dev: Handle, container: &[u8]) -> Result<Opened, Failure> {
        for name in self.applications(dev)? {
            let app = self.open_app(dev, &name)?;
            if self
                .containers(app.handle)?
                .iter()
                .any(|c| c.as_bytes() == container)
            {
                return Ok(app);
            }
        }
        Err(Failure::NoContainer(vendor_text(container).into()))
    }

    fn sign_with(&self, container: Handle, data: &SignData) -> Result<Vec<u8>, Failure> {
        match data {
            SignData::Sm2 { e } => {
                let mut blob = abi::EccSignatureBlob::zeroed();
                // SAFETY: a container handle, e (32 bytes), a 128-byte packed blob to write.
                let rc = unsafe {
                    (self.f.ecc_sign_data)(container, e.as_ptr(), e.len() as Ulong, &mut blob)
                };
                if rc == abi::SAR_USER_NOT_LOGGED_IN {
                    return Err(Failure::PinRequired);
                }
                check("SKF_ECCSignData", rc)?;
                blob.to_der()
                    .map_err(|e| Failure::Other(format!("SKF_ECCSignData: {e}")))
            }
            SignData::Rsa { digest_info } => {
                let Some(rsa_sign) = self.f.rsa_sign_data else {
                    return Err(Failure::Unsupported(
                        "the library does not export SKF_RSASignData".into(),
                    ));
                };
                let mut sig = vec![0u8; 512];
                let mut len = sig.len() as Ulong;
                // SAFETY: a container handle, the input, a buffer of `len` bytes.
                let rc = unsafe {
                    rsa_sign(
                        container,
                        digest_info.as_ptr(),
                        digest_info.len() as Ulong,
                        sig.as_mut_ptr(),
                        &mut len,
                    )
                };
                if rc == abi::SAR_USER_NOT_LOGGED_IN {
                    return Err(Failure::PinRequired);
                }
                check("SKF_RSASignData", rc)?;
                if len as usize > sig.len() {
                    return Err(Failure::Other("SKF_RSASignData: implausible length".into()));
                }
                sig.truncate(len as usize);
                Ok(sig)
            }
        }
    }

    fn sign(
        &mut self,
        device: &[u8],
        container: &[u8],
        data: &SignData,
        auth: SignAuth,
    ) -> Result<Answer, Failure> {
        let (pin, force, remember) = match auth {
            SignAuth::Session => {
                let Some(s) = self.sessions.get(device) else {
                    return Err(Failure::PinRequired);
                };
                let result = match s.containers.get(container) {
                    Some(&c) => self.sign_with(c, data),
                    None => match self.open_container(s.app, container) {
                        Ok(c) => {
                            let result = self.sign_with(c.handle, data);
                            let c = c.keep();
                            if let Some(s) = self.sessions.get_mut(device) {
                                s.containers.insert(container.to_vec(), c);
                            }
                            result
                        }
                        Err(e) => Err(e),
                    },
                };
                if matches!(result, Err(Failure::DeviceRemoved | Failure::PinRequired)) {
                    self.end_session(device);
                }
                return result.map(Answer::Signature);
            }
            SignAuth::Pin {
                pin,
                force,
                remember,
            } => (pin, force, remember),
        };
        // A PIN in a request is always checked by the key: a kept login ends first.
        self.end_session(device);
        let dev = self.connect(device)?;
        let app = self.app_with(dev.handle, container)?;
        admit(self.pin_info(app.handle, abi::USER_TYPE)?, force)?;
        let cpin = c_pin(&pin)?;
        let mut retries: Ulong = 0;
        // SAFETY: an application handle, a NUL-terminated PIN, an out-pointer.
        let rc = unsafe {
            (self.f.verify_pin)(
                app.handle,
                abi::USER_TYPE,
                cpin.as_ptr().cast(),
                &mut retries,
            )
        };
        if rc != abi::SAR_OK {
            return Err(self.pin_failure(
                app.handle,
                abi::USER_TYPE,
                rc,
                "SKF_VerifyPIN",
                pin_len(&pin),
            ));
        }
        let c = self.open_container(app.handle, container)?;
        let result = self.sign_with(c.handle, data);
        if remember && result.is_ok() {
            let containers = HashMap::from([(container.to_vec(), c.keep())]);
            let app = app.keep();
            let dev = dev.keep();
            self.sessions.insert(
                device.to_vec(),
                Session {
                    dev,
                    app,
                    containers,
                },
            );
        } else {
            drop(c);
            // SAFETY: the open application handle.
            unsafe { (self.f.clear_secure_state)(app.handle) };
        }
        result.map(Answer::Signature)
    }

    fn change_pin(
        &mut self,
        device: &[u8],
        old: &WirePin,
        new: &WirePin,
        force: bool,
    ) -> Result<Answer, Failure> {
        let dev = self.connect(device)?;
        let (_, app) = self.token_app(dev.handle)?;
        admit(self.pin_info(app.handle, abi::USER_TYPE)?, force)?;
        let (cold, cnew) = (c_pin(old)?, c_pin(new)?);
        let mut retries: Ulong = 0;
        // SAFETY: an application handle, two NUL-terminated PINs, an out-pointer.
        let rc = unsafe {
            (self.f.change_pin)(
                app.handle,
                abi::USER_TYPE,
                cold.as_ptr().cast(),
                cnew.as_ptr().cast(),
                &mut retries,
            )
        };
        if rc != abi::SAR_OK {
            let len = if rc == abi::SAR_PIN_LEN_RANGE {
                pin_len(new)
            } else {
                pin_len(old)
            };
            return Err(self.pin_failure(app.handle, abi::USER_TYPE, rc, "SKF_ChangePIN", len));
        }
        self.pin_info(app.handle, abi::USER_TYPE).map(Answer::Pin)
    }

    fn unlock(
        &mut self,
        device: &[u8],
        admin: &WirePin,
        new: &WirePin,
        force: bool,
    ) -> Result<Answer, Failure> {
        self.end_session(device);
        let dev = self.connect(device)?;
        let (_, app) = self.token_app(dev.handle)?;
        admit(self.pin_info(app.handle, abi::ADMIN_TYPE)?, force)?;
        let (cadmin, cnew) = (c_pin(admin)?, c_pin(new)?);
        let mut retries: Ulong = 0;
        // SAFETY: an application handle, two NUL-terminated PINs, an out-pointer.
        let rc = unsafe {
            (self.f.unblock_pin)(
                app.handle,
                cadmin.as_ptr().cast(),
                cnew.as_ptr().cast(),
                &mut retries,
            )
        };
        if rc != abi::SAR_OK {
            let len = if rc == abi::SAR_PIN_LEN_RANGE {
                pin_len(new)
            } else {
                pin_len(admin)
            };
            return Err(self.pin_failure(app.handle, abi::ADMIN_TYPE, rc, "SKF_UnblockPIN", len));
        }
        self.pin_info(app.handle, abi::USER_TYPE).map(Answer::Pin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_counters_become_flags() {
        let s = pin_state(6, 6, true);
        assert!(!s.count_low && !s.final_try && !s.locked && s.default_pin);
        assert_eq!(s.tries_left, Some(6));
        let s = pin_state(6, 1, false);
        assert!(s.count_low && s.final_try && !s.locked);
        let s = pin_state(6, 0, false);
        assert!(s.locked && !s.count_low);
    }

    #[test]
    fn pem_certificates_become_der() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let pem = "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n";
        assert_eq!(cert_der(pem.as_bytes().to_vec()), der);
        assert_eq!(cert_der(der.clone()), der);
    }
}
