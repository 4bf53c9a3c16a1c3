//! The bridge asks: may this website use the certificates? 仅本次允许 / 始终允许 / 拒绝.
//! Or, for a CA helper's protocol (BJCA's XTX): may this website collect the key's PIN in
//! its own page, as the vendor's helper lets it?

use eframe::egui::{self, RichText, Ui, Vec2};

use crate::core::ConsentAnswer;
use crate::i18n::Lang;
use crate::text::APPROVED_WEBSITES;

use super::widgets::{Tone, body, footer, header, note, primary, secondary};
use super::{Cx, Dialog, Outcome, Reply, window_title};

/// How long after the dialog appears its buttons stay inert: a page that times a request
/// so that the dialog opens under a key or click the person meant for something else gets
/// nothing from it. (Wall-clock time: frames come only as input does.)
pub const ARM_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// The consent dialog. The answer is sent once; a dialog closed any other way denies. Its
/// default (focused) button is 拒绝, and no button works in the first [`ARM_DELAY`] after it
/// appears.
pub struct Consent {
    origin: String,
    reply: Reply<ConsentAnswer>,
    focused: bool,
    /// When it was first drawn.
    shown_at: Option<std::time::Instant>,
    /// The site will collect the PIN itself (BJCA's protocol), not certray's dialog.
    page_pin: bool,
}

impl Consent {
    pub fn new(origin: String, reply: impl Into<Reply<ConsentAnswer>>) -> Consent {
        Consent {
            origin,
            reply: reply.into(),
            focused: false,
            shown_at: None,
            page_pin: false,
        }
    }

    /// The dialog for a site that will collect the key's PIN in its own page.
    pub fn page_pin(origin: String, reply: impl Into<Reply<ConsentAnswer>>) -> Consent {
        Consent {
            page_pin: true,
            ..Consent::new(origin, reply)
        }
    }

    /// What allowing means, in words.
    fn explanation(&self, lang: Lang) -> &'static str {
        if self.page_pin {
            lang.pick(
                "该网站使用 BJCA 证书应用环境的接口：允许后，它可以读取 USB Key 中证书的公开信息，并在它自己的网页中收集您的证书密码（PIN），用该密码登录并签名，证书助手不再逐次询问。只有您信任、且要求在网页中输入证书密码的网上办事网站才应允许。",
                "The site uses BJCA's helper protocol: if allowed, it can read the public details of the certificates on your USB key and collect your key's PIN in its own page, then log in and sign with it without certray asking each time. Only allow e-government sites you trust that ask for the key's PIN in their page.",
            )
        } else {
            lang.pick(
                "允许后，该网站可以读取 USB Key 中证书的公开信息（持有者、单位、有效期等）并请求签名；每次签名仍需您在证书助手中输入密码确认。请只允许您信任的网上办事网站。",
                "If allowed, the site can read the public details of the certificates on your USB key (holder, organisation, validity) and ask for signatures; each signature still needs your PIN in certray. Only allow sites you trust.",
            )
        }
    }
}

/// Whether a page reaches the bridge without encryption from another machine's name: worth
/// a word of caution (a local page over http is normal).
fn plain_http(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            rest
        }
    });
    !(host == "localhost" || host.ends_with(".localhost") || host == "127.0.0.1" || host == "[::1]")
}

impl Dialog for Consent {
    fn title(&self, lang: Lang) -> String {
        window_title(lang.pick("网站授权", "Website access"), lang)
    }

    fn size(&self) -> Vec2 {
        Vec2::new(480.0, if self.page_pin { 340.0 } else { 300.0 })
    }

    fn ui(&mut self, ui: &mut Ui, cx: &mut Cx<'_>) -> Outcome {
        let lang = cx.lang;
        header(
            ui,
            "网",
            lang.pick(
                "网站请求使用您的证书",
                "A website asks to use your certificates",
            ),
            None,
            Tone::Warn,
        );
        let shown = *self.shown_at.get_or_insert_with(std::time::Instant::now);
        let armed = shown.elapsed() >= ARM_DELAY;
        if !armed {
            // Draw again when the buttons come alive.
            ui.ctx()
                .request_repaint_after(ARM_DELAY.saturating_sub(shown.elapsed()));
        }
        let mut answer = None;
        footer(ui, "consent-footer", |ui| {
            let once = ui.add_enabled(armed, primary(lang.pick("仅本次允许", "Allow this time")));
            if once.clicked() {
                answer = Some(ConsentAnswer::AllowOnce);
            }
            if ui
                .add_enabled(armed, secondary(lang.pick("始终允许", "Always allow")))
                .clicked()
            {
                answer = Some(ConsentAnswer::AllowAlways);
            }
            let deny = ui.add_enabled(armed, secondary(lang.pick("拒绝", "Deny")));
            if armed && !self.focused {
                // Enter answers with the default: deny. (Focused once armed: a disabled
                // button takes no focus.)
                deny.request_focus();
                self.focused = true;
            }
            if deny.clicked() {
                answer = Some(ConsentAnswer::Deny);
            }
        });
        body(ui, "consent-body", |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.spacing_mut().item_spacing.x = 4.0;
                ui.add(
                    egui::Label::new(RichText::new(&self.origin).strong().monospace().size(15.0))
                        .selectable(true),
                );
                let asks = if self.page_pin {
                    lang.pick(
                        "请求使用您的证书，并将在网页中收集证书密码",
                        "asks to use your certificates and will collect the key's PIN in its page",
                    )
                } else {
                    lang.pick("请求使用您的证书", "asks to use your certificates")
                };
                ui.label(RichText::new(asks).size(15.0));
            });
            ui.add_space(8.0);
            ui.label(self.explanation(lang));
            if plain_http(&self.origin) {
                ui.add_space(6.0);
                note(
                    ui,
                    Tone::Bad,
                    lang.pick(
                        "注意：该网站未使用加密连接（http），请确认网址无误。",
                        "Careful: this site does not use an encrypted connection (http); check the address.",
                    ),
                );
            }
            ui.add_space(6.0);
            let hint = match lang {
                Lang::ZhCn => format!(
                    "“始终允许”的网站可在托盘菜单“{}”中撤销。",
                    APPROVED_WEBSITES.zh
                ),
                Lang::En => format!(
                    "Sites you always allow can be revoked under “{}” in the tray menu.",
                    APPROVED_WEBSITES.en
                ),
            };
            ui.label(RichText::new(hint).color(ui.visuals().weak_text_color()));
        });
        match answer {
            Some(a) => {
                self.reply.send(a);
                Outcome::Close
            }
            None => Outcome::Open,
        }
    }

    fn cancel(&mut self) {
        self.reply.send(ConsentAnswer::Deny);
    }

    fn never_shown(&mut self) {
        self.reply.send(ConsentAnswer::Unavailable);
    }

    fn alive(&self) -> bool {
        self.reply.waiting()
    }

    fn urgent(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_other_hosts() {
        assert!(plain_http("http://etax.example"));
        assert!(plain_http("http://10.0.0.5:8080"));
        assert!(!plain_http("https://etax.example"));
        assert!(!plain_http("http://localhost:8123"));
        assert!(!plain_http("http://legacy.localhost:8124"));
        assert!(!plain_http("http://127.0.0.1:21088"));
        assert!(!plain_http("http://[::1]:21088"));
    }
}
