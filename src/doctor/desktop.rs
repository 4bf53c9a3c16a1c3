//! The desktop checks: is certray started at login (`autostart`), and is there a display for
//! the tray UI and a notification service on the session bus (`display`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Check, Status, home};
use crate::i18n::Lang;

/// The XDG autostart entry and the systemd user unit the packages install.
const DESKTOP_FILE: &str = "certray.desktop";
const UNIT: &str = "certray.service";

// ---------------------------------------------------------------------------------------------
// Autostart
// ---------------------------------------------------------------------------------------------

/// What the autostart locations hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Autostart {
    /// False where this platform is not checked.
    pub checked: bool,
    /// The XDG autostart entry that starts certray at login.
    pub xdg: Option<PathBuf>,
    /// The user's entry that turns a system-wide one off (`Hidden=true`, or GNOME's
    /// `X-GNOME-Autostart-enabled=false`).
    pub xdg_disabled: Option<PathBuf>,
    /// The `*.wants/certray.service` link of an enabled systemd user unit.
    pub systemd: Option<PathBuf>,
    /// Every place looked at.
    pub looked: Vec<PathBuf>,
}

/// `$XDG_CONFIG_HOME` (absolute), else `~/.config`.
fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home().map(|h| h.join(".config")))
}

/// `$XDG_CONFIG_DIRS` (absolute entries), else `/etc/xdg`.
fn config_dirs() -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::var("XDG_CONFIG_DIRS")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .collect();
    if dirs.is_empty() {
        vec![PathBuf::from("/etc/xdg")]
    } else {
        dirs
    }
}

pub fn probe_autostart() -> Autostart {
    if !cfg!(target_os = "linux") {
        return Autostart::default();
    }
    let mut a = Autostart {
        checked: true,
        ..Autostart::default()
    };
    // XDG autostart: the user's entry, when there is one, replaces the system-wide ones of
    // the same name (and may turn them off).
    let user = config_home().map(|c| c.join("autostart").join(DESKTOP_FILE));
    let system: Vec<PathBuf> = config_dirs()
        .into_iter()
        .map(|d| d.join("autostart").join(DESKTOP_FILE))
        .collect();
    a.looked.extend(user.iter().cloned());
    a.looked.extend(system.iter().cloned());
    match user.filter(|p| p.is_file()) {
        Some(p) => {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if desktop_entry_enabled(&text) {
                a.xdg = Some(p);
            } else {
                a.xdg_disabled = Some(p);
            }
        }
        None => {
            a.xdg = system.into_iter().find(|p| {
                p.is_file()
                    && desktop_entry_enabled(&std::fs::read_to_string(p).unwrap_or_default())
            });
        }
    }
    // systemd user units: enabled means a link in some `*.wants` directory.
    let unit_dirs: Vec<PathBuf> = config_home()
        .map(|c| c.join("systemd/user"))
        .into_iter()
        .chain([PathBuf::from("/etc/systemd/user")])
        .collect();
    for dir in unit_dirs {
        a.looked.push(dir.join("default.target.wants").join(UNIT));
        if a.systemd.is_none() {
            a.systemd = wanted_unit(&dir);
        }
    }
    a
}

/// `DIR/*.wants/certray.service`, if any exists.
fn wanted_unit(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wants"))
        .map(|e| e.path().join(UNIT))
        .find(|p| p.exists())
}

/// Whether a desktop entry's `[Desktop Entry]` group leaves autostart on.
fn desktop_entry_enabled(text: &str) -> bool {
    let mut in_entry = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_entry = line == "[Desktop Entry]";
            continue;
        }
        if !in_entry {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if (k == "Hidden" && v == "true") || (k == "X-GNOME-Autostart-enabled" && v == "false") {
            return false;
        }
    }
    true
}

pub fn autostart_check(a: &Autostart, lang: Lang) -> Check {
    let title = tr!(lang, "开机自动启动", "Start at login");
    let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let data = json!({
        "checked": a.checked,
        "xdg_autostart": show(&a.xdg),
        "xdg_disabled_by": show(&a.xdg_disabled),
        "systemd_user_unit": show(&a.systemd),
        "looked": a.looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    if !a.checked {
        return Check::new(
            "autostart",
            Status::Ok,
            title,
            tr!(
                lang,
                "未检查：本平台暂不检查",
                "not checked on this platform"
            ),
            None,
            data,
        );
    }
    let mut found = Vec::new();
    if let Some(p) = &a.xdg {
        let p = p.display();
        found.push(tr!(lang, "桌面自动启动项 {p}", "XDG autostart entry {p}"));
    }
    if let Some(p) = &a.systemd {
        let p = p.display();
        found.push(tr!(
            lang,
            "systemd 用户服务已启用（{p}）",
            "systemd user unit enabled ({p})"
        ));
    }
    if !found.is_empty() {
        let sep = lang.pick("；", "; ");
        let list = found.join(sep);
        return Check::new(
            "autostart",
            Status::Ok,
            title,
            tr!(lang, "已开启：{list}", "on: {list}"),
            None,
            data,
        );
    }
    let finding = match &a.xdg_disabled {
        Some(p) => {
            let p = p.display();
            tr!(lang, "已关闭（{p}）", "turned off ({p})")
        }
        None => tr!(
            lang,
            "未开启：登录后 certray 不会自动运行",
            "off: certray does not start at login"
        ),
    };
    Check::new(
        "autostart",
        Status::Warning,
        title,
        finding,
        Some(tr!(
            lang,
            "开启开机自动启动：托盘菜单“开机自动启动”，或 `systemctl --user enable --now certray`",
            "enable autostart: the tray's 开机自动启动, or `systemctl --user enable --now certray`"
        )),
        data,
    )
}

// ---------------------------------------------------------------------------------------------
// Display and notifications
// ---------------------------------------------------------------------------------------------

/// The desktop session as certray's UI would find it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Display {
    /// False on platforms where the desktop is always there (Windows, macOS).
    pub checked: bool,
    /// `DISPLAY=…` / `WAYLAND_DISPLAY=…`, whichever are set.
    pub display: Vec<String>,
    /// The session bus address.
    pub bus: Option<String>,
    pub notifications: Notifications,
    pub tray: Tray,
}

/// The program that shows the tray (see [`crate::ui::tray::link`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tray {
    /// This executable has the tray.
    #[default]
    Linked,
    /// `certray run` hands over to this program beside it, which is there.
    Beside(PathBuf),
    /// … which is missing.
    Missing(PathBuf),
}

pub fn probe_tray() -> Tray {
    if crate::ui::tray::linked() {
        return Tray::Linked;
    }
    let name = crate::ui::tray::DESKTOP_EXE;
    match crate::platform::beside_this_exe(name) {
        Ok(p) if p.is_file() => Tray::Beside(p),
        Ok(p) => Tray::Missing(p),
        Err(_) => Tray::Missing(PathBuf::from(name)),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Notifications {
    #[default]
    NoBus,
    /// A program owns `org.freedesktop.Notifications` now.
    Running { tool: String },
    /// The bus starts a notification service on demand.
    Activatable { tool: String },
    /// The bus has no notification service.
    Missing { tool: String },
    /// Not asked: no `dbus-send` or `busctl`.
    NoTool,
    /// Asking failed.
    Failed { tool: String, reason: String },
}

const NOTIFICATIONS: &str = "org.freedesktop.Notifications";
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn probe_display() -> Display {
    if cfg!(any(target_os = "windows", target_os = "macos")) {
        return Display {
            tray: probe_tray(),
            ..Display::default()
        };
    }
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={v}"))
        })
        .collect();
    let bus = session_bus();
    let notifications = match &bus {
        None => Notifications::NoBus,
        Some(addr) => ask_notifications(addr),
    };
    Display {
        checked: true,
        display,
        bus,
        notifications,
        tray: probe_tray(),
    }
}

/// `DBUS_SESSION_BUS_ADDRESS`, else systemd's `$XDG_RUNTIME_DIR/bus` when that socket exists.
fn session_bus() -> Option<String> {
    if let Ok(a) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        && !a.is_empty()
    {
        return Some(a);
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)?;
    let socket = runtime.join("bus");
    socket
        .exists()
        .then(|| format!("unix:path={}", socket.display()))
}

/// A program on PATH (or in the usual bin directories).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Ask the bus whether `org.freedesktop.Notifications` has an owner, else whether it can be
/// activated, with `dbus-send` or else `busctl`.
fn ask_notifications(addr: &str) -> Notifications {
    let dbus_call = |tool: &Path, method: &str, arg: Option<&str>| -> Command {
        let mut c = Command::new(tool);
        if tool.ends_with("dbus-send") {
            c.arg(format!("--bus={addr}"))
                .args([
                    "--print-reply",
                    "--reply-timeout=2000",
                    "--dest=org.freedesktop.DBus",
                ])
                .arg("/org/freedesktop/DBus")
                .arg(format!("org.freedesktop.DBus.{method}"));
            if let Some(a) = arg {
                c.arg(format!("string:{a}"));
            }
        } else {
            c.arg(format!("--address={addr}"))
                .args([
                    "call",
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                ])
                .arg(method);
            if let Some(a) = arg {
                c.args(["s", a]);
            }
        }
        c
    };
    let Some(tool) = find_program("dbus-send").or_else(|| find_program("busctl")) else {
        return Notifications::NoTool;
    };
    let tool_name = tool
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let owned = match output_within(
        &mut dbus_call(&tool, "NameHasOwner", Some(NOTIFICATIONS)),
        ASK_TIMEOUT,
    ) {
        Ok(out) => String::from_utf8_lossy(&out).contains("true"),
        Err(reason) => {
            return Notifications::Failed {
                tool: tool_name,
                reason,
            };
        }
    };
    if owned {
        return Notifications::Running { tool: tool_name };
    }
    match output_within(
        &mut dbus_call(&tool, "ListActivatableNames", None),
        ASK_TIMEOUT,
    ) {
        Ok(out) if String::from_utf8_lossy(&out).contains(&format!("\"{NOTIFICATIONS}\"")) => {
            Notifications::Activatable { tool: tool_name }
        }
        Ok(_) => Notifications::Missing { tool: tool_name },
        Err(reason) => Notifications::Failed {
            tool: tool_name,
            reason,
        },
    }
}

/// Run `cmd` and return its stdout if it succeeds within `limit`; kill it when it does not.
fn output_within(cmd: &mut Command, limit: Duration) -> Result<Vec<u8>, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", limit.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    // The outputs are small: they fit in the pipes, so waiting first cannot block.
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(stdout)
    } else {
        let err = String::from_utf8_lossy(&stderr).trim().to_string();
        Err(if err.is_empty() {
            status.to_string()
        } else {
            err
        })
    }
}

pub fn display_check(d: &Display, lang: Lang) -> Check {
    let title = tr!(lang, "桌面显示与通知", "Display and notifications");
    let notif = match &d.notifications {
        Notifications::NoBus => json!({ "state": "no_bus" }),
        Notifications::Running { tool } => json!({ "state": "running", "tool": tool }),
        Notifications::Activatable { tool } => json!({ "state": "activatable", "tool": tool }),
        Notifications::Missing { tool } => json!({ "state": "missing", "tool": tool }),
        Notifications::NoTool => json!({ "state": "not_checked" }),
        Notifications::Failed { tool, reason } => {
            json!({ "state": "failed", "tool": tool, "error": reason })
        }
    };
    let tray = match &d.tray {
        Tray::Linked => json!({ "state": "linked" }),
        Tray::Beside(p) => json!({ "state": "beside", "program": p }),
        Tray::Missing(p) => json!({ "state": "missing", "program": p }),
    };
    let data = json!({
        "checked": d.checked,
        "display": d.display,
        "session_bus": d.bus,
        "notifications": notif,
        "tray": tray,
    });
    if !d.checked {
        return Check::new(
            "display",
            Status::Ok,
            title,
            tr!(
                lang,
                "桌面会话由系统提供",
                "the desktop session is provided by the system"
            ),
            None,
            data,
        );
    }
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    if d.display.is_empty() {
        problems.push(tr!(
            lang,
            "没有图形界面（DISPLAY 和 WAYLAND_DISPLAY 均未设置）：托盘程序无法显示，`certray run --headless` 可正常使用",
            "no display (neither DISPLAY nor WAYLAND_DISPLAY is set): the tray cannot show; `certray run --headless` works"
        ));
    } else {
        let shown = d.display.join(", ");
        rows.push(tr!(lang, "显示：{shown}", "display: {shown}"));
    }
    match &d.notifications {
        Notifications::NoBus => problems.push(tr!(
            lang,
            "没有会话 D-Bus（DBUS_SESSION_BUS_ADDRESS 未设置）：无法显示通知",
            "no session D-Bus (DBUS_SESSION_BUS_ADDRESS is not set): notifications cannot show"
        )),
        Notifications::Running { .. } => rows.push(tr!(lang, "通知服务正在运行", "a notification service is running")),
        Notifications::Activatable { .. } => {
            rows.push(tr!(lang, "通知服务可按需启动", "a notification service starts on demand"))
        }
        Notifications::Missing { .. } => problems.push(tr!(
            lang,
            "会话 D-Bus 上没有通知服务（org.freedesktop.Notifications）：证书到期等提醒无法弹出",
            "no notification service (org.freedesktop.Notifications) on the session D-Bus: expiry and other alerts cannot pop up"
        )),
        Notifications::NoTool => rows.push(tr!(
            lang,
            "有会话 D-Bus；未检查通知服务（没有 dbus-send 或 busctl）",
            "a session D-Bus is there; the notification service was not checked (no dbus-send or busctl)"
        )),
        Notifications::Failed { tool, reason } => problems.push(tr!(
            lang,
            "无法询问会话 D-Bus（{tool}）：{reason}",
            "cannot ask the session D-Bus ({tool}): {reason}"
        )),
    }
    let mut hint = tr!(
        lang,
        "在桌面会话中运行 certray 才能使用托盘和通知；服务器或远程登录时用 `certray run --headless` 即可",
        "run certray inside the desktop session for the tray and notifications; on a server or over ssh `certray run --headless` is fine"
    );
    match &d.tray {
        Tray::Linked => {}
        Tray::Beside(p) => {
            let p = p.display();
            rows.push(tr!(lang, "托盘程序：{p}", "tray program: {p}"));
        }
        Tray::Missing(p) => {
            let p = p.display();
            problems.insert(
                0,
                tr!(
                    lang,
                    "没有托盘程序 {p}：`certray run` 将没有托盘图标（对话框和通知照常可用）",
                    "no tray program {p}: `certray run` will have no tray icon (dialogs and notifications still work)"
                ),
            );
            hint = tr!(
                lang,
                "重新安装证书助手，让 certray-desktop 与 certray 在同一目录",
                "reinstall certray so that certray-desktop is beside certray"
            );
        }
    }
    if problems.is_empty() {
        let first = rows.remove(0);
        let mut finding = first;
        for r in rows {
            finding.push_str(lang.pick("；", "; "));
            finding.push_str(&r);
        }
        return Check::new("display", Status::Ok, title, finding, None, data);
    }
    let first = problems.remove(0);
    let mut finding = first;
    for p in problems.iter().chain(&rows) {
        finding.push('\n');
        finding.push_str(p);
    }
    Check::new("display", Status::Warning, title, finding, Some(hint), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_entries_can_turn_autostart_off() {
        assert!(desktop_entry_enabled(
            "[Desktop Entry]\nType=Application\nExec=certray run\n"
        ));
        assert!(!desktop_entry_enabled("[Desktop Entry]\nHidden=true\n"));
        assert!(!desktop_entry_enabled(
            "[Desktop Entry]\nX-GNOME-Autostart-enabled=false\n"
        ));
        assert!(desktop_entry_enabled(
            "[Desktop Action x]\nHidden=true\n[Desktop Entry]\nExec=a\n"
        ));
    }

    #[test]
    fn autostart_verdicts() {
        let on = Autostart {
            checked: true,
            xdg: Some("/etc/xdg/autostart/certray.desktop".into()),
            ..Default::default()
        };
        assert_eq!(autostart_check(&on, Lang::En).status, Status::Ok);
        let off = Autostart {
            checked: true,
            ..Default::default()
        };
        let c = autostart_check(&off, Lang::En);
        assert_eq!(c.status, Status::Warning);
        assert!(
            c.hint
                .unwrap()
                .contains("systemctl --user enable --now certray")
        );
        assert_eq!(
            autostart_check(&Autostart::default(), Lang::En).status,
            Status::Ok
        );
    }

    #[test]
    fn headless_is_a_warning_not_an_error() {
        let headless = Display {
            checked: true,
            ..Default::default()
        };
        let c = display_check(&headless, Lang::En);
        assert_eq!(c.status, Status::Warning);
        assert!(c.finding.contains("DISPLAY") && c.finding.contains("D-Bus"));
        assert_eq!(
            display_check(&session(Tray::Linked), Lang::En).status,
            Status::Ok
        );
    }

    /// A desktop session with a display, a bus and a running notification service.
    fn session(tray: Tray) -> Display {
        Display {
            checked: true,
            display: vec!["DISPLAY=:0".into()],
            bus: Some("unix:path=/run/user/1000/bus".into()),
            notifications: Notifications::Running {
                tool: "dbus-send".into(),
            },
            tray,
        }
    }

    #[test]
    fn a_missing_tray_program_is_a_warning_that_names_it() {
        let missing = session(Tray::Missing("/opt/certray/certray-desktop".into()));
        let c = display_check(&missing, Lang::En);
        assert_eq!(c.status, Status::Warning);
        assert!(
            c.finding.contains("/opt/certray/certray-desktop"),
            "{}",
            c.finding
        );
        assert!(c.hint.as_deref().unwrap_or("").contains("reinstall"));
        assert_eq!(c.data["tray"]["state"], "missing");
        let there = session(Tray::Beside("/usr/bin/certray-desktop".into()));
        let c = display_check(&there, Lang::En);
        assert_eq!(c.status, Status::Ok);
        assert_eq!(c.data["tray"]["program"], "/usr/bin/certray-desktop");
    }
}
