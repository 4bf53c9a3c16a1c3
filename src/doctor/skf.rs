//! The `skf` check: which GM/T 0016 (SKF) vendor libraries were found and loaded (each in
//! its `certray skf-host` process), the devices each sees, and a host that crashed or hung,
//! with why.

use serde_json::json;

use super::hardware::Found;
use super::{Check, Status};
use crate::i18n::Lang;

pub fn libraries_check(found: &Found, lang: Lang) -> Check {
    let title = tr!(
        lang,
        "SKF 驱动库（国密 USB Key）",
        "SKF libraries (GM/T 0016 USB keys)"
    );
    let mut status = Status::Ok;
    let mut lines = Vec::new();
    let mut data = Vec::new();
    for l in &found.skf {
        let path = l.path.display().to_string();
        match &l.loaded {
            Ok(()) => {
                let devices = if l.devices.is_empty() {
                    tr!(lang, "未发现设备", "no device")
                } else {
                    l.devices.join(", ")
                };
                lines.push(tr!(
                    lang,
                    "✓ {path}：已加载；设备：{devices}",
                    "✓ {path}: loaded; devices: {devices}"
                ));
            }
            Err(reason) => {
                status = status.max(if l.configured {
                    Status::Error
                } else {
                    Status::Warning
                });
                lines.push(tr!(
                    lang,
                    "✗ {path}：无法加载：{reason}",
                    "✗ {path}: not loaded: {reason}"
                ));
            }
        }
        if let Some(e) = &l.scan_error {
            status = status.max(Status::Warning);
            lines.push(tr!(
                lang,
                "  列出设备失败：{e}",
                "  listing its devices failed: {e}"
            ));
        }
        for i in &l.incidents {
            status = status.max(Status::Warning);
            lines.push(tr!(lang, "  驱动进程异常：{i}", "  its host process {i}"));
        }
        data.push(json!({
            "path": path,
            "configured": l.configured,
            "loaded": l.loaded.is_ok(),
            "error": l.loaded.as_ref().err(),
            "devices": l.devices,
            "incidents": l.incidents,
            "scan_error": l.scan_error,
        }));
    }
    let n = found.skf.len();
    let summary = if n == 0 {
        tr!(
            lang,
            "未配置 SKF 驱动库，也未发现已安装的厂商驱动库",
            "no SKF library configured, and no known vendor library installed"
        )
    } else {
        let loaded = found.skf.iter().filter(|l| l.loaded.is_ok()).count();
        tr!(
            lang,
            "已加载 {loaded}/{n} 个 SKF 驱动库",
            "{loaded} of {n} SKF libraries loaded"
        )
    };
    let hint = match status {
        Status::Ok => None,
        _ => Some(tr!(
            lang,
            "检查配置文件 [skf] libraries 中的路径；驱动库崩溃或无响应时请联系密钥厂商更新驱动",
            "Check the paths in [skf] libraries; a library that crashes or hangs needs an update from the key vendor"
        )),
    };
    let mut finding = summary;
    for l in lines {
        finding.push('\n');
        finding.push_str(&l);
    }
    Check::new(
        "skf",
        status,
        title,
        finding,
        hint,
        json!({ "libraries": data }),
    )
}
