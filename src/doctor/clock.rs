//! The clock the certificates are judged by.

use serde_json::json;
use time::OffsetDateTime;

use super::hardware::Found;
use super::{Check, Status, rfc3339};
use crate::i18n::Lang;

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
}
