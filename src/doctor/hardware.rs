//! The checks of what is plugged in: the PC/SC service, readers, cards, PKCS#11 modules,
//! tokens, certificates, PINs, and the clock the certificates are judged by.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Check, Status, count, same_file};
use crate::cert::{self, Certificate};
use crate::config::Config;
use crate::i18n::Lang;
use crate::token::pcsc_probe::{ReaderProbe, Unavailable};
use crate::token::pkcs11::{ModuleHandle, ModuleInfo};
use crate::token::registry::{Registry, format_atr};
use crate::token::{self, TokenInfo};

/// What the PKCS#11 side looks like: every module tried and the tokens they serve.
#[derive(Debug, Default)]
pub struct Found {
    pub modules: Vec<ModuleFact>,
    /// Each token once, also when two modules serve it (the first one counts).
    pub tokens: Vec<TokenFact>,
}

#[derive(Debug)]
pub struct ModuleFact {
    pub path: PathBuf,
    /// Listed in `[pkcs11] modules` (else a default found installed).
    pub configured: bool,
    pub loaded: Result<ModuleInfo, String>,
    /// Listing its slots and tokens failed.
    pub scan_error: Option<String>,
}

#[derive(Debug)]
pub struct TokenFact {
    pub token: TokenInfo,
    pub certificates: Vec<CertFact>,
}

#[derive(Debug)]
pub struct CertFact {
    pub id: String,
    pub label: String,
    pub has_private_key: bool,
    pub parsed: Result<Certificate, String>,
}

/// Load every configured and default module, scan it, parse the certificates, and let the
/// modules go again (each worker finalizes its module before this returns).
pub fn look(config: &Config) -> Found {
    let mut found = Found::default();
    let resolved = token::modules::resolve(&config.pkcs11.modules, config.pkcs11.use_defaults);
    for m in resolved {
        let configured = config.pkcs11.modules.iter().any(|c| c.path == m.path);
        let mut fact = ModuleFact {
            path: m.path.clone(),
            configured,
            loaded: Err(String::new()),
            scan_error: None,
        };
        match ModuleHandle::spawn(&m.path) {
            Ok(handle) => {
                fact.loaded = Ok(handle.info().clone());
                match handle.scan() {
                    Ok(scans) => {
                        for scan in scans {
                            if found.tokens.iter().any(|t| t.token.id == scan.token.id) {
                                continue;
                            }
                            let certificates =
                                scan.certificates.into_iter().map(cert_fact).collect();
                            found.tokens.push(TokenFact {
                                token: scan.token,
                                certificates,
                            });
                        }
                    }
                    Err(e) => fact.scan_error = Some(e.to_string()),
                }
            }
            Err(e) => {
                fact.loaded = Err(match e {
                    token::Error::ModuleLoad { reason, .. } => reason,
                    other => other.to_string(),
                });
            }
        }
        found.modules.push(fact);
    }
    found
}

fn cert_fact(obj: token::CertObject) -> CertFact {
    CertFact {
        id: cert::id_from_sha256(&cert::sha256_hex(&obj.der)),
        label: obj.label,
        has_private_key: obj.has_private_key,
        parsed: cert::parse(&obj.der).map_err(|e| e.to_string()),
    }
}

/// The worst of several statuses (ok when there are none).
fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::Ok)
}

/// Distinct hints, one per line, in order.
fn hints(list: Vec<String>) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for h in list {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

fn lines(first: String, rest: &[String]) -> String {
    let mut s = first;
    for l in rest {
        s.push('\n');
        s.push_str(l);
    }
    s
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// PC/SC: pcscd, readers, cards
// ---------------------------------------------------------------------------------------------

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

/// Whether a module path was loaded, failed (with the reason), or was not tried.
fn module_state<'a>(found: &'a Found, path: &Path) -> Option<&'a ModuleFact> {
    found.modules.iter().find(|m| same_file(&m.path, path))
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
            let fact = module_state(found, p);
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
        .find(|p| module_state(found, p).is_some_and(|f| f.loaded.is_ok()))
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
        let (line, hint) = match module_state(found, p).and_then(|f| f.loaded.as_ref().err()) {
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

// ---------------------------------------------------------------------------------------------
// PKCS#11: modules, tokens, certificates, PIN
// ---------------------------------------------------------------------------------------------

pub fn modules_check(found: &Found, use_defaults: bool, lang: Lang) -> Check {
    let title = tr!(lang, "PKCS#11 模块（驱动）", "PKCS#11 modules (drivers)");
    let modules_json: Vec<Value> = found
        .modules
        .iter()
        .map(|m| match &m.loaded {
            Ok(i) => json!({
                "path": m.path.display().to_string(),
                "configured": m.configured,
                "loaded": true,
                "manufacturer": i.manufacturer,
                "description": i.description,
                "library_version": i.library_version,
                "cryptoki_version": i.cryptoki_version,
            }),
            Err(reason) => json!({
                "path": m.path.display().to_string(),
                "configured": m.configured,
                "loaded": false,
                "error": reason,
            }),
        })
        .collect();
    if found.modules.is_empty() {
        let finding = if use_defaults {
            tr!(
                lang,
                "没有配置 PKCS#11 模块，也没有找到已安装的常见驱动",
                "no PKCS#11 module is configured and none of the known ones is installed"
            )
        } else {
            tr!(
                lang,
                "没有配置 PKCS#11 模块（use_defaults = false）",
                "no PKCS#11 module is configured (use_defaults = false)"
            )
        };
        return Check::new(
            "modules",
            Status::Warning,
            title,
            finding,
            Some(tr!(
                lang,
                "安装 OpenSC（`sudo apt-get install opensc`）或 USB Key 厂商的驱动，或在配置文件 [pkcs11] modules 中填写驱动路径",
                "install OpenSC (`sudo apt-get install opensc`) or the vendor driver of your key, or list its path in [pkcs11] modules"
            )),
            json!({ "modules": modules_json, "searched": token::modules::known(), "use_defaults": use_defaults }),
        );
    }
    let mut rows = Vec::new();
    for m in &found.modules {
        let p = m.path.display();
        rows.push(match &m.loaded {
            Ok(i) => {
                let (mf, d, v) = (&i.manufacturer, &i.description, &i.library_version);
                tr!(
                    lang,
                    "✓ {p}：{mf} {d}，版本 {v}",
                    "✓ {p}: {mf} {d}, version {v}"
                )
            }
            Err(reason) => tr!(
                lang,
                "✗ {p}：无法加载：{reason}",
                "✗ {p}: does not load: {reason}"
            ),
        });
    }
    let ok = found.modules.iter().filter(|m| m.loaded.is_ok()).count();
    let bad = found.modules.len() - ok;
    let en = count(ok, "module", "modules");
    let (status, first, hint) = if bad == 0 {
        (
            Status::Ok,
            tr!(lang, "{ok} 个模块已加载", "{en} loaded"),
            None,
        )
    } else {
        let arch = std::env::consts::ARCH;
        (
            Status::Error,
            tr!(
                lang,
                "{ok} 个模块已加载，{bad} 个无法加载",
                "{en} loaded, {bad} not"
            ),
            Some(tr!(
                lang,
                "检查路径是否正确、驱动是否与本机架构（{arch}）匹配，必要时重新安装驱动；不需要的模块请从 [pkcs11] modules 中删除",
                "check that the path is right and the module is built for this machine ({arch}), reinstall the driver if needed; remove modules you do not use from [pkcs11] modules"
            )),
        )
    };
    Check::new(
        "modules",
        status,
        title,
        lines(first, &rows),
        hint,
        json!({ "modules": modules_json, "use_defaults": use_defaults }),
    )
}

pub fn tokens_check(found: &Found, lang: Lang) -> Check {
    let title = tr!(lang, "密钥（USB Key）", "Tokens (USB keys)");
    let tokens_json: Vec<Value> = found
        .tokens
        .iter()
        .map(|t| {
            json!({
                "id": t.token.id,
                "label": t.token.label,
                "manufacturer": t.token.manufacturer,
                "model": t.token.model,
                "serial": t.token.serial,
                "module": t.token.module.display().to_string(),
                "certificates": t.certificates.len(),
            })
        })
        .collect();
    let errors: Vec<(&PathBuf, &String)> = found
        .modules
        .iter()
        .filter_map(|m| m.scan_error.as_ref().map(|e| (&m.path, e)))
        .collect();
    let errors_json: Vec<Value> = errors
        .iter()
        .map(|(p, e)| json!({ "module": p.display().to_string(), "error": e }))
        .collect();
    let data = json!({ "tokens": tokens_json, "errors": errors_json });
    if !found.modules.iter().any(|m| m.loaded.is_ok()) {
        return Check::new(
            "tokens",
            Status::Warning,
            title,
            tr!(
                lang,
                "未检查：没有已加载的 PKCS#11 模块",
                "not checked: no PKCS#11 module is loaded"
            ),
            None,
            data,
        );
    }
    let mut rows: Vec<String> = found
        .tokens
        .iter()
        .map(|t| {
            let i = &t.token;
            let (label, mf, model, serial, n) = (
                &i.label,
                &i.manufacturer,
                &i.model,
                &i.serial,
                t.certificates.len(),
            );
            tr!(
                lang,
                "• “{label}”（{mf} {model}，序列号 {serial}）：{n} 张证书",
                "• \"{label}\" ({mf} {model}, serial {serial}): {n} certificates"
            )
        })
        .collect();
    for (p, e) in &errors {
        let p = p.display();
        rows.push(tr!(
            lang,
            "✗ {p}：无法列出密钥：{e}",
            "✗ {p}: cannot list its tokens: {e}"
        ));
    }
    let n = found.tokens.len();
    let certs: usize = found.tokens.iter().map(|t| t.certificates.len()).sum();
    let (en, en_certs) = (
        count(n, "token", "tokens"),
        count(certs, "certificate", "certificates"),
    );
    let (status, first, hint) = if !errors.is_empty() {
        (
            Status::Error,
            tr!(
                lang,
                "{n} 个密钥；部分模块无法列出密钥",
                "{en}; some modules cannot list theirs"
            ),
            Some(tr!(
                lang,
                "拔出后重新插入 USB Key；仍然出错时重新安装该模块的驱动",
                "unplug the key and plug it in again; reinstall the module's driver if the error stays"
            )),
        )
    } else if n == 0 {
        (
            Status::Warning,
            tr!(lang, "没有找到密钥（USB Key）", "no token (USB key) found"),
            Some(tr!(
                lang,
                "插入 USB Key；已插入时，确认它的驱动已加载（见“卡片与驱动”和“PKCS#11 模块”两项）",
                "plug in the key; if it is in, check that its module is loaded (see the cards and modules checks)"
            )),
        )
    } else {
        (
            Status::Ok,
            tr!(lang, "{n} 个密钥，共 {certs} 张证书", "{en}, {en_certs}"),
            None,
        )
    };
    Check::new("tokens", status, title, lines(first, &rows), hint, data)
}

pub fn certificates_check(
    found: &Found,
    now: OffsetDateTime,
    warning_days: u32,
    lang: Lang,
) -> Check {
    let title = tr!(lang, "证书有效期", "Certificate validity");
    let mut rows = Vec::new();
    let mut list = Vec::new();
    let (mut valid, mut expiring, mut expired, mut other) = (0, 0, 0, 0);
    let mut signers = 0;
    let mut usable_signers = 0;
    for t in &found.tokens {
        let token = &t.token.label;
        for c in &t.certificates {
            let id = &c.id;
            let Ok(parsed) = &c.parsed else {
                other += 1;
                let reason = c.parsed.as_ref().err().cloned().unwrap_or_default();
                let label = &c.label;
                rows.push(tr!(
                    lang,
                    "! “{label}”（{id}，密钥“{token}”）无法解析：{reason}",
                    "! \"{label}\" ({id}, token \"{token}\") cannot be read: {reason}"
                ));
                list.push(json!({
                    "id": id, "token_id": t.token.id, "token_label": token, "label": c.label,
                    "status": cert::Status::Invalid.as_str(), "error": reason,
                }));
                continue;
            };
            let status = parsed.status(now, warning_days);
            let days = parsed.days_left(now);
            let owner = parsed.owner();
            let until = parsed.validity.not_after.date();
            let from = parsed.validity.not_before.date();
            if c.has_private_key {
                signers += 1;
                if matches!(status, cert::Status::Valid | cert::Status::Expiring) {
                    usable_signers += 1;
                }
            }
            match status {
                cert::Status::Valid => valid += 1,
                cert::Status::Expiring => {
                    expiring += 1;
                    rows.push(tr!(
                        lang,
                        "! {owner}（{id}，密钥“{token}”）：{days} 天后到期（{until}）",
                        "! {owner} ({id}, token \"{token}\"): expires in {days} days ({until})"
                    ));
                }
                cert::Status::Expired => {
                    expired += 1;
                    let ago = -days;
                    rows.push(tr!(
                        lang,
                        "✗ {owner}（{id}，密钥“{token}”）：已过期 {ago} 天（{until}）",
                        "✗ {owner} ({id}, token \"{token}\"): expired {ago} days ago ({until})"
                    ));
                }
                cert::Status::NotYetValid | cert::Status::Invalid => {
                    other += 1;
                    rows.push(tr!(
                        lang,
                        "! {owner}（{id}，密钥“{token}”）：尚未生效（{from} 起）",
                        "! {owner} ({id}, token \"{token}\"): not valid before {from}"
                    ));
                }
            }
            list.push(json!({
                "id": id,
                "token_id": t.token.id,
                "token_label": token,
                "label": c.label,
                "owner": owner,
                "status": status.as_str(),
                "days_left": days,
                "not_before": rfc3339(parsed.validity.not_before),
                "not_after": rfc3339(parsed.validity.not_after),
                "has_private_key": c.has_private_key,
            }));
        }
    }
    let data = json!({ "certificates": list, "expiry_warning_days": warning_days });
    let n = list.len();
    if found.tokens.is_empty() {
        return Check::new(
            "certificates",
            Status::Ok,
            title,
            tr!(lang, "没有密钥，无需检查", "no token, nothing to check"),
            None,
            data,
        );
    }
    if n == 0 {
        return Check::new(
            "certificates",
            Status::Warning,
            title,
            tr!(lang, "密钥中没有证书", "the tokens hold no certificate"),
            Some(tr!(
                lang,
                "向证书颁发机构（CA）申请证书并写入 USB Key",
                "have your CA (certificate authority) issue a certificate onto the key"
            )),
            data,
        );
    }
    let en = count(n, "certificate", "certificates");
    let first = tr!(
        lang,
        "{n} 张证书：{valid} 张有效，{expiring} 张即将到期（{warning_days} 天内），{expired} 张已过期，{other} 张其他",
        "{en}: {valid} valid, {expiring} expiring (within {warning_days} days), {expired} expired, {other} other"
    );
    let renew = tr!(
        lang,
        "请联系证书颁发机构（CA）办理证书更新（续期）；已过期且不再使用的证书可以忽略",
        "renew the certificates with their CA (certificate authority); expired ones you no longer use can be ignored"
    );
    let status = if signers > 0 && usable_signers == 0 {
        Status::Error
    } else if rows.is_empty() {
        Status::Ok
    } else {
        Status::Warning
    };
    let hint = match status {
        Status::Ok => None,
        Status::Error => Some(tr!(
            lang,
            "没有一张带私钥的证书当前有效，无法签名：请联系证书颁发机构（CA）更新证书",
            "no certificate with a private key is valid now, so nothing can sign: renew the certificates with your CA"
        )),
        Status::Warning => Some(renew),
    };
    Check::new(
        "certificates",
        status,
        title,
        lines(first, &rows),
        hint,
        data,
    )
}

pub fn pin_check(found: &Found, lang: Lang) -> Check {
    let title = tr!(lang, "密码（PIN）状态", "PIN state");
    let mut statuses = Vec::new();
    let mut rows = Vec::new();
    let mut all_hints = Vec::new();
    let mut tokens_json = Vec::new();
    for t in &found.tokens {
        let (label, id, pin) = (&t.token.label, &t.token.id, t.token.pin);
        tokens_json.push(json!({
            "id": id,
            "label": label,
            "initialized": pin.initialized,
            "count_low": pin.count_low,
            "final_try": pin.final_try,
            "locked": pin.locked,
            "to_be_changed": pin.to_be_changed,
        }));
        let (status, row, hint) = if pin.locked {
            (
                Status::Error,
                tr!(
                    lang,
                    "✗ “{label}”：用户密码已锁定",
                    "✗ \"{label}\": the user PIN is locked"
                ),
                tr!(
                    lang,
                    "用管理员密码或 CA 提供的解锁码解锁：`certray pin unlock --token {id}`",
                    "unlock it with the admin PIN or the CA's unlock code: `certray pin unlock --token {id}`"
                ),
            )
        } else if pin.final_try {
            (
                Status::Warning,
                tr!(
                    lang,
                    "! “{label}”：只剩最后一次密码尝试机会",
                    "! \"{label}\": one PIN attempt left"
                ),
                tr!(
                    lang,
                    "再输错一次密钥就会锁定：确认密码后再输入；忘记密码请用 `certray pin unlock --token {id}`",
                    "one more wrong PIN locks the key: be sure of it before typing; if it is forgotten, `certray pin unlock --token {id}`"
                ),
            )
        } else if pin.count_low {
            (
                Status::Warning,
                tr!(
                    lang,
                    "! “{label}”：最近输错过密码，剩余尝试次数减少",
                    "! \"{label}\": a wrong PIN was entered, fewer attempts are left"
                ),
                tr!(
                    lang,
                    "输入正确的密码后次数会恢复；不确定密码时不要反复尝试",
                    "a correct PIN resets the count; do not guess when unsure"
                ),
            )
        } else if !pin.initialized {
            (
                Status::Warning,
                tr!(
                    lang,
                    "! “{label}”：尚未设置用户密码",
                    "! \"{label}\": no user PIN is set"
                ),
                tr!(
                    lang,
                    "请联系发放该 USB Key 的机构设置密码",
                    "ask whoever issued the key to set its PIN"
                ),
            )
        } else if pin.to_be_changed {
            (
                Status::Warning,
                tr!(
                    lang,
                    "! “{label}”：需要修改密码",
                    "! \"{label}\": the PIN must be changed"
                ),
                tr!(
                    lang,
                    "修改密码：`certray pin change --token {id}`",
                    "change it: `certray pin change --token {id}`"
                ),
            )
        } else {
            (Status::Ok, String::new(), String::new())
        };
        statuses.push(status);
        if status != Status::Ok {
            rows.push(row);
            all_hints.push(hint);
        }
    }
    let n = found.tokens.len();
    let data = json!({ "tokens": tokens_json });
    if n == 0 {
        return Check::new(
            "pin",
            Status::Ok,
            title,
            tr!(lang, "没有密钥，无需检查", "no token, nothing to check"),
            None,
            data,
        );
    }
    let status = worst(statuses);
    let en = count(n, "token", "tokens");
    let first = match status {
        Status::Ok => tr!(lang, "{n} 个密钥的密码状态正常", "the PIN is fine on {en}"),
        _ => tr!(
            lang,
            "{n} 个密钥，部分需要注意",
            "{en}, some need attention"
        ),
    };
    Check::new(
        "pin",
        status,
        title,
        lines(first, &rows),
        hints(all_hints),
        data,
    )
}

// ---------------------------------------------------------------------------------------------
// The clock
// ---------------------------------------------------------------------------------------------

/// No correct clock shows a time before this: certray did not exist yet.
pub const CLOCK_FLOOR: OffsetDateTime = time::macros::datetime!(2026-01-01 0:00 UTC);

pub fn clock_check(now: OffsetDateTime, found: &Found, lang: Lang) -> Check {
    let newest = found
        .tokens
        .iter()
        .flat_map(|t| &t.certificates)
        .filter_map(|c| c.parsed.as_ref().ok())
        .max_by_key(|c| c.validity.not_before);
    judge_clock(
        now,
        newest.map(|c| (c.owner(), c.validity.not_before)),
        lang,
    )
}

/// The clock is wrong when it shows a time before [`CLOCK_FLOOR`], or more than a day before
/// the newest certificate's not-before (certificates are issued at, not after, that time).
fn judge_clock(now: OffsetDateTime, newest: Option<(String, OffsetDateTime)>, lang: Lang) -> Check {
    let title = tr!(lang, "系统时间", "System clock");
    let shown = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default();
    let floor = CLOCK_FLOOR.date();
    let data = json!({
        "now": rfc3339(now),
        "floor": rfc3339(CLOCK_FLOOR),
        "newest_not_before": newest.as_ref().map(|(_, t)| rfc3339(*t)),
    });
    let hint = if cfg!(target_os = "windows") {
        tr!(
            lang,
            "校正系统时间（设置 → 时间和语言 → 自动设置时间）；证书是否有效取决于它",
            "set the clock right (Settings → Time & language → Set time automatically); certificate validity depends on it"
        )
    } else if cfg!(target_os = "macos") {
        tr!(
            lang,
            "校正系统时间（系统设置 → 通用 → 日期与时间 → 自动设置）；证书是否有效取决于它",
            "set the clock right (System Settings → General → Date & Time → set automatically); certificate validity depends on it"
        )
    } else {
        tr!(
            lang,
            "校正系统时间（开启网络对时：`sudo timedatectl set-ntp true`）；证书是否有效取决于它",
            "set the clock right (turn on network time: `sudo timedatectl set-ntp true`); certificate validity depends on it"
        )
    };
    if now < CLOCK_FLOOR {
        return Check::new(
            "clock",
            Status::Error,
            title,
            tr!(
                lang,
                "系统时间不对：{shown}，早于 {floor}",
                "the clock is wrong: {shown} is before {floor}"
            ),
            Some(hint),
            data,
        );
    }
    if let Some((owner, nb)) = &newest
        && *nb - time::Duration::days(1) > now
    {
        let nb = rfc3339(*nb);
        return Check::new(
            "clock",
            Status::Error,
            title,
            tr!(
                lang,
                "系统时间不对：{shown}，早于证书“{owner}”的签发时间 {nb}",
                "the clock is wrong: {shown} is before the certificate of {owner} was issued ({nb})"
            ),
            Some(hint),
            data,
        );
    }
    Check::new(
        "clock",
        Status::Ok,
        title,
        tr!(lang, "系统时间 {shown}", "the clock says {shown}"),
        None,
        data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn clock_before_floor_or_newest_certificate_is_wrong() {
        let c = judge_clock(datetime!(2025-06-01 0:00 UTC), None, Lang::En);
        assert_eq!(c.status, Status::Error);
        assert!(
            c.finding.contains("wrong") && c.finding.contains("2026-01-01"),
            "{}",
            c.finding
        );
        let now = datetime!(2026-03-01 12:00 UTC);
        assert_eq!(judge_clock(now, None, Lang::En).status, Status::Ok);
        let issued = Some(("Acme".to_string(), datetime!(2026-03-02 12:00 UTC)));
        assert_eq!(
            judge_clock(now, issued, Lang::En).status,
            Status::Ok,
            "within a day"
        );
        let issued = Some(("Acme".to_string(), datetime!(2026-03-05 0:00 UTC)));
        let c = judge_clock(now, issued, Lang::ZhCn);
        assert_eq!(c.status, Status::Error);
        assert!(c.finding.contains("Acme") && c.hint.unwrap().contains("证书"));
    }

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

    #[test]
    fn no_modules_is_a_warning() {
        let c = modules_check(&Found::default(), true, Lang::En);
        assert_eq!(c.status, Status::Warning);
        assert!(c.hint.unwrap().contains("OpenSC"));
        assert_eq!(
            tokens_check(&Found::default(), Lang::En).status,
            Status::Warning
        );
        assert_eq!(
            certificates_check(&Found::default(), OffsetDateTime::now_utc(), 90, Lang::En).status,
            Status::Ok
        );
        assert_eq!(pin_check(&Found::default(), Lang::En).status, Status::Ok);
    }
}
