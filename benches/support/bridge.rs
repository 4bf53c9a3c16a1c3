//! The localhost bridge as the benches drive it: the inventory and the bridge started as
//! `certray run` starts them, a minimal HTTP/1.1 client, as a local program (no `Origin`
//! header), and the PIN dialog's stand-in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use certray::bridge::{BridgeOptions, BridgeState, serve};
use certray::config::Config;
use certray::core::{ConsentAnswer, Live, LiveOptions, PinAnswer, PinRequest, Prompt, Signing};
use futures_util::future::BoxFuture;
use secrecy::SecretString;

/// The desktop PIN dialog's stand-in: answers `.0` and ticks "remember", so that later
/// requests of the same caller and certificate sign on the kept login.
pub struct RememberingDialog(pub &'static str);

impl Prompt for RememberingDialog {
    fn consent<'a>(&'a self, _origin: &'a str) -> BoxFuture<'a, ConsentAnswer> {
        Box::pin(async { ConsentAnswer::Deny })
    }

    fn pin(&self, _request: PinRequest) -> BoxFuture<'_, PinAnswer> {
        let pin = self.0;
        Box::pin(async move {
            PinAnswer::Pin {
                pin: SecretString::from(pin),
                remember: true,
            }
        })
    }

    fn available(&self) -> bool {
        true
    }
}

/// HTTP/1.1 on one keep-alive connection: just enough for the bridge's JSON answers.
pub struct Client {
    reader: BufReader<TcpStream>,
    host: String,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the bridge");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        // Bounded: a bridge that stops answering fails the run instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Client {
            reader: BufReader::new(stream),
            host: addr.to_string(),
            buf: Vec::with_capacity(4096),
        }
    }

    /// POST a JSON body; the status and the body of the answer.
    pub fn post_json(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.buf.clear();
        write!(
            self.buf,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .expect("format request");
        self.buf.extend_from_slice(body);
        // One write: the request leaves in as few segments as the kernel makes.
        self.reader
            .get_mut()
            .write_all(&self.buf)
            .expect("send request");
        self.read_response()
    }

    /// GET; the status and the body of the answer.
    pub fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        self.buf.clear();
        write!(
            self.buf,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.host
        )
        .expect("format request");
        self.reader
            .get_mut()
            .write_all(&self.buf)
            .expect("send request");
        self.read_response()
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read answer");
        assert!(n > 0, "the bridge closed the connection");
        line.truncate(line.trim_end_matches(['\r', '\n']).len());
        line
    }

    fn read_response(&mut self) -> (u16, Vec<u8>) {
        let status_line = self.read_line();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line `{status_line}`"));
        let mut length = None;
        let mut chunked = false;
        loop {
            let line = self.read_line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().expect("Content-Length"));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                assert!(
                    !value.eq_ignore_ascii_case("close"),
                    "the bridge closes the connection: no keep-alive"
                );
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = self.read_line();
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .expect("chunk size");
                if size == 0 {
                    while !self.read_line().is_empty() {}
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..]).expect("chunk");
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf).expect("chunk end");
            }
        } else {
            body.resize(length.expect("an answer without Content-Length"), 0);
            self.reader.read_exact(&mut body).expect("answer body");
        }
        (status, body)
    }
}

/// The signature of a 200 answer of `/v1/sign`, or a panic naming the error.
pub fn signature_of(status: u16, body: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON answer");
    assert_eq!(status, 200, "POST /v1/sign: {v}");
    B64.decode(v["signature"].as_str().expect("signature"))
        .expect("base64 signature")
}

/// A bench's configuration: the module at `module` alone, the bridge on 127.0.0.1:0.
pub fn config_on(module: &Path, path: &Path) -> Config {
    Config::from_toml(
        &format!(
            "[pkcs11]\nmodules = [\"{}\"]\nuse_defaults = false\n\n[bridge]\nlisten = \"127.0.0.1:0\"\n",
            module.display()
        ),
        path,
    )
    .expect("config")
}

/// The inventory and its module worker over `config`, as `certray run` starts them (no PC/SC
/// watcher: SoftHSM has no reader); every module loaded.
pub fn live_on(config: &Config) -> Arc<Live> {
    let live = Live::start(
        config,
        LiveOptions {
            watch: true,
            pcsc: false,
        },
    )
    .expect("inventory");
    assert!(
        live.failures().is_empty(),
        "a module did not load: {:?}",
        live.failures()
    );
    Arc::new(live)
}

/// The bridge on 127.0.0.1:0, on `certray run`'s runtime (`certray::daemon::runtime`), its
/// questions answered by `prompt`.
pub struct Served {
    pub runtime: tokio::runtime::Runtime,
    pub addr: SocketAddr,
    pub signing: Arc<Signing>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    pub fn start(
        live: &Arc<Live>,
        config: &Config,
        prompt: Arc<dyn Prompt>,
        state_dir: &Path,
    ) -> Served {
        let runtime = certray::daemon::runtime().expect("tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let signing = Signing::open(live.clone(), &config.bridge, prompt, Some(state_dir));
        let app = BridgeState::new(
            signing.clone(),
            BridgeOptions {
                config: config.bridge.clone(),
                port: addr.port(),
                warning_days: config.alerts.expiry_warning_days,
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(serve(listener, app, async {
            let _ = stopped.await;
        }));
        Served {
            runtime,
            addr,
            signing,
            stop,
            server,
        }
    }

    /// Stop serving and wait for the server to end.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.runtime
            .block_on(self.server)
            .expect("server task")
            .expect("serve");
    }
}
