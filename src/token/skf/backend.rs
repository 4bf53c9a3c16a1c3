//! [`SkfBackend`]: the [`Backend`] for one SKF library, which runs in a `certray skf-host`
//! child process ([`super::host`]).
//!
//! One client thread per library sends the requests to the host, one at a time, and waits
//! for each answer at most the request timeout. A host that dies (a vendor library that
//! segfaults) answers the request in flight with [`Error::SkfHostCrashed`]; a host that
//! does not answer in time is killed, and the request gets [`Error::SkfHostHung`]. Either
//! way the next request starts a new host. A library that cannot be loaded at all is
//! [`Error::ModuleLoad`], at [`SkfBackend::spawn`].
//!
//! Unlike PKCS#11 modules (a thread per token), all devices of one SKF library share its one
//! queue: vendor SKF libraries are rarely thread-safe, so a request for one device may wait
//! behind a signature on another device *of the same library*, never of another library.
//!
//! Devices are tokens (id from manufacturer, label and serial: stable across re-insertion);
//! the application holding the containers carries the PINs; each container's signing
//! certificate is a certificate object whose key id is the container name's bytes (the
//! encryption certificate is listed too, without a signing key).
//!
//! The signature input is prepared here, around the host: SM2 gets e = SM3(Z‖M) with Z from
//! the certificate's public key and the default ID `1234567812345678` (`cert::sm2_e`); RSA
//! gets DigestInfo‖hash. The core verifies every signature against the certificate before
//! it leaves, so a library that hashes twice (`sm2-double-hash`) gives SIGNATURE_INVALID,
//! never a bad signature.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::protocol::{
    Answer, DeviceFound, Failure, HostFrame, Request, RequestFrame, SignAuth, SignData, WirePin,
    read_frame, write_frame,
};
use crate::model::{
    CertObject, HashAlg, KeyKind, KeyPresence, Location, Pin, PinRefusal, PinState, SignInput,
    Signature, Token, TokenId, TokenScan, algorithm_name,
};
use crate::text::vendor_text;
use crate::token::Error;
use crate::token::backend::{Auth, Backend, DeviceEvent, Pending, Sent, SignRequest};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable naming the program to run as `… skf-host` (default: this
/// executable). Tests that load certray in-process set it to the certray binary.
pub const HOST_PROGRAM_ENV: &str = "CERTRAY_SKF_HOST";

/// The model name SKF tokens show.
pub const MODEL: &str = "GM/T 0016 (SKF)";

/// How the backend runs its host.
#[derive(Debug, Clone)]
pub struct SkfOptions {
    /// The certray executable to run as `PROGRAM skf-host --library PATH`.
    pub program: PathBuf,
    /// How long one request may take before the host is deemed hung and killed.
    pub timeout: Duration,
}

impl Default for SkfOptions {
    fn default() -> Self {
        let program = std::env::var_os(HOST_PROGRAM_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("certray"));
        SkfOptions {
            program,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What the backend knows from its last scans.
#[derive(Default)]
struct Known {
    /// token id → the device name.
    devices: HashMap<TokenId, Vec<u8>>,
    /// Every token id ever seen (a missing one is then TOKEN_REMOVED, not TOKEN_NOT_FOUND).
    seen: HashSet<TokenId>,
    /// (token id, container name) → the signing certificate.
    certs: HashMap<(TokenId, Vec<u8>), Vec<u8>>,
}

type Watcher = Box<dyn FnMut(DeviceEvent) + Send>;

struct Shared {
    library: PathBuf,
    options: SkfOptions,
    known: Mutex<Known>,
    watchers: Mutex<Vec<Watcher>>,
    /// Why hosts ended badly, newest last (at most 8).
    incidents: Mutex<VecDeque<String>>,
    /// The devices the last scan found (names shown lossily), for `certray doctor`.
    last_devices: Mutex<Vec<String>>,
}

impl Shared {
    fn notify(&self, event: DeviceEvent) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        for w in watchers.iter_mut() {
            w(event);
        }
    }

    fn incident(&self, what: String) {
        tracing::warn!(library = %self.library.display(), "{what}");
        let mut i = self.incidents.lock().unwrap_or_else(|e| e.into_inner());
        if i.len() == 8 {
            i.pop_front();
        }
        i.push_back(what);
    }
}

type Reply = Box<dyn FnOnce(Result<Answer, Error>) + Send>;

struct Job {
    request: Request,
    reply: Reply,
}

/// An SKF library served by a host process. Cloning is cheap; dropping the last clone
/// stops the host (cancelling its event wait within a bound) and the client thread.
#[derive(Clone)]
pub struct SkfBackend {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SkfBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkfBackend")
            .field("library", &self.inner.shared.library)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl SkfBackend {
    /// Start a host for `library` and wait until it has loaded the library: a library that
    /// cannot be loaded (missing, not SKF, lacking a required function) is
    /// [`Error::ModuleLoad`] here.
    pub fn spawn(library: &Path, options: SkfOptions) -> Result<SkfBackend, Error> {
        let shared = Arc::new(Shared {
            library: library.to_path_buf(),
            options,
            known: Mutex::new(Known::default()),
            watchers: Mutex::new(Vec::new()),
            incidents: Mutex::new(VecDeque::new()),
            last_devices: Mutex::new(Vec::new()),
        });
        let host = HostProcess::start(&shared)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let client = Client {
            shared: shared.clone(),
            host: Some(host),
            watching: false,
        };
        let thread = thread::Builder::new()
            .name("skf-client".into())
            .spawn(move || client.run(rx))
            .map_err(|e| Error::Other(format!("cannot start the SKF client thread: {e}")))?;
        Ok(SkfBackend {
            inner: Arc::new(Inner {
                shared,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Why hosts of this library crashed or hung, oldest first.
    pub fn incidents(&self) -> Vec<String> {
        let i = self.inner.shared.incidents.lock();
        i.unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The device names the last scan found.
    pub fn devices(&self) -> Vec<String> {
        let d = self.inner.shared.last_devices.lock();
        d.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Send `request`; `convert` turns the answer into the caller's type.
    fn call<T: Send + 'static>(
        &self,
        request: Request,
        convert: impl FnOnce(Answer) -> Result<T, Error> + Send + 'static,
    ) -> Pending<T> {
        let inner = self.inner.clone();
        Pending::new(move |_| {
            let (tx, rx) = oneshot::channel();
            let reply: Reply = Box::new(move |r| {
                let _ = tx.send(r.and_then(convert));
            });
            let sender = inner.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let sender = sender.ok_or(Error::WorkerGone)?;
            sender
                .send(Job { request, reply })
                .map_err(|_| Error::WorkerGone)?;
            Ok(Sent::reply(rx))
        })
    }

    /// The device of a token, or why there is none.
    fn device(&self, token: &TokenId) -> Result<Vec<u8>, Error> {
        let known = self.inner.shared.known.lock();
        let known = known.unwrap_or_else(|e| e.into_inner());
        match known.devices.get(token) {
            Some(d) => Ok(d.clone()),
            None if known.seen.contains(token) => Err(Error::TokenRemoved),
            None => Err(Error::TokenNotFound(token.to_string())),
        }
    }

    fn pin_answer(answer: Answer) -> Result<PinState, Error> {
        match answer {
            Answer::Pin(p) => Ok(p),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(answer: &Answer) -> Error {
    Error::Other(format!("unexpected answer from the SKF host: {answer:?}"))
}

/// The token a device is.
fn token_of(library: &Path, index: usize, d: &DeviceFound) -> Token {
    Token {
        id: TokenId::derive(&d.manufacturer, &d.label, &d.serial),
        label: d.label.clone(),
        manufacturer: d.manufacturer.clone(),
        model: MODEL.to_owned(),
        serial: d.serial.clone(),
        location: Location {
            library: library.to_path_buf(),
            slot: index as u64,
        },
        pin: d.pin,
        so_pin: d.admin_pin,
        seal: None,
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        match f {
            Failure::DeviceRemoved => Error::TokenRemoved,
            Failure::NoContainer(c) => Error::NoPrivateKey(c),
            Failure::PinIncorrect(pin) => Error::PinIncorrect { pin },
            Failure::PinLocked(pin) => Error::PinLocked { pin },
            Failure::RefusedLocked(s) => Error::Refused(PinRefusal::Locked(s)),
            Failure::RefusedFinalTry(s) => Error::Refused(PinRefusal::FinalTry(s)),
            // The key refused the length (SKF does not report its range beforehand).
            Failure::PinLenRange { len } => Error::Refused(PinRefusal::LenRange {
                len,
                min: 0,
                max: 0,
            }),
            Failure::PinRequired => Error::PinRequired,
            Failure::Unsupported(s) => Error::Unsupported(s),
            Failure::Sar { function, rc } => Error::Skf { function, rc },
            Failure::Other(s) => Error::Other(s),
        }
    }
}

/// What a signing certificate's key is.
enum KeyOf {
    /// The uncompressed point, for Z.
    Sm2 {
        point: Vec<u8>,
    },
    Rsa,
}

fn key_of(cert: &[u8]) -> Result<KeyOf, Error> {
    use x509_parser::prelude::FromDer;
    let (_, x509) = x509_parser::certificate::X509Certificate::from_der(cert)
        .map_err(|e| Error::Other(format!("the key's certificate does not parse: {e}")))?;
    let spki = &x509.tbs_certificate.subject_pki;
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let params = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let bits = spki.subject_public_key.data.to_vec();
    match (algorithm.as_str(), params.as_deref()) {
        ("1.2.156.10197.1.301", _) | ("1.2.840.10045.2.1", Some("1.2.156.10197.1.301")) => {
            Ok(KeyOf::Sm2 { point: bits })
        }
        ("1.2.840.113549.1.1.1", _) => Ok(KeyOf::Rsa),
        (other, _) => Err(Error::Unsupported(format!(
            "an SKF key of algorithm {other}"
        ))),
    }
}

impl Backend for SkfBackend {
    fn library(&self) -> &Path {
        &self.inner.shared.library
    }

    fn scan(&self) -> Pending<Vec<TokenScan>> {
        let shared = self.inner.shared.clone();
        self.call(Request::Scan, move |answer| {
            let Answer::Devices(devices) = answer else {
                return Err(unexpected(&answer));
            };
            let mut known = shared.known.lock().unwrap_or_else(|e| e.into_inner());
            known.devices.clear();
            known.certs.clear();
            let mut scans = Vec::new();
            for (i, d) in devices.into_iter().enumerate() {
                let token = token_of(&shared.library, i, &d);
                known.devices.insert(token.id.clone(), d.name.clone());
                known.seen.insert(token.id.clone());
                let certificates = d
                    .certificates
                    .into_iter()
                    .map(|c| {
                        if c.sign {
                            known
                                .certs
                                .insert((token.id.clone(), c.container.clone()), c.der.clone());
                        }
                        let name = vendor_text(&c.container).into_owned();
                        CertObject {
                            token_id: token.id.clone(),
                            label: if c.sign {
                                name
                            } else {
                                format!("{name} (encryption)")
                            },
                            key_id: c.container,
                            der: c.der,
                            has_private_key: if c.sign {
                                KeyPresence::Yes
                            } else {
                                KeyPresence::No
                            },
                        }
                    })
                    .collect();
                scans.push(TokenScan {
                    token,
                    certificates,
                });
            }
            let names = known
                .devices
                .values()
                .map(|n| vendor_text(n).into_owned())
                .collect();
            drop(known);
            *shared
                .last_devices
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = names;
            Ok(scans)
        })
    }

    fn sign(&self, request: SignRequest) -> Pending<Signature> {
        let prepared = (|| {
            let device = self.device(&request.token_id)?;
            let cert = {
                let known = self.inner.shared.known.lock();
                let known = known.unwrap_or_else(|e| e.into_inner());
                known
                    .certs
                    .get(&(request.token_id.clone(), request.key_id.clone()))
                    .cloned()
                    .ok_or_else(|| Error::NoPrivateKey(hex::encode(&request.key_id)))?
            };
            let (data, kind) = match key_of(&cert)? {
                KeyOf::Sm2 { point } => {
                    if request.hash != HashAlg::Sm3 {
                        return Err(Error::Unsupported(format!(
                            "SM2 keys sign SM3, not {}",
                            request.hash.as_str()
                        )));
                    }
                    // What SKF_ECCSignData signs: e = SM3(Z‖M), or e given (SignInput).
                    let e = match &request.input {
                        SignInput::Data(message) => crate::cert::sm2_e(
                            &point,
                            crate::cert::SM2_DEFAULT_ID.as_bytes(),
                            message,
                        )
                        .ok_or_else(|| {
                            Error::Unsupported(
                                "an SM2 key that is not an uncompressed point".into(),
                            )
                        })?
                        .to_vec(),
                        SignInput::Digest(_) => request.input.digest(HashAlg::Sm3)?,
                    };
                    (SignData::Sm2 { e }, KeyKind::Sm2)
                }
                KeyOf::Rsa => {
                    let digest = request.input.digest(request.hash)?;
                    let digest_info = request.hash.digest_info(&digest);
                    (SignData::Rsa { digest_info }, KeyKind::Rsa)
                }
            };
            Ok((device, data, algorithm_name(kind, request.hash)))
        })();
        let (device, data, algorithm) = match prepared {
            Ok(p) => p,
            Err(e) => return Pending::ready(Err(e)),
        };
        let auth = match request.auth {
            Auth::Pin {
                pin,
                force,
                remember,
            } => SignAuth::Pin {
                pin: WirePin::new(&pin),
                force,
                remember,
            },
            Auth::Session => SignAuth::Session,
        };
        self.call(
            Request::Sign {
                device,
                container: request.key_id,
                data,
                auth,
            },
            move |answer| {
                let Answer::Signature(bytes) = answer else {
                    return Err(unexpected(&answer));
                };
                // The core verifies it against the certificate before it leaves
                // (`core::KeyCache::verify_signature`): a library that hashes twice is refused there.
                Ok(Signature { algorithm, bytes })
            },
        )
    }

    fn pin_state(&self, token: &TokenId) -> Pending<PinState> {
        match self.device(token) {
            Ok(device) => self.call(Request::PinState { device }, Self::pin_answer),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    fn change_pin(&self, token: &TokenId, old: Pin, new: Pin, force: bool) -> Pending<PinState> {
        match self.device(token) {
            Ok(device) => self.call(
                Request::ChangePin {
                    device,
                    old: WirePin::new(&old),
                    new: WirePin::new(&new),
                    force,
                },
                Self::pin_answer,
            ),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    fn unlock(&self, token: &TokenId, so_pin: Pin, new: Pin, force: bool) -> Pending<PinState> {
        match self.device(token) {
            Ok(device) => self.call(
                Request::Unlock {
                    device,
                    admin: WirePin::new(&so_pin),
                    new: WirePin::new(&new),
                    force,
                },
                Self::pin_answer,
            ),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    fn logout(&self, token: &TokenId) -> Pending<()> {
        match self.device(token) {
            Ok(device) => self.call(Request::Logout { device }, |_| Ok(())),
            Err(_) => Pending::ready(Ok(())),
        }
    }

    fn reinitialize(&self) -> Pending<()> {
        self.call(Request::Reset, |_| Ok(()))
    }

    fn watch(&self, on_event: Box<dyn FnMut(DeviceEvent) + Send>) -> bool {
        self.inner
            .shared
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(on_event);
        matches!(
            self.call(Request::Watch, |a| match a {
                Answer::Watching(w) => Ok(w),
                other => Err(unexpected(&other)),
            })
            .wait(),
            Ok(true)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The client thread and the host process
// ---------------------------------------------------------------------------------------------

enum FromHost {
    Reply {
        id: u64,
        result: Result<Answer, Failure>,
    },
    Eof,
}

struct HostProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::Receiver<FromHost>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Closed by the stderr reader when it reaches end of file.
    stderr_done: mpsc::Receiver<()>,
    next_id: u64,
}

impl HostProcess {
    /// Start a host and wait for its first answer (a `Reset`): by then the library is
    /// loaded, or the host has exited saying why.
    fn start(shared: &Arc<Shared>) -> Result<HostProcess, Error> {
        let load_error = |reason: String| Error::ModuleLoad {
            path: shared.library.clone(),
            reason,
        };
        let mut child = Command::new(&shared.options.program)
            .arg("skf-host")
            .arg("--library")
            .arg(&shared.library)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                load_error(format!(
                    "cannot start {} skf-host: {e}",
                    shared.options.program.display()
                ))
            })?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped");
        let stderr_pipe = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (stderr_eof, stderr_done) = mpsc::channel::<()>();
        {
            let tail = stderr.clone();
            let library = shared.library.clone();
            let _ = thread::Builder::new()
                .name("skf-host-stderr".into())
                .spawn(move || {
                    // Dropped at end of file: `stderr_tail` waits for it.
                    let _eof = stderr_eof;
                    for line in BufReader::new(stderr_pipe).lines() {
                        let Ok(line) = line else { break };
                        tracing::info!(library = %library.display(), "skf-host: {line}");
                        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                        if t.len() == 20 {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                });
        }
        let (tx, replies) = mpsc::channel();
        {
            let shared = shared.clone();
            let _ = thread::Builder::new()
                .name("skf-host-reader".into())
                .spawn(move || {
                    loop {
                        match read_frame::<HostFrame>(&mut stdout) {
                            Ok(Some(HostFrame::Reply { id, result })) => {
                                if tx.send(FromHost::Reply { id, result }).is_err() {
                                    break;
                                }
                            }
                            Ok(Some(HostFrame::Event { .. })) => {
                                shared.notify(DeviceEvent::Changed);
                            }
                            Ok(Some(HostFrame::EventsUnsupported)) => {
                                shared.notify(DeviceEvent::Unsupported);
                            }
                            Ok(None) | Err(_) => {
                                let _ = tx.send(FromHost::Eof);
                                break;
                            }
                        }
                    }
                });
        }
        let mut host = HostProcess {
            child,
            stdin,
            replies,
            stderr,
            stderr_done,
            next_id: 1,
        };
        match host.request(Request::Reset, shared.options.timeout) {
            Ok(_) => Ok(host),
            Err(HostError::Gone) => {
                let status = host.reap();
                let tail = host.stderr_tail();
                Err(load_error(if tail.is_empty() {
                    describe(status)
                } else {
                    tail
                }))
            }
            Err(HostError::Timeout) => {
                host.kill();
                Err(load_error(format!(
                    "the SKF host did not answer within {:?}",
                    shared.options.timeout
                )))
            }
        }
    }

    fn request(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Result<Answer, Failure>, HostError> {
        let id = self.next_id;
        self.next_id += 1;
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(HostError::Gone);
        };
        if write_frame(stdin, &RequestFrame { id, request }).is_err() {
            return Err(HostError::Gone);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .replies
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(FromHost::Reply { id: got, result }) if got == id => return Ok(result),
                // An answer to a request given up on earlier: skip it.
                Ok(FromHost::Reply { .. }) => continue,
                Ok(FromHost::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(HostError::Gone);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(HostError::Timeout),
            }
        }
    }

    /// The last lines the host wrote to stderr. Called after the host exited: the
    /// reader thread may still be reading what it wrote last, so wait (bounded) for it
    /// to reach end of file first.
    fn stderr_tail(&self) -> String {
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(2));
        let t = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("; ")
    }

    /// Wait for a host whose pipe has closed to exit (killing it after a while).
    fn reap(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ask the host to stop (it cancels its event wait within its bound); kill it if it
    /// does not exit in time.
    fn stop(mut self, timeout: Duration) {
        let _ = self.request(Request::Shutdown, timeout);
        self.stdin.take();
        let deadline = Instant::now() + super::host::CANCEL_BOUND + Duration::from_secs(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => return self.kill(),
            }
        }
    }
}

enum HostError {
    Gone,
    Timeout,
}

/// An exit status in words.
fn describe(status: Option<ExitStatus>) -> String {
    let Some(status) = status else {
        return "the SKF host did not exit and was killed".into();
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGFPE => " (SIGFPE)",
                _ => "",
            };
            return format!("the SKF host was killed by signal {signal}{name}");
        }
    }
    format!("the SKF host exited with {status}")
}

struct Client {
    shared: Arc<Shared>,
    host: Option<HostProcess>,
    /// A watcher asked for events: every new host starts its event thread.
    watching: bool,
}

impl Client {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            let result = self.handle(job.request);
            (job.reply)(result);
        }
        if let Some(host) = self.host.take() {
            host.stop(Duration::from_secs(2));
        }
    }

    fn handle(&mut self, request: Request) -> Result<Answer, Error> {
        if matches!(request, Request::Watch) {
            self.watching = true;
        }
        let restarted = self.host.is_none();
        if self.host.is_none() {
            self.host = Some(HostProcess::start(&self.shared)?);
            if self.watching && !matches!(request, Request::Watch) {
                let _ = self.exchange(Request::Watch);
            }
        }
        if restarted && !matches!(request, Request::Watch) {
            // A new host: the devices may have changed while there was none.
            self.shared.notify(DeviceEvent::Changed);
        }
        self.exchange(request)
    }

    fn exchange(&mut self, request: Request) -> Result<Answer, Error> {
        let timeout = self.shared.options.timeout;
        let library = self.shared.library.clone();
        let Some(host) = self.host.as_mut() else {
            return Err(Error::WorkerGone);
        };
        match host.request(request, timeout) {
            Ok(result) => Ok(result?),
            Err(HostError::Gone) => {
                let mut host = self.host.take().expect("checked");
                let status = host.reap();
                let mut reason = describe(status);
                let tail = host.stderr_tail();
                if !tail.is_empty() {
                    reason = format!("{reason}; {tail}");
                }
                self.shared.incident(format!("crashed: {reason}"));
                Err(Error::SkfHostCrashed { library, reason })
            }
            Err(HostError::Timeout) => {
                let mut host = self.host.take().expect("checked");
                host.kill();
                self.shared
                    .incident(format!("hung: no answer within {timeout:?}, killed"));
                Err(Error::SkfHostHung { library, timeout })
            }
        }
    }
}
