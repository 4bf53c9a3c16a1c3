//! The `bridge` check: is `certray run` answering on `[bridge] listen`, is nothing there, or
//! does another program hold the port? One hand-written `GET /v1/status` over a plain TCP
//! connection with short timeouts (no HTTP client: only `bridge/` knows HTTP serving, and
//! this is a probe, not a client of the API).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Check, Status};
use crate::i18n::Lang;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The whole answer must arrive within this.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// More than a status answer ever is.
const ANSWER_LIMIT: usize = 64 * 1024;

/// What is on the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not probed: port 0 (chosen when the daemon starts) or not a loopback address.
    NotProbed,
    /// Nothing listens (connection refused).
    Nothing,
    /// certray's bridge.
    Certray {
        version: String,
        tokens: u64,
        certificates: u64,
        ui: bool,
    },
    /// Something else listens: what it answered (the status line, or that it did not).
    Other { answer: String },
    /// The connection failed for another reason.
    Failed { reason: String },
}

/// The answer, and on Linux the program that listens when it is not certray.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub answer: Answer,
    pub owner: Option<Owner>,
}

/// A process that listens on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub name: String,
}

pub fn probe(listen: SocketAddr) -> Probe {
    let answer = if listen.port() == 0 || !listen.ip().is_loopback() {
        Answer::NotProbed
    } else {
        ask(listen)
    };
    let owner = match &answer {
        Answer::Other { .. } => port_owner(listen.port()),
        _ => None,
    };
    Probe { answer, owner }
}

fn ask(addr: SocketAddr) -> Answer {
    let mut stream = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Answer::Nothing,
        Err(e) => {
            return Answer::Failed {
                reason: e.to_string(),
            };
        }
    };
    // `Host` exactly as the bridge's guard wants it: 127.0.0.1:PORT or [::1]:PORT.
    let request = format!(
        "GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         User-Agent: certray-doctor\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return Answer::Other {
            answer: format!("(the connection was closed: {e})"),
        };
    }
    let bytes = read_answer(&mut stream);
    judge_answer(&bytes)
}

/// Everything the peer sends until it closes, [`ANSWER_LIMIT`] bytes, or [`ANSWER_TIMEOUT`].
fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || out.len() >= ANSWER_LIMIT {
            break;
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// What a response says: certray's status (HTTP 200, JSON with `"name":"certray"`), or
/// something else, shown by its first line.
fn judge_answer(bytes: &[u8]) -> Answer {
    if bytes.is_empty() {
        return Answer::Other {
            answer: "(no answer)".into(),
        };
    }
    let text = String::from_utf8_lossy(bytes);
    let status_line = text.lines().next().unwrap_or("").trim();
    let shown: String = status_line.chars().take(80).collect();
    let other = || Answer::Other {
        answer: shown.clone(),
    };
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return other();
    };
    let ok =
        status_line.starts_with("HTTP/1.") && status_line.split_whitespace().nth(1) == Some("200");
    if !ok {
        return other();
    }
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return other();
    };
    if v["name"] != "certray" {
        return other();
    }
    Answer::Certray {
        version: v["version"].as_str().unwrap_or("").to_string(),
        tokens: v["tokens"].as_u64().unwrap_or(0),
        certificates: v["certificates"].as_u64().unwrap_or(0),
        ui: v["ui"].as_bool().unwrap_or(false),
    }
}

/// A chunked body's data.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The process listening on TCP `port` (Linux: `/proc/net/tcp{,6}` gives the socket's inode,
/// `/proc/PID/fd` the process that holds it). Other users' processes are not visible unless
/// we are root; then there is no owner to name.
pub(super) fn port_owner(port: u16) -> Option<Owner> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if targets.iter().any(|t| link.as_os_str() == t.as_str()) {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                return Some(Owner { pid, name });
            }
        }
    }
    None
}

/// The inodes of sockets listening (state 0A) on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            let listening = *f.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

pub fn check(listen: SocketAddr, probe: &Probe, lang: Lang) -> Check {
    let title = tr!(lang, "本地服务（网页接口）", "Local bridge for web pages");
    let url = format!("http://{listen}/");
    let mut data = json!({ "listen": listen.to_string() });
    let (status, finding, hint) = match &probe.answer {
        Answer::NotProbed if !listen.ip().is_loopback() => (
            Status::Error,
            tr!(
                lang,
                "[bridge] listen = {listen} 不是本机回环地址，certray run 会拒绝启动",
                "[bridge] listen = {listen} is not a loopback address; certray run refuses it"
            ),
            Some(tr!(
                lang,
                "在配置文件中设置 [bridge] listen = \"127.0.0.1:21088\"",
                "set [bridge] listen = \"127.0.0.1:21088\" in the config"
            )),
        ),
        Answer::NotProbed => (
            Status::Ok,
            tr!(
                lang,
                "未检查：端口为 0，由 certray run 启动时选择",
                "not checked: port 0, chosen when certray run starts"
            ),
            None,
        ),
        Answer::Certray {
            version,
            tokens,
            certificates,
            ui,
        } => {
            data["running"] = json!(true);
            data["version"] = json!(version);
            data["tokens"] = json!(tokens);
            data["certificates"] = json!(certificates);
            data["ui"] = json!(ui);
            let mine = env!("CARGO_PKG_VERSION");
            if version != mine {
                (
                    Status::Warning,
                    tr!(
                        lang,
                        "{url} 上运行的是 certray {version}，与本程序版本 {mine} 不同",
                        "certray {version} answers at {url}, not this version ({mine})"
                    ),
                    Some(tr!(
                        lang,
                        "重新启动 certray（退出托盘程序或 `systemctl --user restart certray`）",
                        "restart certray (quit the tray, or `systemctl --user restart certray`)"
                    )),
                )
            } else {
                (
                    Status::Ok,
                    tr!(
                        lang,
                        "certray {version} 正在 {url} 运行（{tokens} 个密钥，{certificates} 张证书）",
                        "certray {version} answers at {url} ({tokens} tokens, {certificates} certificates)"
                    ),
                    None,
                )
            }
        }
        Answer::Nothing => {
            data["running"] = json!(false);
            (
                Status::Warning,
                tr!(
                    lang,
                    "certray run 没有运行（{listen} 上没有程序监听），网页无法使用证书",
                    "certray run is not running (nothing listens on {listen}); web pages cannot use the certificates"
                ),
                Some(tr!(
                    lang,
                    "启动它：`certray run`；并开启开机自动启动（托盘菜单“开机自动启动”，或 `systemctl --user enable --now certray`）",
                    "start it: `certray run`, and enable autostart (the tray's 开机自动启动, or `systemctl --user enable --now certray`)"
                )),
            )
        }
        Answer::Other { answer } => {
            data["running"] = json!(false);
            data["answer"] = json!(answer);
            let who = match &probe.owner {
                Some(o) => {
                    data["owner"] = json!({ "pid": o.pid, "name": o.name });
                    let (name, pid) = (&o.name, o.pid);
                    tr!(lang, "{name}（进程 {pid}）", "{name} (pid {pid})")
                }
                None => tr!(lang, "未知程序", "an unknown program"),
            };
            (
                Status::Error,
                tr!(
                    lang,
                    "端口被其他程序占用：{who} 在 {listen} 监听，应答为 {answer}",
                    "port in use by another program: {who} listens on {listen} and answered {answer}"
                ),
                Some(tr!(
                    lang,
                    "关闭占用该端口的程序，或在配置文件中为 certray 换一个端口：[bridge] listen = \"127.0.0.1:端口\"（网页需使用同一端口）",
                    "stop the program that holds the port, or give certray another one: [bridge] listen = \"127.0.0.1:PORT\" (the web pages must use the same port)"
                )),
            )
        }
        Answer::Failed { reason } => {
            data["error"] = json!(reason);
            (
                Status::Warning,
                tr!(
                    lang,
                    "无法连接 {listen}：{reason}",
                    "cannot connect to {listen}: {reason}"
                ),
                Some(tr!(
                    lang,
                    "检查本机防火墙是否拦截了回环地址的连接",
                    "check whether a firewall blocks connections to the loopback address"
                )),
            )
        }
    };
    Check::new("bridge", status, title, finding, hint, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_told_apart() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 77\r\n\r\n\
{\"name\":\"certray\",\"version\":\"0.1.0\",\"tokens\":1,\"certificates\":3,\"ui\":false}";
        assert_eq!(
            judge_answer(ok),
            Answer::Certray {
                version: "0.1.0".into(),
                tokens: 1,
                certificates: 3,
                ui: false
            }
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
f\r\n{\"name\":\"certra\r\na\r\ny\",\"ui\":1}\r\n0\r\n\r\n";
        assert!(matches!(judge_answer(chunked), Answer::Certray { .. }));
        let nginx = b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\n\r\n<html>";
        assert_eq!(
            judge_answer(nginx),
            Answer::Other {
                answer: "HTTP/1.1 404 Not Found".into()
            }
        );
        let other_json = b"HTTP/1.1 200 OK\r\n\r\n{\"name\":\"other\"}";
        assert!(matches!(judge_answer(other_json), Answer::Other { .. }));
        assert!(matches!(
            judge_answer(b"SSH-2.0-OpenSSH_9.2\r\n"),
            Answer::Other { .. }
        ));
        assert_eq!(
            judge_answer(b""),
            Answer::Other {
                answer: "(no answer)".into()
            }
        );
    }

    #[test]
    fn proc_net_tcp_listeners() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:5220 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:5220 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(listening_inodes(table, 21024), vec![123456]);
        assert_eq!(listening_inodes(table, 22), vec![999]);
        assert!(listening_inodes(table, 80).is_empty());
    }

    #[test]
    fn nothing_listening_is_a_warning_and_another_program_an_error() {
        let listen: SocketAddr = "127.0.0.1:21088".parse().unwrap();
        let c = check(
            listen,
            &Probe {
                answer: Answer::Nothing,
                owner: None,
            },
            Lang::En,
        );
        assert_eq!(c.status, Status::Warning);
        assert!(c.finding.contains("not running"));
        let c = check(
            listen,
            &Probe {
                answer: Answer::Other {
                    answer: "HTTP/1.1 404 Not Found".into(),
                },
                owner: Some(Owner {
                    pid: 42,
                    name: "nginx".into(),
                }),
            },
            Lang::En,
        );
        assert_eq!(c.status, Status::Error);
        assert!(c.finding.contains("in use by another program") && c.finding.contains("nginx"));
        assert_eq!(c.data["owner"]["pid"], 42);
        let wild: SocketAddr = "0.0.0.0:21088".parse().unwrap();
        assert_eq!(check(wild, &probe(wild), Lang::En).status, Status::Error);
    }
}
