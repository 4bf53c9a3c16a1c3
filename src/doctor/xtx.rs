//! The `xtx` check: the BJCA-compatible endpoint (`[xtx]`) on or off, who holds its ports
//! (a vendor's helper already on 21051 is the common conflict), and whether browsers trust
//! its TLS certificate (the local CA in the user's NSS database).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::json;

use super::bridge::{Owner, port_owner};
use super::{Check, Status};
use crate::bridge::xtx::trust::Trust;
use crate::config::XtxConfig;
use crate::i18n::Lang;

/// One port: whether something listens and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub addr: SocketAddr,
    pub listening: bool,
    pub owner: Option<Owner>,
}

/// What was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub ports: Vec<Port>,
    /// The local CA is there and the user's NSS database trusts it.
    pub trusted: Option<bool>,
    /// The CA's nickname, when there is one.
    pub ca: Option<String>,
}

/// Look at both ports and the trust.
pub fn probe(config: &XtxConfig) -> Probe {
    let ports = [config.listen, config.tls_listen]
        .into_iter()
        .map(|addr| {
            let listening = addr.port() != 0
                && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok();
            Port {
                addr,
                listening,
                owner: listening.then(|| port_owner(addr.port())).flatten(),
            }
        })
        .collect();
    let (trusted, ca) = match Trust::for_current_user() {
        Ok(t) => {
            let s = t.status();
            let ca = s.identity.as_ref().map(|i| i.nickname.clone());
            let trusted = s.identity.is_some()
                && s.stores
                    .iter()
                    .any(|st| st.path == t.user_nssdb() && st.trusts_current());
            (Some(trusted), ca)
        }
        Err(_) => (None, None),
    };
    Probe { ports, trusted, ca }
}

pub fn check(config: &XtxConfig, probe: &Probe, lang: Lang) -> Check {
    let title = tr!(
        lang,
        "BJCA 兼容接口（证书应用环境）",
        "BJCA-compatible endpoint"
    );
    let data = json!({
        "enabled": config.enabled,
        "listen": config.listen.to_string(),
        "tls_listen": config.tls_listen.to_string(),
        "ports": probe.ports.iter().map(|p| json!({
            "addr": p.addr.to_string(),
            "listening": p.listening,
            "owner": p.owner.as_ref().map(|o| json!({"pid": o.pid, "name": o.name})),
        })).collect::<Vec<_>>(),
        "trusted": probe.trusted,
        "ca": probe.ca,
    });
    let foreign: Vec<String> = probe
        .ports
        .iter()
        .filter_map(|p| {
            let o = p.owner.as_ref()?;
            (o.name != "certray").then(|| format!("{} ({} {})", p.addr, o.name, o.pid))
        })
        .collect();
    let (status, finding, hint) = if !config.enabled {
        let held = if foreign.is_empty() {
            String::new()
        } else {
            let list = foreign.join(", ");
            tr!(lang, "；端口已被占用：{list}", "; ports held: {list}")
        };
        (
            Status::Ok,
            tr!(lang, "未开启{held}", "off{held}"),
            Some(tr!(
                lang,
                "网上办事网站要求安装 BJCA 证书应用环境时，可运行 `certray xtx on` 后重新启动证书助手",
                "when a portal asks for BJCA's helper, run `certray xtx on` and restart certray"
            )),
        )
    } else if !foreign.is_empty() {
        let list = foreign.join(", ");
        (
            Status::Error,
            tr!(
                lang,
                "已开启，但端口被其他程序占用：{list}",
                "on, but its ports are held by other programs: {list}"
            ),
            Some(tr!(
                lang,
                "退出厂商的证书应用环境（或在 [xtx] 中改用其他端口），然后重新启动证书助手",
                "quit the vendor's helper (or set other ports in [xtx]), then restart certray"
            )),
        )
    } else if probe.trusted != Some(true) {
        (
            Status::Warning,
            {
                let tls = config.tls_listen;
                tr!(
                    lang,
                    "已开启；浏览器尚不信任 {tls} 的证书",
                    "on; browsers do not trust the certificate of {tls} yet"
                )
            },
            Some(tr!(
                lang,
                "运行 `certray xtx trust install`（或重新启动证书助手），再重新打开浏览器",
                "run `certray xtx trust install` (or restart certray), then reopen the browser"
            )),
        )
    } else {
        let listening = probe.ports.iter().filter(|p| p.listening).count();
        if listening == 0 {
            (
                Status::Warning,
                {
                    let (ws, wss) = (config.listen, config.tls_listen);
                    tr!(
                        lang,
                        "已开启，但没有在运行（{ws} / {wss}）",
                        "on, but not running ({ws} / {wss})"
                    )
                },
                Some(tr!(
                    lang,
                    "启动证书助手（certray run）",
                    "start certray (certray run)"
                )),
            )
        } else {
            (
                Status::Ok,
                {
                    let (ws, wss) = (config.listen, config.tls_listen);
                    tr!(
                        lang,
                        "已开启：ws://{ws}/xtxapp/ 和 wss://{wss}/xtxapp/，浏览器信任其证书",
                        "on: ws://{ws}/xtxapp/ and wss://{wss}/xtxapp/, its certificate trusted"
                    )
                },
                None,
            )
        }
    };
    Check::new("xtx", status, title, finding, hint, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(listening: bool, owner: Option<&str>) -> Port {
        Port {
            addr: SocketAddr::from(([127, 0, 0, 1], 21051)),
            listening,
            owner: owner.map(|n| Owner {
                pid: 42,
                name: n.into(),
            }),
        }
    }

    #[test]
    fn a_vendor_helper_on_the_port_is_an_error_when_on() {
        let mut config = XtxConfig::default();
        let p = Probe {
            ports: vec![port(true, Some("XTXAppService"))],
            trusted: Some(true),
            ca: None,
        };
        let off = check(&config, &p, Lang::En);
        assert_eq!(off.status, Status::Ok);
        assert!(off.finding.contains("XTXAppService"), "{}", off.finding);
        config.enabled = true;
        let on = check(&config, &p, Lang::ZhCn);
        assert_eq!(on.status, Status::Error);
        let ours = Probe {
            ports: vec![port(true, Some("certray"))],
            trusted: Some(true),
            ca: None,
        };
        assert_eq!(check(&config, &ours, Lang::En).status, Status::Ok);
        let untrusted = Probe {
            trusted: Some(false),
            ..ours
        };
        assert_eq!(check(&config, &untrusted, Lang::En).status, Status::Warning);
    }
}
