//! Human output of the CLI, in the user's language.

use super::Failure;
use super::table::Table;
use crate::bridge::wire::{CertificateDto, EventDto, ListDto, NameDto, TokenDto};
use crate::i18n::Lang;
use crate::token::PinState;

/// `错误 [CODE]: message` / `提示: hint` / `详情: detail`.
pub fn failure(f: &Failure, lang: Lang) -> String {
    let mut s = format!(
        "{} [{}]: {}",
        lang.pick("错误", "error"),
        f.code,
        f.code.message(lang)
    );
    if let Some(pin) = f.pin {
        s.push_str(&format!("\n{}", pin_state_line(pin, lang)));
    }
    s.push_str(&format!(
        "\n{}: {}",
        lang.pick("提示", "hint"),
        f.code.hint(lang)
    ));
    if let Some(d) = &f.detail {
        s.push_str(&format!("\n{}: {d}", lang.pick("详情", "detail")));
    }
    s
}

/// The allowed PIN length, as CA helpers phrase it.
pub fn pin_range(p: PinState, lang: Lang) -> String {
    if p.max_len == 0 {
        format!(
            "{}{}",
            p.min_len,
            lang.pick(" 个字符以上，区分大小写", "+ characters, case sensitive")
        )
    } else {
        format!(
            "{}–{}{}",
            p.min_len,
            p.max_len,
            lang.pick(" 个字符，区分大小写", " characters, case sensitive")
        )
    }
}

/// One line: state and length range, e.g. `PIN：正常 · 6–16 个字符，区分大小写`.
pub fn pin_state_line(p: PinState, lang: Lang) -> String {
    format!(
        "PIN{}{} · {}",
        lang.pick("：", ": "),
        pin_flags(p, lang),
        pin_range(p, lang)
    )
}

fn pin_flags(p: PinState, lang: Lang) -> String {
    let mut flags = Vec::new();
    if p.locked {
        flags.push(lang.pick("已锁定", "locked"));
    } else if p.final_try {
        flags.push(lang.pick("仅剩最后一次机会", "final try"));
    } else if p.count_low {
        flags.push(lang.pick("曾输错，剩余次数不多", "count low"));
    }
    if !p.initialized {
        flags.push(lang.pick("未设置", "not initialized"));
    }
    if p.to_be_changed {
        flags.push(lang.pick("需修改", "must be changed"));
    }
    if flags.is_empty() {
        flags.push(lang.pick("正常", "ok"));
    }
    flags.join(lang.pick("，", ", "))
}

pub fn status_name(status: &str, lang: Lang) -> &'static str {
    match status {
        "valid" => lang.pick("有效", "valid"),
        "expiring" => lang.pick("即将过期", "expiring"),
        "expired" => lang.pick("已过期", "expired"),
        "not_yet_valid" => lang.pick("尚未生效", "not yet valid"),
        _ => lang.pick("无法解析", "invalid"),
    }
}

/// Usage names in the user's language, joined; `-` for none.
pub fn usages(names: &[String], lang: Lang) -> String {
    if names.is_empty() {
        return "-".into();
    }
    let names: Vec<String> = names.iter().map(|u| usage_name(u, lang)).collect();
    names.join(lang.pick("、", ", "))
}

pub fn usage_name(u: &str, lang: Lang) -> String {
    let zh = match u {
        "digitalSignature" => "数字签名",
        "nonRepudiation" => "不可否认",
        "keyEncipherment" => "密钥加密",
        "dataEncipherment" => "数据加密",
        "keyAgreement" => "密钥协商",
        "keyCertSign" => "签发证书",
        "cRLSign" => "签发CRL",
        "encipherOnly" => "仅加密",
        "decipherOnly" => "仅解密",
        "serverAuth" => "服务器认证",
        "clientAuth" => "客户端认证",
        "codeSigning" => "代码签名",
        "emailProtection" => "安全邮件",
        "timeStamping" => "时间戳",
        "OCSPSigning" => "OCSP签名",
        other => other,
    };
    lang.pick(zh, u).to_string()
}

fn date(rfc3339: &Option<String>) -> String {
    rfc3339
        .as_deref()
        .map(|s| s.get(..10).unwrap_or(s).to_string())
        .unwrap_or_default()
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

fn issuer_name(n: &Option<NameDto>) -> String {
    n.as_ref()
        .and_then(|n| n.cn.clone().or_else(|| n.o.clone()))
        .unwrap_or_else(|| "-".into())
}

/// The `certray list` tables: tokens, then certificates.
pub fn list(list: &ListDto, lang: Lang) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} ({})\n",
        lang.pick("密钥", "Tokens"),
        list.tokens.len()
    ));
    if list.tokens.is_empty() {
        out.push_str(lang.pick(
            "未发现密钥：请插入 USB Key，或运行 certray demo 体验演示密钥。\n",
            "No token found: insert a USB key, or run `certray demo` to try the demo token.\n",
        ));
    } else {
        let mut t = Table::new(&[
            lang.pick("密钥编号", "Token ID"),
            lang.pick("名称", "Label"),
            lang.pick("厂商", "Manufacturer"),
            lang.pick("介质类型", "Model"),
            lang.pick("介质序列号", "Serial"),
            lang.pick("证书数", "Certs"),
            "PIN",
            lang.pick("驱动模块", "Module"),
        ]);
        for tok in &list.tokens {
            let n = list
                .certificates
                .iter()
                .filter(|c| c.token_id == tok.id)
                .count();
            t.row(vec![
                tok.id.clone(),
                tok.label.clone(),
                tok.manufacturer.clone(),
                tok.model.clone(),
                tok.serial.clone(),
                n.to_string(),
                pin_flags((&tok.pin).into(), lang),
                tok.module.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    out.push('\n');
    out.push_str(&format!(
        "{} ({})\n",
        lang.pick("证书", "Certificates"),
        list.certificates.len()
    ));
    if list.certificates.is_empty() {
        return out;
    }
    let mut t = Table::new(&[
        lang.pick("证书编号", "Certificate ID"),
        lang.pick("所有者", "Owner"),
        lang.pick("统一社会信用代码", "USCC"),
        lang.pick("序列号", "Serial"),
        lang.pick("颁发者", "Issuer"),
        lang.pick("有效期", "Validity"),
        lang.pick("剩余天数", "Days left"),
        lang.pick("状态", "Status"),
        lang.pick("用途", "Usage"),
        lang.pick("私钥", "Key"),
        lang.pick("密钥编号", "Token ID"),
    ]);
    for c in &list.certificates {
        let uscc = match (&c.ids.uscc, c.ids.uscc_valid) {
            (Some(u), Some(false)) => {
                format!("{u} {}", lang.pick("(校验位错误)", "(bad check digit)"))
            }
            (Some(u), _) => u.clone(),
            (None, _) => "-".into(),
        };
        t.row(vec![
            c.id.clone(),
            c.owner.clone().unwrap_or_else(|| c.label.clone()),
            uscc,
            opt(&c.serial),
            issuer_name(&c.issuer),
            if c.not_before.is_some() {
                format!("{} ~ {}", date(&c.not_before), date(&c.not_after))
            } else {
                "-".into()
            },
            c.days_left
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            status_name(&c.status, lang).to_string(),
            usages(&c.key_usage, lang),
            lang.pick(
                if c.has_private_key { "有" } else { "无" },
                if c.has_private_key { "yes" } else { "no" },
            )
            .to_string(),
            c.token_id.clone(),
        ]);
    }
    out.push_str(&t.render());
    for c in list.certificates.iter().filter(|c| c.error.is_some()) {
        out.push_str(&format!(
            "{}{} {}: {}\n",
            lang.pick("注：", "Note: "),
            c.id,
            lang.pick("无法解析", "cannot be read"),
            c.error.as_deref().unwrap_or_default()
        ));
    }
    out
}

/// `certray show`: every field, label and value, like the CA helper's certificate card.
pub fn certificate(c: &CertificateDto, token: Option<&TokenDto>, lang: Lang) -> String {
    let mut rows: Vec<(&str, String)> =
        vec![(lang.pick("证书编号", "Certificate ID"), c.id.clone())];
    let name = |n: &Option<NameDto>| {
        n.as_ref()
            .map(|n| n.dn.clone())
            .unwrap_or_else(|| "-".into())
    };
    let subject = c.subject.clone().unwrap_or_default();
    rows.extend([
        (lang.pick("所有者", "Owner"), opt(&c.owner)),
        (lang.pick("通用名", "Common name"), opt(&subject.cn)),
        (lang.pick("单位", "Organisation"), opt(&subject.o)),
        (lang.pick("部门", "Unit"), opt(&subject.ou)),
        (lang.pick("统一社会信用代码", "USCC"), opt(&c.ids.uscc)),
    ]);
    if let Some(v) = c.ids.uscc_valid {
        rows.push((
            lang.pick("校验位", "Check digit"),
            lang.pick(
                if v { "正确" } else { "错误" },
                if v { "correct" } else { "wrong" },
            )
            .into(),
        ));
    }
    for (zh, en, v) in [
        ("纳税人识别号", "Taxpayer ID", &c.ids.taxpayer_id),
        ("组织机构代码", "Organisation code", &c.ids.org_code),
        ("工商注册号", "Business reg. no.", &c.ids.business_reg_no),
        ("身份证号", "Personal ID", &c.ids.personal_id),
        ("BJCA 用户唯一标识", "BJCA unique ID", &c.ids.bjca_unique_id),
    ] {
        if v.is_some() {
            rows.push((lang.pick(zh, en), opt(v)));
        }
    }
    rows.extend([
        (lang.pick("主题", "Subject"), name(&c.subject)),
        (lang.pick("颁发者", "Issuer"), name(&c.issuer)),
        (lang.pick("序列号", "Serial"), opt(&c.serial)),
        (lang.pick("生效时间", "Not before"), opt(&c.not_before)),
        (lang.pick("失效时间", "Not after"), opt(&c.not_after)),
        (
            lang.pick("剩余天数", "Days left"),
            c.days_left
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            lang.pick("状态", "Status"),
            status_name(&c.status, lang).into(),
        ),
    ]);
    if let Some(k) = &c.key {
        let mut s = k.algorithm.to_uppercase();
        if let Some(b) = k.bits {
            s.push_str(&format!(" {b}"));
        }
        if let Some(cv) = &k.curve {
            s.push_str(&format!(" ({cv})"));
        }
        rows.push((lang.pick("公钥", "Public key"), s));
    }
    rows.push((
        lang.pick("签名算法", "Signature algorithm"),
        opt(&c.signature_algorithm),
    ));
    rows.push((
        lang.pick("密钥用法", "Key usage"),
        usages(&c.key_usage, lang),
    ));
    rows.push((
        lang.pick("扩展密钥用法", "Extended key usage"),
        usages(&c.extended_key_usage, lang),
    ));
    rows.push((
        lang.pick("私钥", "Private key"),
        lang.pick(
            if c.has_private_key { "有" } else { "无" },
            if c.has_private_key { "yes" } else { "no" },
        )
        .into(),
    ));
    rows.push(("SHA-256", c.sha256.clone()));
    rows.push((lang.pick("对象标签", "Object label"), c.label.clone()));
    if let Some(t) = token {
        rows.push((
            lang.pick("所在密钥", "Token"),
            format!("{} ({})", t.label, t.id),
        ));
        rows.push((
            lang.pick("介质类型", "Model"),
            format!("{} {}", t.manufacturer, t.model),
        ));
        rows.push((lang.pick("介质序列号", "Token serial"), t.serial.clone()));
        rows.push((
            lang.pick("签章图片", "Seal image"),
            lang.pick(
                if t.has_seal { "有" } else { "无" },
                if t.has_seal { "yes" } else { "no" },
            )
            .into(),
        ));
    }
    if let Some(e) = &c.error {
        rows.push((lang.pick("错误", "Error"), e.clone()));
    }
    let mut t = Table::new(&[lang.pick("项目", "Field"), lang.pick("内容", "Value")]);
    for (k, v) in rows {
        t.row(vec![k.to_string(), v]);
    }
    t.render()
}

/// One line per event for `certray watch`, time first.
pub fn event(e: &EventDto, lang: Lang) -> String {
    let now = time::OffsetDateTime::now_utc();
    let t = format!("{:02}:{:02}:{:02}Z", now.hour(), now.minute(), now.second());
    let body = match e {
        EventDto::ReaderAdded { reader } => {
            format!("{} {reader}", lang.pick("读卡器已连接", "reader added"))
        }
        EventDto::ReaderRemoved { reader } => {
            format!("{} {reader}", lang.pick("读卡器已断开", "reader removed"))
        }
        EventDto::CardInserted {
            reader,
            atr,
            card,
            hint,
        } => {
            let mut s = format!(
                "{} {reader} (ATR {atr})",
                lang.pick("卡片插入", "card inserted")
            );
            if let Some(c) = card {
                s.push_str(&format!(" {c}"));
            }
            if let Some(h) = hint {
                s.push_str(&format!(" — {h}"));
            }
            s
        }
        EventDto::CardRemoved { reader } => {
            format!("{} {reader}", lang.pick("卡片拔出", "card removed"))
        }
        EventDto::TokenAdded {
            token,
            certificates,
        } => {
            let mut s = format!(
                "{} {} {} ({} {}) · {} {}",
                lang.pick("密钥插入", "token added"),
                token.id,
                token.label,
                token.manufacturer,
                token.model,
                certificates.len(),
                lang.pick("张证书", "certificates")
            );
            for c in certificates {
                s.push_str(&format!(
                    "\n    {} {} · {} · {}",
                    c.id,
                    c.owner.clone().unwrap_or_else(|| c.label.clone()),
                    status_name(&c.status, lang),
                    c.days_left
                        .map(|d| format!(
                            "{}{d}{}",
                            lang.pick("剩余 ", ""),
                            lang.pick(" 天", " days left")
                        ))
                        .unwrap_or_else(|| "-".into()),
                ));
            }
            s
        }
        EventDto::TokenRemoved { token_id } => {
            format!("{} {token_id}", lang.pick("密钥拔出", "token removed"))
        }
        EventDto::CertificatesChanged {
            token_id,
            certificates,
        } => format!(
            "{} {token_id} · {} {}",
            lang.pick("证书变化", "certificates changed"),
            certificates.len(),
            lang.pick("张证书", "certificates")
        ),
        EventDto::PinStateChanged { token_id, pin } => {
            format!(
                "{} {token_id} · {}",
                lang.pick("PIN 状态变化", "PIN state changed"),
                pin_state_line(pin.into(), lang)
            )
        }
        EventDto::Resync { missed } => format!(
            "{} ({missed})",
            lang.pick("事件积压，重新同步", "fell behind, resynchronising")
        ),
    };
    format!("[{t}] {body}")
}
