//! The bridge asks: may this website use the certificates? 仅本次允许 / 始终允许 / 拒绝.

use eframe::egui::{self, RichText, Ui, Vec2};

use crate::bridge::ConsentAnswer;
use crate::i18n::Lang;

use super::widgets::{Tone, body, footer, header, note, primary, secondary};
use super::{Cx, Dialog, Outcome, Reply, window_title};

/// The consent dialog. The answer is sent once; a dialog closed any other way denies.
pub struct Consent {
    origin: String,
    reply: Reply<ConsentAnswer>,
    focused: bool,
}

impl Consent {
    pub fn new(origin: String, reply: impl Into<Reply<ConsentAnswer>>) -> Consent {
        Consent {
            origin,
            reply: reply.into(),
            focused: false,
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
        Vec2::new(480.0, 300.0)
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
        let mut answer = None;
        footer(ui, "consent-footer", |ui| {
            let once = ui.add(primary(lang.pick("仅本次允许", "Allow this time")));
            if !self.focused {
                // Enter answers with the default: allow until certray stops.
                once.request_focus();
                self.focused = true;
            }
            if once.clicked() {
                answer = Some(ConsentAnswer::AllowOnce);
            }
            if ui
                .add(secondary(lang.pick("始终允许", "Always allow")))
                .clicked()
            {
                answer = Some(ConsentAnswer::AllowAlways);
            }
            if ui.add(secondary(lang.pick("拒绝", "Deny"))).clicked() {
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
                ui.label(
                    RichText::new(lang.pick("请求使用您的证书", "asks to use your certificates"))
                        .size(15.0),
                );
            });
            ui.add_space(8.0);
            ui.label(lang.pick(
                "允许后，该网站可以读取 USB Key 中证书的公开信息（持有者、单位、有效期等）并请求签名；每次签名仍需您在证书助手中输入密码确认。请只允许您信任的网上办事网站。",
                "If allowed, the site can read the public details of the certificates on your USB key (holder, organisation, validity) and ask for signatures; each signature still needs your PIN in certray. Only allow sites you trust.",
            ));
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
            ui.label(
                RichText::new(lang.pick(
                    "“始终允许”的网站可在托盘菜单“已授权网站”中撤销。",
                    "Sites you always allow can be revoked under “Authorised websites” in the tray menu.",
                ))
                .color(ui.visuals().weak_text_color()),
            );
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
