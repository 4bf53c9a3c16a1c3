//! A running `certray run --headless` ([`Daemon`]) and a tiny hand-written HTTP/1.1 client
//! ([`Request`], [`Response`], [`EventStream`]) so that tests control every header exactly:
//! `Host` (or none at all), `Origin`, `Content-Type`, `Access-Control-Request-*`.
//!
//! The daemon gets its own config file (SoftHSM only, `[bridge] listen = "127.0.0.1:0"` unless
//! the test says otherwise), the SoftHSM environment, and `XDG_STATE_HOME` in a temporary
//! directory, so its approvals (`origins.json`) and `audit.log` land in
//! [`Daemon::state_dir`]. With port 0 the OS picks the port; the daemon prints
//! `证书助手已启动：http://127.0.0.1:PORT/` on stdout and [`Daemon::start`] reads it from there.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{SOFTHSM_MODULE, SoftHsm, certray, fixture};

/// How long a request may take before the test fails (a 17 MiB upload included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------------

/// `certray --config <tmp toml> run --headless`, killed on drop.
pub struct Daemon {
    child: Child,
    /// The address the daemon said it serves on.
    addr: SocketAddr,
    port: u16,
    /// XDG_STATE_HOME (and the config file, and the daemon's stderr).
    home: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(&'static str, OsString)>,
}

/// The config text: SoftHSM only (`use_defaults = false`), `[bridge] listen =
/// "127.0.0.1:0"`, then `extra` (TOML) merged over it table by table, so `extra` may have its
/// own `[bridge]` section with `allowed_origins` or even another `listen`.
pub fn config_text(extra: &str) -> String {
    let base = format!(
        "[pkcs11]\nmodules = [\"{SOFTHSM_MODULE}\"]\nuse_defaults = false\n\n[bridge]\nlisten = \"127.0.0.1:0\"\n"
    );
    let mut table: toml::Table = base.parse().expect("base config is TOML");
    let extra: toml::Table = extra
        .parse()
        .unwrap_or_else(|e| panic!("extra config is not TOML ({e}):\n{extra}"));
    merge(&mut table, extra);
    toml::to_string(&table).expect("config serialises")
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

impl Daemon {
    /// Write the config ([`config_text`]) into a fresh temp dir that is also XDG_STATE_HOME,
    /// start the daemon, read its port from stdout and wait until `GET /v1/status` answers.
    /// Panics (with the daemon's stderr) if it exits or does not answer within 20 s.
    pub fn start(hsm: &SoftHsm, extra_config: &str) -> Daemon {
        Daemon::start_with(hsm, extra_config, |_| {})
    }

    /// [`Daemon::start`], with `tweak` applied to the command first (a resource limit, say).
    pub fn start_with(
        hsm: &SoftHsm,
        extra_config: &str,
        tweak: impl FnOnce(&mut Command),
    ) -> Daemon {
        let (home, config, env) = Daemon::prepare(hsm, extra_config);
        let stderr = std::fs::File::create(home.path().join("stderr.log")).expect("stderr.log");
        let mut cmd = certray(&env);
        cmd.arg("--config")
            .arg(&config)
            .args(["--log-level", "info", "run", "--headless"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        tweak(&mut cmd);
        let mut child = cmd.spawn().expect("start certray run");
        let rx = super::first_stdout_line(child.stdout.take().expect("stdout"));
        let stderr_of =
            |home: &Path| std::fs::read_to_string(home.join("stderr.log")).unwrap_or_default();
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "certray run printed no address within 20 s ({status:?}); stderr:\n{}",
                    stderr_of(home.path())
                );
            }
        };
        let addr: SocketAddr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.trim().trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no http://ADDRESS:PORT/ in the first line: {line:?}"));
        let port = addr.port();
        assert_ne!(port, 0, "the daemon reported port 0: {line:?}");
        let daemon = Daemon {
            child,
            addr,
            port,
            home,
            config,
            env,
        };
        daemon.wait_ready();
        daemon
    }

    /// The config file, temp dir and environment [`Daemon::start`] uses, without starting
    /// anything (for tests that expect `certray run` to refuse).
    pub fn prepare(
        hsm: &SoftHsm,
        extra_config: &str,
    ) -> (tempfile::TempDir, PathBuf, Vec<(&'static str, OsString)>) {
        let home = tempfile::Builder::new()
            .prefix("certray-daemon-")
            .tempdir()
            .expect("tempdir");
        let config = home.path().join("certray.toml");
        std::fs::write(&config, config_text(extra_config)).expect("write config");
        let mut env = hsm.env().to_vec();
        env.push(("XDG_STATE_HOME", home.path().as_os_str().to_owned()));
        (home, config, env)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.get("/v1/status").try_send()
                && r.status == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "GET /v1/status did not answer within 20 s; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port the daemon listens on (chosen by the OS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the daemon said it serves on (`127.0.0.1:PORT` unless configured
    /// otherwise).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDRESS:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// XDG_STATE_HOME of the daemon.
    pub fn state_home(&self) -> &Path {
        self.home.path()
    }

    /// `$XDG_STATE_HOME/certray`: `origins.json` and `audit.log`.
    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join("certray")
    }

    /// The config file the daemon runs with.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The daemon's environment: SoftHSM and XDG_STATE_HOME.
    pub fn env(&self) -> &[(&'static str, OsString)] {
        &self.env
    }

    /// certray with the daemon's environment and `--config` (for `certray audit --json`).
    pub fn certray(&self) -> Command {
        let mut cmd = certray(&self.env);
        cmd.arg("--config").arg(&self.config);
        cmd
    }

    /// What the daemon wrote on stderr so far (log level info).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.home.path().join("stderr.log")).unwrap_or_default()
    }

    /// Whether the daemon is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A request to this daemon (`Host: 127.0.0.1:PORT` unless changed).
    pub fn request(&self, method: &str, path: &str) -> Request {
        Request::new(self.addr(), method, path)
    }

    pub fn get(&self, path: &str) -> Request {
        self.request("GET", path)
    }

    /// `POST path` with `Content-Type: application/json` and `body`.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Request {
        self.request("POST", path).json(body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// One HTTP/1.1 request on its own connection (`Connection: close`), every header as given.
#[derive(Debug, Clone)]
pub struct Request {
    addr: SocketAddr,
    method: String,
    path: String,
    /// `None`: no Host header at all.
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send `Content-Length` (with a body, or for POST).
    content_length: bool,
    /// Connect from this local address (a non-loopback one, to be a non-loopback peer).
    local: Option<std::net::IpAddr>,
}

impl Request {
    /// `METHOD path HTTP/1.1` to `addr`, with `Host: addr`.
    pub fn new(addr: SocketAddr, method: &str, path: &str) -> Request {
        Request {
            addr,
            method: method.into(),
            path: path.into(),
            host: Some(addr.to_string()),
            headers: Vec::new(),
            body: Vec::new(),
            content_length: method == "POST" || method == "PUT",
            local: None,
        }
    }

    /// Connect from `ip` (bound before connecting) instead of the default source address.
    /// Connecting from a non-loopback address of this machine to 127.0.0.1 makes a
    /// non-loopback peer without any network namespace.
    pub fn source_ip(mut self, ip: std::net::IpAddr) -> Request {
        self.local = Some(ip);
        self
    }

    /// Send this `Host` header instead.
    pub fn host(mut self, host: &str) -> Request {
        self.host = Some(host.into());
        self
    }

    /// Send no `Host` header.
    pub fn no_host(mut self) -> Request {
        self.host = None;
        self
    }

    /// Add a header (sent as given, after Host).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn origin(self, origin: &str) -> Request {
        self.header("Origin", origin)
    }

    /// `Origin` if given.
    pub fn maybe_origin(self, origin: Option<&str>) -> Request {
        match origin {
            Some(o) => self.origin(o),
            None => self,
        }
    }

    /// `Accept-Language`.
    pub fn lang(self, lang: &str) -> Request {
        self.header("Accept-Language", lang)
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, body: &serde_json::Value) -> Request {
        self.body("application/json", serde_json::to_vec(body).expect("JSON"))
    }

    /// A body with this `Content-Type`.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Request {
        self.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        self.headers
            .push(("Content-Type".into(), content_type.into()));
        self.body = body.into();
        self.content_length = true;
        self
    }

    /// The request bytes up to the end of the head.
    fn head(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if let Some(h) = &self.host {
            head.push_str(&format!("Host: {h}\r\n"));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.content_length {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        head.into_bytes()
    }

    /// Connect and send the head and body; the body is written by a thread so that a server
    /// answering early (413) is read rather than deadlocking on a full socket buffer.
    fn start(&self) -> std::io::Result<(TcpStream, std::thread::JoinHandle<()>)> {
        let stream = match self.local {
            None => TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?,
            Some(ip) => connect_from(ip, self.addr)?,
        };
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        let mut writer = stream.try_clone()?;
        let head = self.head();
        let body = self.body.clone();
        let t = std::thread::spawn(move || {
            // A server that answered early may close the connection: that is not an error here.
            if writer.write_all(&head).is_ok() {
                let _ = writer.write_all(&body);
            }
            let _ = writer.flush();
        });
        Ok((stream, t))
    }

    /// Send and read the whole answer; panics on I/O errors.
    pub fn send(self) -> Response {
        let line = format!("{} {}", self.method, self.path);
        self.try_send()
            .unwrap_or_else(|e| panic!("{line}: HTTP exchange failed: {e}"))
    }

    /// Send and read the whole answer.
    pub fn try_send(self) -> std::io::Result<Response> {
        let (stream, writer) = self.start()?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader)?;
        let resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let body = if self.method == "HEAD" || status == 204 || status == 304 {
            Vec::new()
        } else if resp.is_chunked() {
            read_chunked(&mut reader)?
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| bad_data(format!("Content-Length {len:?}")))?;
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            body
        } else {
            let mut body = Vec::new();
            reader.read_to_end(&mut body)?;
            body
        };
        let _ = writer.join();
        Ok(Response { body, ..resp })
    }

    /// Send and return once the head has arrived, for `text/event-stream` answers.
    pub fn stream(self) -> EventStream {
        let line = format!("{} {}", self.method, self.path);
        let (stream, writer) = self
            .start()
            .unwrap_or_else(|e| panic!("{line}: connect: {e}"));
        let _ = writer.join();
        let mut reader = BufReader::new(stream);
        let (status, headers) =
            read_head(&mut reader).unwrap_or_else(|e| panic!("{line}: no answer: {e}"));
        let head = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let chunked = head.is_chunked();
        // Whatever the BufReader already holds is the start of the body.
        let raw = reader.buffer().to_vec();
        EventStream {
            stream: reader.into_inner(),
            head,
            chunked,
            raw,
            decoded: Vec::new(),
            eof: false,
        }
    }
}

/// A TCP connection to `to` from local address `from` (port chosen by the OS).
fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async {
        let socket = match from {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))??;
        let std = stream.into_std()?;
        std.set_nonblocking(false)?;
        Ok(std)
    })
}

/// A non-loopback IPv4 address of this machine (`ip -4 -o addr show scope global`), if any.
pub fn non_loopback_ipv4() -> Option<std::net::IpAddr> {
    let ip = super::require("ip", "iproute2");
    let out = super::run(Command::new(ip).args(["-4", "-o", "addr", "show", "scope", "global"]));
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == "inet")?;
        words.next()?.split('/').next()?.parse().ok()
    })
}

fn bad_data(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn read_head(reader: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before an answer",
        ));
    }
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad_data(format!("status line {line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_data(format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        reader.read_line(&mut l)?;
        let l = l.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad_data(format!("header line {l:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok((status, headers))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let hex = size.trim().split(';').next().unwrap_or("");
        let n =
            usize::from_str_radix(hex, 16).map_err(|_| bad_data(format!("chunk size {size:?}")))?;
        if n == 0 {
            // Trailers, then the empty line.
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l)? == 0 || l.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + n, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// An HTTP answer: header names lower-cased.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body otherwise.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not JSON ({e}): {:?}; headers {:?}",
                self.status,
                self.text(),
                self.headers
            )
        })
    }

    /// Assert the status, then the JSON body.
    pub fn expect(&self, status: u16) -> serde_json::Value {
        assert_eq!(
            self.status,
            status,
            "expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        self.json()
    }

    /// Assert an error answer: the status, `{"error":{"code","message","hint"}}` with this
    /// code and non-empty message and hint, `Content-Type: application/json`. Returns the
    /// `error` object.
    pub fn expect_error(&self, status: u16, code: &str) -> serde_json::Value {
        let body = self.expect(status);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "error answer is not application/json: {:?}",
            self.headers
        );
        let e = body
            .get("error")
            .unwrap_or_else(|| panic!("no `error` object: {body}"));
        assert_eq!(e["code"], code, "{body}");
        for field in ["message", "hint"] {
            assert!(
                e[field].as_str().is_some_and(|s| !s.is_empty()),
                "error.{field} missing or empty: {body}"
            );
        }
        e.clone()
    }
}

/// A `text/event-stream` answer read as it arrives (chunked or not).
pub struct EventStream {
    stream: TcpStream,
    /// Status and headers (empty body).
    pub head: Response,
    chunked: bool,
    /// Received, not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked, not yet parsed into events.
    decoded: Vec<u8>,
    eof: bool,
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (None: the default `message`).
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
    pub id: Option<String>,
    /// `:` comment lines (keep-alives).
    pub comments: Vec<String>,
}

impl SseEvent {
    /// `data` as JSON; panics otherwise.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }
}

impl EventStream {
    /// The next block (an event or a comment-only block) within `timeout`; `None` on
    /// timeout or when the stream ended.
    pub fn next_block(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            self.dechunk();
            if let Some(ev) = self.parse_one() {
                return Some(ev);
            }
            if self.eof {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set_read_timeout");
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.raw.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next real event (comment-only blocks skipped) within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.next_block(left)?;
            if ev.event.is_some() || !ev.data.is_empty() {
                return Some(ev);
            }
        }
    }

    /// Events until one named `name` (returned last) within `timeout`; panics otherwise.
    pub fn until(&mut self, name: &str, timeout: Duration) -> Vec<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(ev) => {
                    let done = ev.event.as_deref() == Some(name);
                    seen.push(ev);
                    if done {
                        return seen;
                    }
                }
                None => panic!("no `{name}` event within {timeout:?}; saw {seen:#?}"),
            }
        }
    }

    /// Move complete chunks from `raw` to `decoded`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.decoded.append(&mut self.raw);
            return;
        }
        loop {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let hex = size_text.split(';').next().unwrap_or("").trim();
            let Ok(n) = usize::from_str_radix(hex, 16) else {
                panic!("bad chunk size line {size_text:?}");
            };
            if n == 0 {
                self.eof = true;
                self.raw.clear();
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + n + 2 {
                return;
            }
            self.decoded.extend_from_slice(&self.raw[start..start + n]);
            self.raw.drain(..start + n + 2);
        }
    }

    /// Parse one block (up to a blank line) out of `decoded`.
    fn parse_one(&mut self) -> Option<SseEvent> {
        // A block ends with a blank line (`\n\n`, or `\r\n\r\n`).
        let (end, sep) = [&b"\n\n"[..], &b"\r\n\r\n"[..]]
            .iter()
            .filter_map(|sep| find(&self.decoded, sep).map(|i| (i, sep.len())))
            .min()?;
        let block = String::from_utf8_lossy(&self.decoded[..end]).replace("\r\n", "\n");
        self.decoded.drain(..end + sep);
        let mut ev = SseEvent::default();
        let mut data: Vec<String> = Vec::new();
        for line in block.split('\n') {
            if let Some(c) = line.strip_prefix(':') {
                ev.comments.push(c.trim_start().to_string());
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => ev.event = Some(value.to_string()),
                "data" => data.push(value.to_string()),
                "id" => ev.id = Some(value.to_string()),
                _ => {}
            }
        }
        ev.data = data.join("\n");
        Some(ev)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The bridge tests' token `label`: 01 rsa-utf8 and 02 ec-expiring with their keys, 06
/// serial-uscc without one (a certificate that may sign but has no key on the token).
pub fn bridge_token(label: &str, so_pin: &str, pin: &str) -> SoftHsm {
    let hsm = SoftHsm::new();
    hsm.init_token(label, so_pin, pin);
    for (id, name) in [("01", "rsa-utf8"), ("02", "ec-expiring")] {
        hsm.import(
            label,
            pin,
            id,
            Some(&fixture(&format!("{name}.der"))),
            Some(&fixture(&format!("{name}.key.der"))),
            name,
        );
    }
    hsm.import(
        label,
        pin,
        "06",
        Some(&fixture("serial-uscc.der")),
        None,
        "serial-uscc",
    );
    hsm
}
