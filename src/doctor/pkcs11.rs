//! The checks of the PKCS#11 side: the modules, the tokens they serve, the certificates'
//! validity and the PIN states.

use std::path::PathBuf;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::hardware::Found;
use super::{Check, Status, count, hints, lines, rfc3339, worst};
use crate::cert;
use crate::i18n::Lang;
use crate::token;

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
                "module": t.token.location.library.display().to_string(),
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
            let holder = parsed.holder();
            // The person and the company they sign for: a staff certificate's holder alone
            // does not say which of the company's keys it is.
            let owner = match &holder.organization {
                Some(o) if !crate::model::certificate::same_name(o, &holder.name) => {
                    format!("{} · {o}", holder.name)
                }
                _ => holder.name.clone(),
            };
            let until = parsed.validity.not_after.date();
            let from = parsed.validity.not_before.date();
            if c.has_private_key.may_sign() {
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
                "owner": holder.name,
                "organization": holder.organization,
                "status": status.as_str(),
                "days_left": days,
                "not_before": rfc3339(parsed.validity.not_before),
                "not_after": rfc3339(parsed.validity.not_after),
                "has_private_key": c.has_private_key.known(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
