//! The checks of the PC/SC side: the smart card service, the readers, and the cards in
//! them with the modules that serve them.

use std::path::Path;

use serde_json::{Value, json};

use super::hardware::Found;
use super::{Check, Status, count, hints, lines, worst};
use crate::i18n::Lang;
use crate::token::pcsc_probe::{ReaderProbe, Unavailable};
use crate::token::registry::{Registry, format_atr};

/// Where libpcsclite looks for pcscd (platforms with pcsc-lite only).
fn pcsc_socket() -> Option<String> {
    if cfg!(any(target_os = "windows", target_os = "macos")) {
        return None;
    }
    Some(
        std::env::var("PCSCLITE_CSOCK_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/run/pcscd/pcscd.comm".into()),
    )
}

fn pcscd_installed() -> bool {
    [
        "/usr/sbin/pcscd",
        "/usr/bin/pcscd",
        "/sbin/pcscd",
        "/usr/local/sbin/pcscd",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

/// How to start the platform's PC/SC service.
fn start_service_hint(lang: Lang) -> String {
    if cfg!(target_os = "windows") {
        tr!(
            lang,
            "启动 Windows“智能卡”服务：以管理员身份运行 `sc start SCardSvr`，并将其启动类型设为自动",
            "start the Windows Smart Card service: `sc start SCardSvr` as administrator, and set it to start automatically"
        )
    } else if cfg!(target_os = "macos") {
        tr!(
            lang,
            "macOS 自带智能卡服务：重新插拔 USB Key 或读卡器，仍不行时重启电脑",
            "macOS has its smart card service built in: unplug and replug the key or reader, restart if that does not help"
        )
    } else if pcscd_installed() {
        tr!(
            lang,
            "启动 pcscd：`sudo systemctl start pcscd`（或直接运行 `pcscd`）；开机自动启动：`sudo systemctl enable pcscd.socket`",
            "start pcscd: `sudo systemctl start pcscd` or `pcscd`; to have it at boot: `sudo systemctl enable pcscd.socket`"
        )
    } else {
        tr!(
            lang,
            "安装并启动 pcscd：`sudo apt-get install pcscd`，然后 `sudo systemctl start pcscd`（或 `pcscd`）",
            "install and start pcscd: `sudo apt-get install pcscd`, then `sudo systemctl start pcscd` or `pcscd`"
        )
    }
}

fn service_name() -> &'static str {
    if cfg!(target_os = "windows") {
        "SCardSvr"
    } else if cfg!(target_os = "macos") {
        "CryptoTokenKit"
    } else {
        "pcscd"
    }
}

pub fn pcscd_check(pcsc: &Result<Vec<ReaderProbe>, Unavailable>, lang: Lang) -> Check {
    let title = tr!(lang, "智能卡服务（PC/SC）", "Smart card service (PC/SC)");
    let socket = pcsc_socket();
    let name = service_name();
    match pcsc {
        Ok(readers) => {
            let n = readers.len();
            Check::new(
                "pcscd",
                Status::Ok,
                title,
                tr!(
                    lang,
                    "{name} 已连接（{n} 个读卡器）",
                    "{name} is reachable ({n} readers)"
                ),
                None,
                json!({ "reachable": true, "service": name, "socket": socket }),
            )
        }
        Err(u) => {
            let reason = format!("{} ({})", u.reason, u.code);
            let mut finding = if u.no_service {
                tr!(
                    lang,
                    "无法连接 {name}：{reason}",
                    "{name} is not reachable: {reason}"
                )
            } else {
                tr!(
                    lang,
                    "{name} 拒绝了请求：{reason}",
                    "{name} refused: {reason}"
                )
            };
            if let Some(s) = &socket {
                finding.push('\n');
                finding.push_str(&tr!(lang, "套接字：{s}", "socket: {s}"));
            }
            let hint = if u.no_service {
                start_service_hint(lang)
            } else {
                tr!(
                    lang,
                    "pcscd 只允许本机桌面会话中的用户访问（polkit）：请在桌面会话中运行，或为 org.debian.pcsc-lite.access_pcsc 和 access_card 添加 polkit 规则",
                    "pcscd admits only users of a local desktop session (polkit): run certray in that session, or add polkit rules for org.debian.pcsc-lite.access_pcsc and access_card"
                )
            };
            Check::new(
                "pcscd",
                Status::Error,
                title,
                finding,
                Some(hint),
                json!({
                    "reachable": false,
                    "service": name,
                    "socket": socket,
                    "code": u.code,
                    "reason": u.reason,
                    "installed": cfg!(any(target_os = "windows", target_os = "macos")) || pcscd_installed(),
                }),
            )
        }
    }
}

fn not_checked_pcsc(id: &'static str, title: String, lang: Lang) -> Check {
    Check::new(
        id,
        Status::Warning,
        title,
        tr!(
            lang,
            "未检查：智能卡服务不可用（见上一项）",
            "not checked: the smart card service is unavailable (see above)"
        ),
        None,
        json!({ "checked": false }),
    )
}

pub fn readers_check(pcsc: &Result<Vec<ReaderProbe>, Unavailable>, lang: Lang) -> Check {
    let title = tr!(lang, "读卡器", "Readers");
    let Ok(readers) = pcsc else {
        return not_checked_pcsc("readers", title, lang);
    };
    let names: Vec<&str> = readers.iter().map(|r| r.name.as_str()).collect();
    if readers.is_empty() {
        return Check::new(
            "readers",
            Status::Warning,
            title,
            tr!(
                lang,
                "没有读卡器（USB Key 未插入？）",
                "no reader (is the key plugged in?)"
            ),
            Some(tr!(
                lang,
                "插入 USB Key 或读卡器；仍然没有时换一个 USB 口，并确认读卡器驱动（libccid 或厂商驱动）已安装",
                "plug in the key or the reader; if it still does not show, try another USB port and check that its driver (libccid or the vendor's) is installed"
            )),
            json!({ "readers": names }),
        );
    }
    let n = readers.len();
    let en = count(n, "reader", "readers");
    let rest: Vec<String> = names.iter().map(|n| format!("• {n}")).collect();
    Check::new(
        "readers",
        Status::Ok,
        title,
        lines(tr!(lang, "{n} 个读卡器", "{en}"), &rest),
        None,
        json!({ "readers": names }),
    )
}

pub fn cards_check(
    pcsc: &Result<Vec<ReaderProbe>, Unavailable>,
    registry: &Result<Registry, String>,
    found: &Found,
    lang: Lang,
) -> Check {
    let title = tr!(lang, "卡片与驱动", "Cards and their modules");
    let Ok(readers) = pcsc else {
        return not_checked_pcsc("cards", title, lang);
    };
    let registry = match registry {
        Ok(r) => r,
        Err(e) => {
            return Check::new(
                "cards",
                Status::Error,
                title,
                tr!(
                    lang,
                    "配置中的 [[cards]] 有误：{e}",
                    "a [[cards]] entry in the config is wrong: {e}"
                ),
                Some(tr!(
                    lang,
                    "修正该条目的 atr 或 mask（十六进制字节，mask 与 atr 等长）",
                    "fix that entry's atr or mask (hex bytes; the mask as long as the ATR)"
                )),
                json!({ "cards": [], "error": e }),
            );
        }
    };
    let mut statuses = Vec::new();
    let mut rows = Vec::new();
    let mut all_hints = Vec::new();
    let mut cards_json = Vec::new();
    for r in readers {
        let Some(atr) = &r.atr else { continue };
        let atr_text = format_atr(atr);
        let judged = judge_card(r, atr, &atr_text, registry, found, lang);
        let (reader, line) = (&r.name, &judged.line);
        rows.push(format!(
            "{} {}",
            judged.status.marker(),
            tr!(lang, "{reader}：{line}", "{reader}: {line}")
        ));
        statuses.push(judged.status);
        all_hints.extend(judged.hint);
        cards_json.push(json!({
            "reader": r.name,
            "atr": atr_text,
            "name": judged.card,
            "status": judged.status,
            "modules": judged.modules,
        }));
    }
    if cards_json.is_empty() {
        return Check::new(
            "cards",
            Status::Warning,
            title,
            tr!(
                lang,
                "读卡器中没有卡片（USB Key）",
                "no card (key) in any reader"
            ),
            Some(tr!(
                lang,
                "插入 USB Key（或把卡片插入读卡器）",
                "plug in the key (or put the card in the reader)"
            )),
            json!({ "cards": [] }),
        );
    }
    let status = worst(statuses);
    let n = cards_json.len();
    let en = count(n, "card", "cards");
    let first = match status {
        Status::Ok => tr!(
            lang,
            "{n} 张卡片，均有驱动",
            "{en}, each served by a module"
        ),
        _ => tr!(
            lang,
            "{n} 张卡片，部分无法使用",
            "{en}, not all of them usable"
        ),
    };
    Check::new(
        "cards",
        status,
        title,
        lines(first, &rows),
        hints(all_hints),
        json!({ "cards": cards_json }),
    )
}

/// What one card comes to.
struct CardVerdict {
    status: Status,
    /// The text after the reader's name.
    line: String,
    hint: Option<String>,
    /// Its name in the registry.
    card: Option<String>,
    /// The modules the registry names for it, with whether each is installed and loaded.
    modules: Vec<Value>,
}

fn judge_card(
    r: &ReaderProbe,
    atr: &[u8],
    atr_text: &str,
    registry: &Registry,
    found: &Found,
    lang: Lang,
) -> CardVerdict {
    let verdict = |status, line, hint, card, modules| CardVerdict {
        status,
        line,
        hint,
        card,
        modules,
    };
    if r.mute || atr.is_empty() {
        return verdict(
            Status::Warning,
            tr!(
                lang,
                "卡片没有应答（无 ATR）",
                "the card does not answer (no ATR)"
            ),
            Some(tr!(
                lang,
                "拔出后重新插入 USB Key；仍不行时换一个 USB 口",
                "unplug the key and plug it in again; try another USB port if that does not help"
            )),
            None,
            Vec::new(),
        );
    }
    let Some(entry) = registry.lookup(atr) else {
        return verdict(
            Status::Warning,
            tr!(
                lang,
                "未知卡片，ATR {atr_text}",
                "unknown card, ATR {atr_text}"
            ),
            Some(tr!(
                lang,
                "certray 会用所有已加载的模块尝试这张卡；若仍看不到密钥，请在配置文件中添加 [[cards]]：atr = \"{atr_text}\"，module = 厂商 PKCS#11 驱动的路径",
                "certray tries every loaded module with this card; if the key still does not show, add a [[cards]] entry to the config: atr = \"{atr_text}\", module = the path of the vendor's PKCS#11 module"
            )),
            None,
            Vec::new(),
        );
    };
    let name = entry.name.clone();
    let modules: Vec<Value> = entry
        .modules
        .iter()
        .map(|p| {
            let fact = found.module(p);
            json!({
                "path": p.display().to_string(),
                "installed": p.exists(),
                "loaded": fact.is_some_and(|f| f.loaded.is_ok()),
                "error": fact.and_then(|f| f.loaded.as_ref().err()),
            })
        })
        .collect();
    if entry.modules.is_empty() {
        return verdict(
            Status::Error,
            tr!(
                lang,
                "{name}（ATR {atr_text}）：没有可用的 PKCS#11 驱动（该卡仅支持厂商的 SKF 接口）",
                "{name} (ATR {atr_text}): no PKCS#11 module exists for it (the vendor serves it through SKF only)"
            ),
            Some(tr!(
                lang,
                "certray 暂不能使用这种卡；请向证书颁发机构索取支持 PKCS#11 的驱动",
                "certray cannot use this card yet; ask the CA for a PKCS#11 driver"
            )),
            Some(name),
            modules,
        );
    }
    if let Some(m) = entry
        .modules
        .iter()
        .find(|p| found.module(p).is_some_and(|f| f.loaded.is_ok()))
    {
        let m = m.display();
        return verdict(
            Status::Ok,
            tr!(
                lang,
                "{name}（ATR {atr_text}），驱动 {m}",
                "{name} (ATR {atr_text}), module {m}"
            ),
            None,
            Some(name),
            modules,
        );
    }
    // Installed but not loaded: it failed, or it is not in the list of modules to load.
    if let Some(p) = entry.modules.iter().find(|p| p.exists()) {
        let shown = p.display();
        let (line, hint) = match found.module(p).and_then(|f| f.loaded.as_ref().err()) {
            Some(reason) => (
                tr!(
                    lang,
                    "{name}（ATR {atr_text}）：驱动 {shown} 无法加载：{reason}",
                    "{name} (ATR {atr_text}): module {shown} does not load: {reason}"
                ),
                tr!(
                    lang,
                    "重新安装该卡的厂商驱动（见“PKCS#11 模块”一项）",
                    "reinstall the card's vendor driver (see the PKCS#11 modules check)"
                ),
            ),
            None => (
                tr!(
                    lang,
                    "{name}（ATR {atr_text}）：驱动 {shown} 已安装但未加载",
                    "{name} (ATR {atr_text}): module {shown} is installed but not loaded"
                ),
                tr!(
                    lang,
                    "在配置文件 [pkcs11] modules 中加入 \"{shown}\"，或设置 use_defaults = true",
                    "add \"{shown}\" to [pkcs11] modules in the config, or set use_defaults = true"
                ),
            ),
        };
        return verdict(Status::Error, line, Some(hint), Some(name), modules);
    }
    let wanted = entry
        .modules
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    verdict(
        Status::Error,
        tr!(
            lang,
            "{name}（ATR {atr_text}）：驱动未安装：{wanted}",
            "{name} (ATR {atr_text}): its module is not installed: {wanted}"
        ),
        Some(tr!(
            lang,
            "安装该卡的厂商驱动（或 OpenSC：`sudo apt-get install opensc`），需要：{wanted}",
            "install the card's vendor driver (or OpenSC: `sudo apt-get install opensc`); needed: {wanted}"
        )),
        Some(name),
        modules,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(name: &str, atr: Option<&[u8]>) -> ReaderProbe {
        ReaderProbe {
            name: name.into(),
            atr: atr.map(<[u8]>::to_vec),
            mute: false,
            exclusive: false,
        }
    }

    #[test]
    fn cards_unknown_known_missing_and_skf_only() {
        let vicc = [
            0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF, 0x01, 0x00, 0x0B,
        ];
        let found = Found::default();
        let none = Registry::new(&[]);
        let pcsc = Ok(vec![reader("R0", Some(&vicc)), reader("R1", None)]);
        let c = cards_check(&pcsc, &none, &found, Lang::En);
        assert_eq!(c.status, Status::Warning);
        assert!(
            c.finding.contains("3B 95 13 81 01 80 73 FF 01 00 0B"),
            "{}",
            c.finding
        );
        assert!(c.hint.as_deref().unwrap().contains("[[cards]]"));
        assert_eq!(c.data["cards"].as_array().unwrap().len(), 1);
        // A configured module that is not installed.
        let cards = [crate::config::CardConfig {
            atr: "3B 95 13 81 01 80 73 FF 01 00 0B".into(),
            mask: None,
            module: "/nonexistent/vendor.so".into(),
            name: Some("Vendor key".into()),
        }];
        let c = cards_check(&pcsc, &Registry::new(&cards), &found, Lang::En);
        assert_eq!(c.status, Status::Error);
        assert!(c.finding.contains("/nonexistent/vendor.so") && c.finding.contains("Vendor key"));
        assert_eq!(c.data["cards"][0]["modules"][0]["installed"], false);
        // Known to be SKF only.
        let gm = crate::token::registry::parse_hex("3B9F958131FE9F006647440501020304050607080910")
            .unwrap();
        let c = cards_check(&Ok(vec![reader("R", Some(&gm))]), &none, &found, Lang::ZhCn);
        assert_eq!(c.status, Status::Error);
        assert!(c.finding.contains("SKF"), "{}", c.finding);
        // No card; PC/SC down; a bad [[cards]] entry.
        let c = cards_check(&Ok(vec![reader("R", None)]), &none, &found, Lang::En);
        assert_eq!(c.status, Status::Warning);
        let down = Err(Unavailable {
            no_service: true,
            code: "NoService".into(),
            reason: "no service".into(),
        });
        assert_eq!(
            cards_check(&down, &none, &found, Lang::En).data["checked"],
            false
        );
        assert_eq!(
            cards_check(&pcsc, &Err("[[cards]] #1: atr".into()), &found, Lang::En).status,
            Status::Error
        );
    }

    #[test]
    fn pcscd_down_gives_the_fix() {
        let down = Err(Unavailable {
            no_service: true,
            code: "NoService".into(),
            reason: "The Smart card resource manager is not running.".into(),
        });
        let c = pcscd_check(&down, Lang::En);
        assert_eq!(c.status, Status::Error);
        if cfg!(target_os = "linux") {
            assert!(c.hint.unwrap().contains("systemctl start pcscd"));
        }
        assert_eq!(readers_check(&down, Lang::En).status, Status::Warning);
        let up = Ok(vec![reader("Virtual PCD 00 00", None)]);
        assert_eq!(pcscd_check(&up, Lang::En).status, Status::Ok);
        let r = readers_check(&up, Lang::En);
        assert_eq!(r.status, Status::Ok);
        assert!(r.finding.contains("Virtual PCD 00 00"));
        assert_eq!(readers_check(&Ok(vec![]), Lang::En).status, Status::Warning);
    }
}
