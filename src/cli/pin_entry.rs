//! Where PINs come from: the terminal without echo, or standard input one per line.

use std::io::BufRead;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::Failure;
use super::args::PinArgs;
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::{Pin, PinState};

/// Reads the PINs a command needs, in order.
pub struct PinSource {
    stdin: Option<std::io::Lines<std::io::StdinLock<'static>>>,
    lang: Lang,
}

impl PinSource {
    pub fn new(args: PinArgs, lang: Lang) -> PinSource {
        PinSource {
            stdin: args.pin_stdin.then(|| std::io::stdin().lock().lines()),
            lang,
        }
    }

    /// A person types at the terminal (not `--pin-stdin`).
    pub fn interactive(&self) -> bool {
        self.stdin.is_none()
    }

    pub fn read(&mut self, zh: &str, en: &str) -> Result<Pin, Failure> {
        let prompt = self.lang.pick(zh, en);
        // Wrapped at once: the String zeroizes with the SecretString.
        let mut text = Zeroizing::new(match &mut self.stdin {
            Some(lines) => match lines.next() {
                Some(Ok(line)) => line,
                Some(Err(e)) => return Err(Failure::new(Code::Io, e.to_string())),
                None => {
                    return Err(Failure::new(
                        Code::PinRequired,
                        format!("standard input ended before: {en}"),
                    ));
                }
            },
            None => rpassword::prompt_password(format!("{prompt}: ")).map_err(|e| {
                Failure::new(
                    Code::PinRequired,
                    format!("cannot read from the terminal: {e}"),
                )
            })?,
        });
        while text.ends_with(['\r', '\n']) {
            text.pop();
        }
        let pin = SecretString::from(std::mem::take(&mut *text));
        if pin.expose_secret().is_empty() {
            return Err(Failure::new(Code::PinRequired, "empty PIN"));
        }
        Ok(pin)
    }

    /// A new PIN, typed twice on the terminal (once from stdin).
    pub fn read_new(&mut self, state: PinState) -> Result<Pin, Failure> {
        let new = self.read("新密码", "New PIN")?;
        if let Err(e) = state.check_len(&new) {
            return Err(Failure {
                code: e.code(),
                detail: Some(state.range_text(self.lang)),
                pin: Some(state),
            });
        }
        if self.interactive() {
            let again = self.read("确认新密码", "Confirm the new PIN")?;
            crate::model::pin::confirm(&new, &again)
                .map_err(|e| Failure::new(e.code(), "the confirmation differs"))?;
        }
        Ok(new)
    }
}
