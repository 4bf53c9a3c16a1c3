//! What the protocol remembers between calls: per connection (a WebSocket, or one origin's
//! `/synctl` calls) the sign method and the last error; and the logins.
//!
//! A login is what `SOF_Login` leaves behind: the PIN the page sent (as a [`Pin`], wiped
//! when the login ends), bound to the connection it came on and to the page's origin, for
//! one key pair. Signatures on that connection use it, each one through the core (and so
//! audited). It ends on `SOF_Logout`, when the connection closes, when its key is removed,
//! and after [`IDLE`] without use; its token (answered with the login) is a random name
//! for it that no other connection or origin can use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::errors::Fail;
use crate::core::Requester;
use crate::i18n::Lang;
use crate::model::{Pin, TokenId};

/// A login unused this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(10 * 60);

/// `SGD_SHA1_RSA`: what RSA signatures use until a page sets another method.
pub const SGD_SHA1_RSA: u32 = 0x0001_0002;
pub const SGD_SHA256_RSA: u32 = 0x0001_0004;
pub const SGD_SM3_RSA: u32 = 0x0001_0001;
pub const SGD_SM3_SM2: u32 = 0x0002_0201;

/// Which connection a call came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A WebSocket, by its number.
    Socket(u64),
    /// The origin's `/synctl` calls (synchronous XHR has no connection of its own).
    Sync,
}

/// One connection's state.
#[derive(Debug)]
pub struct Session {
    pub who: Requester,
    pub channel: Channel,
    pub lang: Lang,
    /// `SOF_SetSignMethod`'s value (`SGD_*`).
    pub sign_method: u32,
    /// `SOF_SetEncryptMethod`'s value, only kept and answered.
    pub encrypt_method: u32,
    /// The last call's error (`None`: it succeeded).
    pub last_error: Option<Fail>,
}

impl Session {
    pub fn new(who: Requester, channel: Channel, lang: Lang) -> Session {
        Session {
            who,
            channel,
            lang,
            sign_method: SGD_SHA1_RSA,
            encrypt_method: 0,
            last_error: None,
        }
    }
}

/// A login: a key pair unlocked for one connection of one origin.
#[derive(Debug)]
pub struct Login {
    pub origin: String,
    pub channel: Channel,
    /// The CertID it was made for.
    pub cert_id: String,
    pub token_id: TokenId,
    pub pin: Pin,
    last_used: Instant,
}

/// Every login, by token.
#[derive(Debug, Default)]
pub struct Logins {
    inner: Mutex<HashMap<String, Login>>,
}

impl Logins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Login>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep a login for `session` and `cert_id` (replacing an earlier one of the same
    /// connection for the same key pair); its token.
    pub fn add(&self, session: &Session, cert_id: &str, token_id: TokenId, pin: Pin) -> String {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        let token = hex::encode(bytes);
        let origin = session.who.name().to_string();
        let mut logins = self.lock();
        logins.retain(|_, l| {
            !(l.channel == session.channel && l.origin == origin && l.cert_id == cert_id)
        });
        logins.insert(
            token.clone(),
            Login {
                origin,
                channel: session.channel,
                cert_id: cert_id.to_string(),
                token_id,
                pin,
                last_used: Instant::now(),
            },
        );
        token
    }

    /// The PIN of the login `session` may use for `cert_id`: one made on this very
    /// connection by this origin (a `/synctl` caller must name it by its token), not idle
    /// for [`IDLE`]. Using it keeps it alive.
    pub fn pin_for(&self, session: &Session, cert_id: &str, token: Option<&str>) -> Option<Pin> {
        self.pin_for_at(session, cert_id, token, Instant::now())
    }

    fn pin_for_at(
        &self,
        session: &Session,
        cert_id: &str,
        token: Option<&str>,
        now: Instant,
    ) -> Option<Pin> {
        let origin = session.who.name();
        let mut logins = self.lock();
        let matches = |l: &Login| {
            l.channel == session.channel
                && l.origin == origin
                && l.cert_id == cert_id
                && now.saturating_duration_since(l.last_used) < IDLE
        };
        let login = match (session.channel, token) {
            (Channel::Sync, Some(t)) => logins.get_mut(t).filter(|l| matches(l)),
            (Channel::Sync, None) => None,
            (Channel::Socket(_), _) => logins.values_mut().find(|l| matches(l)),
        }?;
        login.last_used = now;
        Some(login.pin.clone())
    }

    /// The CertID of the latest login `session` may use.
    pub fn last_cert_id(&self, session: &Session) -> Option<String> {
        let origin = session.who.name();
        self.lock()
            .values()
            .filter(|l| l.channel == session.channel && l.origin == origin)
            .max_by_key(|l| l.last_used)
            .map(|l| l.cert_id.clone())
    }

    /// End the logins of `session` for `cert_id`; whether there was one.
    pub fn remove(&self, session: &Session, cert_id: &str) -> bool {
        let origin = session.who.name();
        let mut logins = self.lock();
        let before = logins.len();
        logins.retain(|_, l| {
            !(l.channel == session.channel && l.origin == origin && l.cert_id == cert_id)
        });
        logins.len() != before
    }

    /// A connection closed: its logins end.
    pub fn end_channel(&self, channel: Channel) {
        self.lock().retain(|_, l| l.channel != channel);
    }

    /// A key went away: its logins end.
    pub fn end_token(&self, token_id: &TokenId) {
        self.lock().retain(|_, l| &l.token_id != token_id);
    }

    /// Keep only the logins of these keys (the others were removed).
    pub fn retain_tokens(&self, present: &[TokenId]) {
        self.lock().retain(|_, l| present.contains(&l.token_id));
    }

    /// Forget logins idle for [`IDLE`] (their PINs are wiped as they drop).
    pub fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    fn sweep_at(&self, now: Instant) {
        self.lock()
            .retain(|_, l| now.saturating_duration_since(l.last_used) < IDLE);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn site(o: &str, channel: Channel) -> Session {
        Session::new(Requester::Website(o.into()), channel, Lang::ZhCn)
    }

    #[test]
    fn a_login_is_its_connections_and_origins_only() {
        let logins = Logins::default();
        let a = site("https://a.example", Channel::Socket(1));
        let t = logins.add(&a, "c/s", TokenId::new("t-1"), Pin::from("123456"));
        assert_eq!(t.len(), 48);
        assert_eq!(
            logins.pin_for(&a, "c/s", None).unwrap().expose_secret(),
            "123456"
        );
        assert!(logins.pin_for(&a, "other/s", None).is_none());
        // Another connection of the same origin, even with the token: no.
        let b = site("https://a.example", Channel::Socket(2));
        assert!(logins.pin_for(&b, "c/s", Some(&t)).is_none());
        // The origin's /synctl calls with the socket's token: no.
        let sync = site("https://a.example", Channel::Sync);
        assert!(logins.pin_for(&sync, "c/s", Some(&t)).is_none());
        // Another origin on the same socket number: no.
        assert!(
            logins
                .pin_for(&site("https://b.example", Channel::Socket(1)), "c/s", None)
                .is_none()
        );
        logins.end_channel(Channel::Socket(1));
        assert_eq!(logins.len(), 0);
    }

    #[test]
    fn sync_logins_need_their_token_and_idle_ones_are_forgotten() {
        let logins = Logins::default();
        let s = site("https://a.example", Channel::Sync);
        let t = logins.add(&s, "c/s", TokenId::new("t-1"), Pin::from("1"));
        assert!(logins.pin_for(&s, "c/s", None).is_none());
        assert!(logins.pin_for(&s, "c/s", Some("nope")).is_none());
        let now = Instant::now();
        assert!(logins.pin_for_at(&s, "c/s", Some(&t), now).is_some());
        let later = now + IDLE + Duration::from_secs(1);
        assert!(logins.pin_for_at(&s, "c/s", Some(&t), later).is_none());
        logins.sweep_at(later);
        assert_eq!(logins.len(), 0);
        logins.add(&s, "c/s", TokenId::new("t-1"), Pin::from("1"));
        logins.end_token(&TokenId::new("t-1"));
        assert_eq!(logins.len(), 0);
        logins.add(&s, "c/s", TokenId::new("t-1"), Pin::from("1"));
        assert!(logins.remove(&s, "c/s") && !logins.remove(&s, "c/s"));
    }
}
