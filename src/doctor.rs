//! `certray doctor` (环境检测): answers "why doesn't it see my key" by looking at everything
//! between the USB key and the web page, and saying for each part what it found and what to
//! do about it, in the user's language.
//!
//! Checks, in order: `config`, `pcscd`, `readers`, `cards`, `modules`, `tokens`,
//! `certificates`, `pin`, `bridge`, `xtx`, `autostart`, `display`, `clock`. Each is `ok`, `warning`
//! or `error` with a title, the finding, a hint (what to do) and machine-readable `data`.
//! Every check really looks (PC/SC, the PKCS#11 modules, the bridge port, files, the session
//! bus); nothing is assumed. The CLI prints the [`Report`] (`--json`: as it serialises) and
//! exits with [`Report::exit_code`]; the tray's 环境检测 shows the same report.
//!
//! Facts are gathered first (`hardware`, `bridge`, `desktop`: the I/O, in parallel where
//! independent), then judged by pure functions (`pcsc`, `pkcs11`, `clock`, and those of
//! `bridge` and `desktop`), which their unit tests exercise.
//! Modules are loaded and scanned by the core's inventory, read once ([`crate::core::Live`],
//! as every command and the daemon do); PC/SC is probed through [`crate::token::pcsc_probe`].

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use unicode_width::UnicodeWidthStr;

use crate::config::{self, Config};
use crate::i18n::Lang;

/// `format!` in the user's language: `tr!(lang, "中文 {x}", "English {x}")`.
macro_rules! tr {
    ($lang:expr, $zh:literal, $en:literal $(,)?) => {
        match $lang {
            $crate::i18n::Lang::ZhCn => format!($zh),
            $crate::i18n::Lang::En => format!($en),
        }
    };
}

mod bridge;
mod clock;
mod desktop;
mod hardware;
mod pcsc;
mod pkcs11;
mod skf;
mod xtx;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Error,
}

impl Status {
    /// The marker of the human output: ✓, ! or ✗.
    pub fn marker(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warning => "!",
            Status::Error => "✗",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Stable identifier: `pcscd`, `readers`, `cards`, … (see the module docs).
    pub id: &'static str,
    pub status: Status,
    /// What was checked, for people.
    pub title: String,
    /// What was found: a summary line, then one line per item where there are several.
    pub finding: String,
    /// What to do; `null` when nothing needs doing.
    pub hint: Option<String>,
    /// The facts behind the finding (an object; its fields depend on the check).
    pub data: serde_json::Value,
}

impl Check {
    fn new(
        id: &'static str,
        status: Status,
        title: String,
        finding: String,
        hint: Option<String>,
        data: serde_json::Value,
    ) -> Check {
        Check {
            id,
            status,
            title,
            finding,
            hint,
            data,
        }
    }
}

/// How many checks came out how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warning: usize,
    pub error: usize,
}

/// The whole report: `{"checks":[…],"summary":{"ok","warning","error"}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub summary: Summary,
}

/// The exit code of `certray doctor` when a check is an error (documented in the README).
pub const EXIT_ERRORS: i32 = 50;

impl Report {
    pub fn new(checks: Vec<Check>) -> Report {
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Ok => summary.ok += 1,
                Status::Warning => summary.warning += 1,
                Status::Error => summary.error += 1,
            }
        }
        Report { checks, summary }
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The process exit code for `certray doctor`: 0 when no check found an error, else 1
    /// (warnings alone do not fail).
    /// 0 when no check is an error, else [`EXIT_ERRORS`] (warnings alone do not fail).
    pub fn exit_code(&self) -> i32 {
        if self.summary.error > 0 {
            EXIT_ERRORS
        } else {
            0
        }
    }
}

/// Load the configuration the way every command does (`explicit`, else the default file,
/// which may be missing) and run every check. A configuration that cannot be used is the
/// `config` check's error; the other checks then run with the defaults.
pub fn run_with_config_file(explicit: Option<&Path>, lang: Lang) -> Report {
    let (config, check) = match Config::load(explicit) {
        Ok((config, path)) => {
            let mut c = config_ok(path.as_deref(), explicit.is_none(), lang);
            ca_paths(&mut c, &config, lang);
            (config, c)
        }
        Err(e) => {
            let path = match &e {
                config::Error::Read { path, .. } | config::Error::Parse { path, .. } => {
                    path.clone()
                }
            };
            (Config::default(), config_error(&path, &e.to_string(), lang))
        }
    };
    let mut checks = vec![check];
    checks.extend(checks_for(&config, lang));
    Report::new(checks)
}

/// Run every check but `config` against `config`.
pub fn run(config: &Config, lang: Lang) -> Report {
    Report::new(checks_for(config, lang))
}

fn checks_for(config: &Config, lang: Lang) -> Vec<Check> {
    let now = OffsetDateTime::now_utc();
    // The slow parts (PC/SC, module loading and scanning, the port, the session bus) are
    // independent: look at them side by side.
    let (pcsc, found, port, display, autostart, xtx) = std::thread::scope(|s| {
        let pcsc = s.spawn(crate::token::pcsc_probe::pcsc_status);
        let port = s.spawn(|| bridge::probe(config.bridge.listen));
        let xtx = s.spawn(|| xtx::probe(&config.xtx));
        let display = s.spawn(desktop::probe_display);
        let autostart = s.spawn(desktop::probe_autostart);
        let found = hardware::look(config);
        (
            join(pcsc),
            found,
            join(port),
            join(display),
            join(autostart),
            join(xtx),
        )
    });
    let registry = crate::token::registry::Registry::new(&config.cards);
    vec![
        pcsc::pcscd_check(&pcsc, lang),
        pcsc::readers_check(&pcsc, lang),
        pcsc::cards_check(&pcsc, &registry, &found, lang),
        pkcs11::modules_check(&found, config.pkcs11.use_defaults, lang),
        pkcs11::tokens_check(&found, lang),
        pkcs11::certificates_check(&found, now, config.alerts.expiry_warning_days, lang),
        pkcs11::pin_check(&found, lang),
        skf::libraries_check(&found, lang),
        bridge::check(config.bridge.listen, &port, lang),
        xtx::check(&config.xtx, &xtx, lang),
        desktop::autostart_check(&autostart, lang),
        desktop::display_check(&display, lang),
        clock::clock_check(now, &found, lang),
    ]
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn config_ok(path: Option<&Path>, default_location: bool, lang: Lang) -> Check {
    let title = tr!(lang, "配置文件", "Configuration");
    let (finding, shown) = match path {
        Some(p) => {
            let p = p.display();
            (
                tr!(lang, "已读取 {p}", "read {p}"),
                serde_json::Value::String(p.to_string()),
            )
        }
        None => {
            let d = config::default_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            (
                tr!(
                    lang,
                    "没有配置文件（{d}），使用默认设置",
                    "no configuration file ({d}): the defaults apply"
                ),
                serde_json::Value::Null,
            )
        }
    };
    Check::new(
        "config",
        Status::Ok,
        title,
        finding,
        None,
        serde_json::json!({ "path": shown, "default_location": default_location }),
    )
}

/// `[trust] ca_paths`: how many CA certificates they give, and the entries that cannot be
/// read (a warning: issuers are then not verified with them).
fn ca_paths(c: &mut Check, config: &Config, lang: Lang) {
    if config.trust.ca_paths.is_empty() {
        return;
    }
    let trust = crate::core::Trust::load_ca_paths(&config.trust);
    let n = trust.len();
    c.finding.push_str(&tr!(
        lang,
        "\n[trust] ca_paths：读取 {n} 张 CA 证书",
        "\n[trust] ca_paths: {n} CA certificates read"
    ));
    let problems: Vec<serde_json::Value> = trust
        .problems()
        .iter()
        .map(|p| {
            let path = p.path.as_ref().map(|p| p.display().to_string());
            let reason = &p.reason;
            c.finding
                .push_str(&format!("\n! {}: {reason}", path.as_deref().unwrap_or("-")));
            serde_json::json!({ "path": path, "reason": reason })
        })
        .collect();
    if !problems.is_empty() && c.status == Status::Ok {
        c.status = Status::Warning;
        c.hint = Some(tr!(
            lang,
            "修正 [trust] ca_paths 中无法读取的路径：其中的 CA 证书用于验证证书的颁发者",
            "fix the [trust] ca_paths entries that cannot be read: their CA certificates verify the certificates' issuers"
        ));
    }
    c.data["ca_paths"] = serde_json::json!({
        "paths": config.trust.ca_paths,
        "certificates": n,
        "problems": problems,
    });
}

fn config_error(path: &Path, reason: &str, lang: Lang) -> Check {
    let p = path.display();
    Check::new(
        "config",
        Status::Error,
        tr!(lang, "配置文件", "Configuration"),
        tr!(
            lang,
            "配置文件无法使用（以下检查按默认设置进行）：{reason}",
            "the configuration cannot be used (the checks below use the defaults): {reason}"
        ),
        Some(tr!(
            lang,
            "修改 {p} 中指出的键或行，或删除该文件以使用默认设置",
            "fix the key or line named above in {p}, or remove the file to use the defaults"
        )),
        serde_json::json!({ "path": p.to_string(), "error": reason }),
    )
}

/// The report as aligned text: a title line, then per check its marker, title and finding,
/// the finding's further lines and the hint (→) indented under it, and a summary line.
pub fn render(report: &Report, lang: Lang) -> String {
    let mut out = String::new();
    out.push_str(lang.pick(
        "证书助手 环境检测（certray doctor）\n\n",
        "certray environment check (环境检测)\n\n",
    ));
    let width = report
        .checks
        .iter()
        .map(|c| c.title.width())
        .max()
        .unwrap_or(0);
    // Marker, a space, the title column, two spaces.
    let indent = " ".repeat(2 + width + 2);
    for c in &report.checks {
        let mut lines = c.finding.lines();
        let first = lines.next().unwrap_or("");
        let pad = " ".repeat(width - c.title.width());
        out.push_str(&format!(
            "{} {}{pad}  {first}\n",
            c.status.marker(),
            c.title
        ));
        for l in lines {
            out.push_str(&format!("{indent}{l}\n"));
        }
        for h in c.hint.iter().flat_map(|h| h.lines()) {
            out.push_str(&format!("{indent}→ {h}\n"));
        }
    }
    let s = report.summary;
    let n = report.checks.len();
    let (ok, w, e) = (s.ok, s.warning, s.error);
    out.push('\n');
    out.push_str(&tr!(
        lang,
        "共 {n} 项：{ok} 项正常，{w} 项警告，{e} 项错误\n",
        "{n} checks: {ok} ok, {w} warnings, {e} errors\n"
    ));
    out
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

/// `1 reader`, `2 readers`: English counts.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Two paths name the same file (through symlinks too).
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    a == b || canon(a) == canon(b)
}

/// The user's home directory.
fn home() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &'static str, status: Status, finding: &str, hint: Option<&str>) -> Check {
        Check::new(
            id,
            status,
            format!("标题{id}"),
            finding.into(),
            hint.map(Into::into),
            serde_json::json!({}),
        )
    }

    #[test]
    fn summary_exit_code_and_json_shape() {
        let r = Report::new(vec![
            check("a", Status::Ok, "fine", None),
            check("b", Status::Warning, "hm", Some("do x")),
        ]);
        assert_eq!(
            r.summary,
            Summary {
                ok: 1,
                warning: 1,
                error: 0
            }
        );
        assert_eq!(r.exit_code(), 0);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["checks"][1]["status"], "warning");
        assert_eq!(v["checks"][0]["hint"], serde_json::Value::Null);
        assert_eq!(v["summary"]["warning"], 1);
        for key in ["id", "status", "title", "finding", "hint", "data"] {
            assert!(v["checks"][0].get(key).is_some(), "{key}");
        }
        let r = Report::new(vec![check("c", Status::Error, "bad", None)]);
        assert_eq!(r.exit_code(), EXIT_ERRORS);
        assert_eq!(r.check("c").unwrap().status, Status::Error);
    }

    #[test]
    fn ca_paths_that_cannot_be_read_are_a_warning() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/real-certs/01-nrcac-sm2-root.der");
        assert!(root.is_file(), "the corpus: {}", root.display());
        let mut config = Config::default();
        config.trust.ca_paths = vec![root, PathBuf::from("/nonexistent/ca.pem")];
        let mut c = config_ok(None, true, Lang::ZhCn);
        ca_paths(&mut c, &config, Lang::ZhCn);
        assert_eq!(c.status, Status::Warning);
        assert!(c.finding.contains("读取 1 张 CA 证书"), "{}", c.finding);
        assert!(c.finding.contains("/nonexistent/ca.pem"), "{}", c.finding);
        assert_eq!(c.data["ca_paths"]["certificates"], 1);
        assert_eq!(
            c.data["ca_paths"]["problems"][0]["path"],
            "/nonexistent/ca.pem"
        );
        // All readable: still ok, with the count.
        config.trust.ca_paths.pop();
        let mut c = config_ok(None, true, Lang::En);
        ca_paths(&mut c, &config, Lang::En);
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.finding.ends_with("1 CA certificates read"),
            "{}",
            c.finding
        );
    }

    #[test]
    fn render_aligns_wide_titles_and_indents_details() {
        let mut a = check("a", Status::Ok, "one", None);
        a.title = "读卡器".into();
        let mut b = check("b", Status::Error, "two\nmore", Some("fix it"));
        b.title = "PKCS#11 modules".into();
        let text = render(&Report::new(vec![a, b]), Lang::ZhCn);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("环境检测"));
        let col = |l: &str, needle: &str| l[..l.find(needle).unwrap()].width();
        assert_eq!(col(lines[2], "one"), col(lines[3], "two"));
        assert_eq!(col(lines[3], "two"), col(lines[4], "more"));
        assert_eq!(col(lines[5], "→"), col(lines[3], "two"));
        assert!(lines[2].starts_with("✓ ") && lines[3].starts_with("✗ "));
        assert!(text.contains("共 2 项：1 项正常，0 项警告，1 项错误"));
        let en = render(&Report::new(vec![]), Lang::En);
        assert!(en.contains("0 checks: 0 ok, 0 warnings, 0 errors"), "{en}");
    }

    #[test]
    fn config_errors_name_the_file() {
        let c = config_error(Path::new("/x/c.toml"), "unknown field `modulez`", Lang::En);
        assert_eq!(c.status, Status::Error);
        assert!(c.finding.contains("modulez"));
        assert!(c.hint.unwrap().contains("/x/c.toml"));
        let c = config_ok(None, true, Lang::ZhCn);
        assert_eq!(c.status, Status::Ok);
        assert!(c.finding.contains("默认设置"));
    }
}
