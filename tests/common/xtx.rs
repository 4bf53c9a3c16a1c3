#![allow(dead_code)] // each test binary uses part of the harness
//! The XTX tests' harness (included by `tests/xtx_*.rs` with `#[path]`): a `certray run
//! --headless` with `[xtx]` on, on ports chosen free at run time, in a temporary HOME (so
//! the TLS trust goes into that HOME's NSS database, never the user's), logging at trace
//! level; and a WebSocket client written from the wire format (PORTAL-PROTOCOLS.md §1.1)
//! that sets `Origin` and `Host` itself.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::common::bridge::config_text;
use crate::common::{SoftHsm, certray, fixture, require, run};
use std::process::Command;

/// A port free now (bound and released): the tests never need 21051/21061.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `certray run --headless` with XTX on, killed on drop.
pub struct XtxDaemon {
    child: Child,
    pub bridge_port: u16,
    pub ws_port: u16,
    pub wss_port: u16,
    /// HOME and XDG_STATE_HOME live here.
    pub dir: tempfile::TempDir,
    pub env: Vec<(&'static str, OsString)>,
}

impl XtxDaemon {
    /// The daemon over `hsm`'s tokens with `extra` TOML merged into the config (an `[xtx]`
    /// section with the ports is added). `prepare` runs on the temp dir first (to leave
    /// approvals in the state dir, make an NSS database…). Extra environment: `env`.
    pub fn start(
        hsm: &SoftHsm,
        extra: &str,
        env: &[(&'static str, OsString)],
        prepare: impl FnOnce(&Path),
    ) -> XtxDaemon {
        let dir = tempfile::Builder::new()
            .prefix("certray-xtx-")
            .tempdir()
            .expect("tempdir");
        let home = dir.path().join("home");
        let state_home = dir.path().join("state");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(state_home.join("certray")).unwrap();
        prepare(dir.path());
        let (ws_port, wss_port) = (free_port(), free_port());
        let config = dir.path().join("certray.toml");
        let xtx = format!(
            "[xtx]\nenabled = true\nlisten = \"127.0.0.1:{ws_port}\"\ntls_listen = \"127.0.0.1:{wss_port}\"\n"
        );
        let extra: toml::Table = extra.parse().expect("extra TOML");
        let mut text: toml::Table = config_text(&xtx).parse().unwrap();
        for (k, v) in extra {
            match (text.get_mut(&k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => a.extend(b),
                (_, v) => {
                    text.insert(k, v);
                }
            }
        }
        std::fs::write(&config, toml::to_string(&text).unwrap()).unwrap();
        let mut all_env: Vec<(&'static str, OsString)> = hsm.env().to_vec();
        all_env.push(("HOME", home.clone().into_os_string()));
        all_env.push(("XDG_STATE_HOME", state_home.into_os_string()));
        all_env.push((
            "XDG_CONFIG_HOME",
            dir.path().join("config").into_os_string(),
        ));
        all_env.extend(env.iter().cloned());
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = certray(&all_env)
            .arg("--config")
            .arg(&config)
            .args(["--log-level", "trace", "run", "--headless"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start certray run");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut bridge_port = None;
        let mut xtx_line = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while xtx_line.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!(
                    "certray run did not report its XTX endpoint within 30 s; stderr:\n{}",
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
                );
            };
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                bridge_port = rest.trim_end_matches('/').parse::<u16>().ok();
            }
            if line.contains("/xtxapp/") {
                xtx_line = Some(line);
            }
        }
        let xtx_line = xtx_line.unwrap();
        assert!(
            xtx_line.contains(&format!("ws://127.0.0.1:{ws_port}/xtxapp/")),
            "{xtx_line}"
        );
        let d = XtxDaemon {
            child,
            bridge_port: bridge_port.expect("the bridge's URL line"),
            ws_port,
            wss_port,
            dir,
            env: all_env,
        };
        d.wait_port(ws_port);
        d
    }

    fn wait_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "port {port} never opened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// certray's state dir (approvals, audit log, logs, the TLS identity).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state/certray")
    }

    pub fn ws_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ws_port))
    }

    /// Everything the daemon logged: its stderr and its log files.
    pub fn logs(&self) -> String {
        let mut all =
            std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(self.state_dir().join("logs")) {
            for e in entries.flatten() {
                all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        all
    }

    /// The audit log's records.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state_dir().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for XtxDaemon {
    fn drop(&mut self) {
        // SIGTERM first: the daemon finalizes its modules on the way out.
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Stream = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// One socket to `/xtxapp/`, as a page of `origin` opens it.
pub struct Socket {
    ws: Stream,
    next: u32,
    /// `onUsbkeyChange` pushes received while waiting for replies.
    pub events: u32,
}

/// Open `ws://addr/xtxapp/` with `Origin: origin` (none: a local program) and `Host: host`
/// (default: the address). The handshake's error when the server refuses.
pub async fn connect(
    addr: SocketAddr,
    origin: Option<&str>,
    host: Option<&str>,
) -> Result<Socket, WsError> {
    let mut req = format!("ws://{addr}/xtxapp/").into_client_request()?;
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(o).unwrap());
    }
    if let Some(h) = host {
        req.headers_mut()
            .insert("host", HeaderValue::from_str(h).unwrap());
    }
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, tcp, Some(config)).await?;
    Ok(Socket {
        ws,
        next: 0,
        events: 0,
    })
}

impl Socket {
    /// Call `func` with `params` as the async client sends them (`param` and `param_N`,
    /// `URL`, `CLSID`), plus `token` when given; the reply object.
    pub async fn call_with(
        &mut self,
        func: &str,
        params: &[serde_json::Value],
        token: Option<&str>,
    ) -> serde_json::Value {
        self.next += 1;
        let id = format!("i_{}", self.next);
        let mut frame = serde_json::json!({
            "call_cmd_id": id,
            "CLSID": "3F367B74-92D9-4C5E-AB93-234F8A91D5E6",
            "xtx_func_name": func,
            "func": func,
            "URL": "http://forged.example/login",
            "param": params,
        });
        for (i, p) in params.iter().enumerate() {
            frame[format!("param_{}", i + 1)] = p.clone();
        }
        if let Some(t) = token {
            frame["token"] = serde_json::Value::String(t.to_string());
        }
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send a frame");
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no reply to {func} within 30 s"))
                .unwrap_or_else(|| panic!("socket closed waiting for {func}"))
                .unwrap_or_else(|e| panic!("socket error waiting for {func}: {e}"));
            let Message::Text(text) = msg else { continue };
            let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON reply");
            if v["call_cmd_id"] == "onUsbkeyChange" {
                self.events += 1;
                continue;
            }
            assert_eq!(v["call_cmd_id"], id, "reply to another call: {v}");
            assert!(v["retVal"].is_string(), "every value is a string: {v}");
            return v;
        }
    }

    /// The string a call answers.
    pub async fn call(&mut self, func: &str, params: &[serde_json::Value]) -> String {
        self.call_with(func, params, None).await["retVal"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `SOF_GetLastError` as a number.
    pub async fn last_error(&mut self) -> u32 {
        self.call("SOF_GetLastError", &[]).await.parse().unwrap()
    }

    /// Send a raw text frame (for the size limit).
    pub async fn send_raw(&mut self, text: String) -> Result<(), WsError> {
        self.ws.send(Message::Text(text.into())).await
    }

    /// Wait for the next `onUsbkeyChange` (or the socket's end): whether one came.
    pub async fn next_event(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => return false,
            };
            if let Message::Text(t) = msg
                && t.contains("onUsbkeyChange")
            {
                self.events += 1;
                return true;
            }
        }
    }

    /// Whether the server closed the socket within `timeout`.
    pub async fn closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OpenSSL, the referee
// ---------------------------------------------------------------------------------------------

pub fn openssl() -> std::path::PathBuf {
    require("openssl", "openssl")
}

/// notBefore / notAfter of a DER certificate as OpenSSL reads them, in UTC.
pub fn openssl_dates(der: &Path) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let out = run(Command::new(openssl())
        .args([
            "x509", "-inform", "DER", "-noout", "-dates", "-dateopt", "iso_8601", "-in",
        ])
        .arg(der));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let date = |key: &str| {
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        let fmt =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
        time::PrimitiveDateTime::parse(v.trim(), &fmt)
            .unwrap()
            .assume_utc()
    };
    (date("notBefore="), date("notAfter="))
}

pub fn beijing(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::macros::offset!(+8));
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A "portal server" key pair and certificate made with OpenSSL, and its signature over
/// `random`: RSA (SHA-1, as BJCA's login pages sign) or SM2 (SM3, default ID).
pub fn server_signature(dir: &Path, sm2: bool, random: &str) -> (Vec<u8>, Vec<u8>) {
    let key = dir.join(if sm2 { "sm2.key" } else { "rsa.key" });
    let cert = dir.join(if sm2 { "sm2.der" } else { "rsa.der" });
    let data = dir.join("random.txt");
    let sig = dir.join("server.sig");
    std::fs::write(&data, random).unwrap();
    if sm2 {
        run(Command::new(openssl())
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:SM2",
                "-out",
            ])
            .arg(&key));
        run(Command::new(openssl())
            .args([
                "req",
                "-x509",
                "-new",
                "-sm3",
                "-sigopt",
                "distid:1234567812345678",
            ])
            .args([
                "-subj",
                "/C=CN/CN=portal server SM2",
                "-days",
                "30",
                "-outform",
                "DER",
            ])
            .arg("-key")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        run(Command::new(openssl())
            .args([
                "dgst",
                "-sm3",
                "-sigopt",
                "distid:1234567812345678",
                "-sign",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&sig)
            .arg(&data));
    } else {
        run(Command::new(openssl())
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&key));
        run(Command::new(openssl())
            .args([
                "req",
                "-x509",
                "-new",
                "-sha256",
                "-subj",
                "/C=CN/CN=portal server RSA",
            ])
            .args(["-days", "30", "-outform", "DER", "-key"])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        run(Command::new(openssl())
            .args(["dgst", "-sha1", "-sign"])
            .arg(&key)
            .arg("-out")
            .arg(&sig)
            .arg(&data));
    }
    (std::fs::read(cert).unwrap(), std::fs::read(sig).unwrap())
}

/// `openssl cms -verify` of a DER CMS message, with the test CA as the trust anchor and the
/// content given separately when `detached`; the content it recovers.
pub fn openssl_cms_verify(dir: &Path, cms: &[u8], content: &[u8], detached: bool) -> Vec<u8> {
    let p7 = dir.join("msg.p7");
    let data = dir.join("content.txt");
    let out = dir.join("out.txt");
    std::fs::write(&p7, cms).unwrap();
    std::fs::write(&data, content).unwrap();
    let _ = std::fs::remove_file(&out);
    let mut cmd = Command::new(openssl());
    cmd.args([
        "cms", "-verify", "-inform", "DER", "-binary", "-purpose", "any", "-in",
    ])
    .arg(&p7)
    .arg("-CAfile")
    .arg(fixture("ca.pem"))
    .arg("-out")
    .arg(&out);
    if detached {
        cmd.arg("-content").arg(&data);
    }
    run(&mut cmd);
    std::fs::read(out).unwrap()
}
