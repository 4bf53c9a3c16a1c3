//! The pipe between the daemon and its dialog process: one JSON object per line each way,
//! over the child's stdin ([`Down`]) and stdout ([`Up`]).
//!
//! The daemon ([`super::process`]) starts `certray dialog-host` when a window is wanted,
//! sends it the inventory as it is ([`Down::State`], again after every change) and the
//! windows to open ([`Down::Open`]). The dialog process ([`super::child`]) asks for what
//! only the daemon can do ([`Up::Call`]: PIN commands, website approvals), answers the
//! bridge's prompts ([`Up::Answer`]) and says when its window has closed ([`Up::Idle`]).
//!
//! Both ends are the same binary, so this is a private protocol, not an interface: it may
//! change with any release. PINs cross as hex (no JSON escapes, hence no copy in the
//! parser's scratch space), and every buffer a line with a PIN passes through is zeroized:
//! [`write`] and [`LineReader`].

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::core;
use crate::core::{ConsentAnswer, PinAnswer, PinRequest};
use crate::i18n::Lang;
use crate::model::{CertEntry, CertId, IssuerCheck, Location, Reader, Snapshot, TokenId};
use crate::model::{CertObject, KeyPresence, Pin, PinState, Seal, Token};

use super::backend::Refusal;
use super::dialogs::{DialogRequest, PickThen};
use super::notify::Notice;

/// Daemon → dialog process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Down {
    /// What the dialogs show and need; first thing sent, then after every change.
    ///
    /// The whole state, not the inventory's events: it is read from the inventory when
    /// sent, so it is right whatever the process missed (started late, lagged, a language
    /// change), and sending it twice does no harm. Events are rare and the process lives
    /// only while a window is open; [`WireSnapshot::into_snapshot`] keeps it from parsing a
    /// certificate twice.
    State(Box<State>),
    /// Show a window. `seq` counts from 1; a prompt's answer comes back with it.
    Open { seq: u64, request: Request },
    /// The web request behind prompt `seq` went away: close its dialog.
    Gone { seq: u64 },
    /// The answer to [`Up::Call`] `id`.
    Result { id: u64, result: CallResult },
}

/// Dialog process → daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Up {
    Call {
        id: u64,
        call: Call,
    },
    /// The answer to the prompt opened as `seq`.
    Answer {
        seq: u64,
        answer: Answer,
    },
    Notify {
        notice: Notice,
    },
    /// The window closed after taking `received` requests in all. When that is every
    /// request sent, nothing is left to show and the daemon lets the process end.
    Idle {
        received: u64,
    },
    /// No window can be shown here (no display, no OpenGL); the process ends.
    Failed {
        error: String,
    },
}

/// The state the dialogs draw from.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub lang: Lang,
    pub warning_days: u32,
    /// The daemon's `--config`, for `certray doctor`.
    pub config_path: Option<PathBuf>,
    pub snapshot: WireSnapshot,
}

/// A [`DialogRequest`] without its answer channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    Card { cert_id: CertId },
    Details { cert_id: CertId },
    ChangePin { token_id: TokenId },
    Unlock { token_id: TokenId },
    Consent { origin: String },
    PagePinConsent { origin: String },
    Pin { request: PinRequest },
    Doctor,
    Origins,
    PickToken { then: PickThen },
}

impl Request {
    /// Split a request into what crosses the pipe and, for a prompt, its answer channel.
    pub fn split(request: DialogRequest) -> (Request, Option<Prompted>) {
        match request {
            DialogRequest::Card { cert_id } => (Request::Card { cert_id }, None),
            DialogRequest::Details { cert_id } => (Request::Details { cert_id }, None),
            DialogRequest::ChangePin { token_id } => (Request::ChangePin { token_id }, None),
            DialogRequest::Unlock { token_id } => (Request::Unlock { token_id }, None),
            DialogRequest::Consent { origin, reply } => {
                (Request::Consent { origin }, Some(Prompted::Consent(reply)))
            }
            DialogRequest::PagePinConsent { origin, reply } => (
                Request::PagePinConsent { origin },
                Some(Prompted::Consent(reply)),
            ),
            DialogRequest::Pin { request, reply } => {
                (Request::Pin { request }, Some(Prompted::Pin(reply)))
            }
            DialogRequest::Doctor => (Request::Doctor, None),
            DialogRequest::Origins => (Request::Origins, None),
            DialogRequest::PickToken { then } => (Request::PickToken { then }, None),
        }
    }
}

/// The answer channel of a prompt the daemon sent to the dialog process.
pub enum Prompted {
    Consent(super::dialogs::Reply<ConsentAnswer>),
    Pin(super::dialogs::Reply<PinAnswer>),
}

impl Prompted {
    pub fn waiting(&self) -> bool {
        match self {
            Prompted::Consent(r) => r.waiting(),
            Prompted::Pin(r) => r.waiting(),
        }
    }

    /// Pass the dialog's answer on. An answer of the wrong kind is a refusal.
    pub fn send(self, answer: Answer) {
        match (self, answer) {
            (Prompted::Consent(mut r), Answer::Consent { answer }) => r.send(answer),
            (Prompted::Consent(mut r), Answer::Unavailable) => r.send(ConsentAnswer::Unavailable),
            (Prompted::Consent(mut r), _) => r.send(ConsentAnswer::Deny),
            (Prompted::Pin(mut r), Answer::Pin { pin, remember }) => r.send(PinAnswer::Pin {
                pin: pin.0,
                remember,
            }),
            (Prompted::Pin(mut r), Answer::Unavailable) => r.send(PinAnswer::Unavailable),
            (Prompted::Pin(mut r), _) => r.send(PinAnswer::Cancelled),
        }
    }
}

/// What the dialog process asks the daemon to do.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    PinState {
        token_id: TokenId,
    },
    ChangePin {
        token_id: TokenId,
        old: WirePin,
        new: WirePin,
        force: bool,
    },
    Unlock {
        token_id: TokenId,
        so_pin: WirePin,
        new: WirePin,
        force: bool,
    },
    Origins,
    RevokeOrigin {
        origin: String,
    },
}

/// The daemon's answer to a [`Call`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Pin(Result<PinState, Refusal>),
    Origins {
        remembered: Vec<String>,
        session: Vec<String>,
    },
    Revoked(Result<bool, String>),
}

/// A prompt's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Consent { answer: ConsentAnswer },
    Pin { pin: WirePin, remember: bool },
    Cancelled,
    Unavailable,
}

impl From<PinAnswer> for Answer {
    fn from(a: PinAnswer) -> Answer {
        match a {
            PinAnswer::Pin { pin, remember } => Answer::Pin {
                pin: WirePin(pin),
                remember,
            },
            PinAnswer::Cancelled => Answer::Cancelled,
            PinAnswer::Unavailable => Answer::Unavailable,
        }
    }
}

/// A PIN on the pipe: hex of its UTF-8 bytes, every intermediate copy zeroized.
pub struct WirePin(pub Pin);

impl std::fmt::Debug for WirePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WirePin([REDACTED])")
    }
}

impl Serialize for WirePin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = Zeroizing::new(hex::encode(self.0.expose_secret().as_bytes()));
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for WirePin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WirePin, D::Error> {
        let hex = Zeroizing::new(String::deserialize(d)?);
        let bytes = Zeroizing::new(hex::decode(hex.as_bytes()).map_err(serde::de::Error::custom)?);
        let text = std::str::from_utf8(&bytes).map_err(serde::de::Error::custom)?;
        Ok(WirePin(Pin::from(text)))
    }
}

/// A [`Snapshot`] on the pipe. Certificates cross as DER and are parsed again on the other
/// side (`cert/` is pure: the same bytes give the same model).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireSnapshot {
    readers: Vec<WireReader>,
    tokens: Vec<WireToken>,
    certificates: Vec<WireCert>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireReader {
    name: String,
    #[serde(with = "b64_opt")]
    atr: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireToken {
    id: TokenId,
    label: String,
    manufacturer: String,
    model: String,
    serial: String,
    module: PathBuf,
    slot: u64,
    pin: PinState,
    so_pin: PinState,
    seal: Option<WireSeal>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireSeal {
    format: String,
    #[serde(with = "b64")]
    bytes: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireCert {
    token_id: TokenId,
    label: String,
    #[serde(with = "b64")]
    key_id: Vec<u8>,
    #[serde(with = "b64")]
    der: Vec<u8>,
    has_private_key: KeyPresence,
    /// The inventory's issuer check: it depends on what else is on the tokens and in the
    /// CA files, which the dialog process does not see.
    issuer: Option<IssuerCheck>,
}

/// The seal formats a token scan names.
const SEAL_FORMATS: [&str; 4] = ["png", "jpeg", "gif", "bmp"];

impl WireSnapshot {
    pub fn new(s: &Snapshot) -> WireSnapshot {
        WireSnapshot {
            readers: s
                .readers
                .iter()
                .map(|r| WireReader {
                    name: r.name.clone(),
                    atr: r.atr.clone(),
                })
                .collect(),
            tokens: s
                .tokens
                .iter()
                .map(|t| WireToken {
                    id: t.id.clone(),
                    label: t.label.clone(),
                    manufacturer: t.manufacturer.clone(),
                    model: t.model.clone(),
                    serial: t.serial.clone(),
                    module: t.location.library.clone(),
                    slot: t.location.slot,
                    pin: t.pin,
                    so_pin: t.so_pin,
                    seal: t.seal.as_ref().map(|s| WireSeal {
                        format: s.format.to_string(),
                        bytes: s.bytes.to_vec(),
                    }),
                })
                .collect(),
            certificates: s
                .certificates
                .iter()
                .map(|c| WireCert {
                    token_id: c.token_id.clone(),
                    label: c.label.clone(),
                    key_id: c.key_id.clone(),
                    der: c.der.clone(),
                    has_private_key: c.has_private_key,
                    issuer: c.issuer.clone(),
                })
                .collect(),
        }
    }

    /// The snapshot again. What `previous` already holds is reused: certificates are not
    /// parsed twice, and a seal keeps its `Arc` (so a card keeps its decoded image).
    pub fn into_snapshot(self, previous: &Snapshot) -> Snapshot {
        let tokens = self
            .tokens
            .into_iter()
            .map(|t| {
                let seal = t.seal.and_then(|s| {
                    let format = SEAL_FORMATS.into_iter().find(|f| *f == s.format)?;
                    let bytes = previous
                        .tokens
                        .iter()
                        .filter_map(|p| p.seal.as_ref())
                        .find(|p| *p.bytes == s.bytes)
                        .map_or_else(|| Arc::new(s.bytes), |p| p.bytes.clone());
                    Some(Seal { format, bytes })
                });
                Token {
                    id: t.id,
                    label: t.label,
                    manufacturer: t.manufacturer,
                    model: t.model,
                    serial: t.serial,
                    location: Location {
                        library: t.module,
                        slot: t.slot,
                    },
                    pin: t.pin,
                    so_pin: t.so_pin,
                    seal,
                }
            })
            .collect();
        let certificates = self
            .certificates
            .into_iter()
            .map(|c| {
                let same = previous.certificates.iter().find(|p| {
                    p.der == c.der
                        && p.token_id == c.token_id
                        && p.label == c.label
                        && p.key_id == c.key_id
                        && p.has_private_key == c.has_private_key
                });
                match same {
                    Some(p) => CertEntry {
                        issuer: c.issuer,
                        ..p.clone()
                    },
                    None => CertEntry {
                        issuer: c.issuer,
                        ..core::entry(CertObject {
                            token_id: c.token_id,
                            label: c.label,
                            key_id: c.key_id,
                            der: c.der,
                            has_private_key: c.has_private_key,
                        })
                    },
                }
            })
            .collect::<Vec<CertEntry>>();
        Snapshot {
            readers: self
                .readers
                .into_iter()
                .map(|r| Reader {
                    name: r.name,
                    atr: r.atr,
                })
                .collect(),
            tokens,
            certificates,
        }
    }
}

mod b64 {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

mod b64_opt {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::b64::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

/// Room for any line with a PIN in it without the buffer growing (growing leaves a copy
/// behind in freed memory).
const SMALL_LINE: usize = 4096;

/// Write one message as a line and flush it. The bytes are serialized into a buffer that
/// is zeroized afterwards.
pub fn write(w: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let mut buf = Zeroizing::new(Vec::with_capacity(SMALL_LINE));
    serde_json::to_writer(&mut *buf, message)?;
    buf.push(b'\n');
    w.write_all(&buf)?;
    w.flush()
}

/// Reads messages line by line straight from a pipe (no `BufReader`, whose buffer would
/// keep a PIN's bytes), zeroizing each line once it is parsed.
pub struct LineReader<R> {
    inner: R,
    buf: Zeroizing<Vec<u8>>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    /// `buf[start..scanned]` holds no newline: the next search starts at `scanned`, so a long
    /// line arriving in small reads is scanned once, not again after every read.
    scanned: usize,
    end: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: Zeroizing::new(vec![0; 64 * 1024]),
            start: 0,
            scanned: 0,
            end: 0,
        }
    }

    /// The next message; `None` at the end of the stream. A line that does not parse is an
    /// `InvalidData` error (the line is skipped: the next call reads the one after it).
    pub fn read<T: DeserializeOwned>(&mut self) -> io::Result<Option<T>> {
        loop {
            if let Some(i) = self.buf[self.scanned..self.end]
                .iter()
                .position(|b| *b == b'\n')
            {
                let line = self.start..self.scanned + i;
                let parsed = serde_json::from_slice(&self.buf[line.clone()]);
                self.buf[line.start..=line.end].zeroize();
                self.start = line.end + 1;
                self.scanned = self.start;
                return parsed
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.scanned = self.end;
            // Make room: move what is left to the front, or grow.
            if self.start > 0 {
                let len = self.end - self.start;
                self.buf.copy_within(self.start..self.end, 0);
                self.buf[len..self.end].zeroize();
                self.start = 0;
                self.scanned = len;
                self.end = len;
            }
            if self.end == self.buf.len() {
                let mut bigger = Zeroizing::new(vec![0; self.buf.len() * 2]);
                bigger[..self.end].copy_from_slice(&self.buf[..self.end]);
                // The old buffer is zeroized as it drops.
                self.buf = bigger;
            }
            let n = match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return if self.start == self.end {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
            self.end += n;
        }
    }

    /// Hand every message to `f` until the stream ends, reading fails, or `f` returns
    /// false. A line that does not parse is logged (`peer` says who sent it) and skipped.
    pub fn for_each<T: DeserializeOwned>(&mut self, peer: &str, mut f: impl FnMut(T) -> bool) {
        loop {
            match self.read::<T>() {
                Ok(Some(m)) => {
                    if !f(m) {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::warn!(error = %e, peer, "an unexpected message; skipped");
                }
                Err(e) => {
                    tracing::warn!(error = %e, peer, "lost the pipe");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes a few at a time, as a pipe may.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(3).min(self.0.len() - self.1);
            out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn messages_survive_the_pipe_whatever_the_read_sizes() {
        let mut bytes = Vec::new();
        let call = Up::Call {
            id: 7,
            call: Call::ChangePin {
                token_id: "t-1".into(),
                old: WirePin(Pin::from("12 \"34\"\\ü")),
                new: WirePin(Pin::from("新密码123456")),
                force: true,
            },
        };
        write(&mut bytes, &call).unwrap();
        // A line far longer than the reader's buffer, to make it grow.
        let big = Up::Failed {
            error: "x".repeat(200_000),
        };
        write(&mut bytes, &big).unwrap();
        write(&mut bytes, &Up::Idle { received: 3 }).unwrap();
        // The PIN is not in the line as typed.
        assert!(!String::from_utf8_lossy(&bytes).contains("新密码"));

        let mut r = LineReader::new(Trickle(bytes, 0));
        match r.read::<Up>().unwrap() {
            Some(Up::Call {
                id: 7,
                call:
                    Call::ChangePin {
                        token_id,
                        old,
                        new,
                        force: true,
                    },
            }) => {
                assert_eq!(token_id, "t-1");
                assert_eq!(old.0.expose_secret(), "12 \"34\"\\ü");
                assert_eq!(new.0.expose_secret(), "新密码123456");
            }
            other => panic!("not the call: {other:?}"),
        }
        match r.read::<Up>().unwrap() {
            Some(Up::Failed { error }) => assert_eq!(error.len(), 200_000),
            other => panic!("not the long line: {other:?}"),
        }
        assert!(matches!(
            r.read::<Up>().unwrap(),
            Some(Up::Idle { received: 3 })
        ));
        assert!(r.read::<Up>().unwrap().is_none());
    }

    /// A reader that hands out its bytes in chunks of the given sizes, in turn.
    struct Chunks {
        bytes: Vec<u8>,
        at: usize,
        sizes: &'static [usize],
        turn: usize,
    }

    impl Read for Chunks {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let want = self.sizes[self.turn % self.sizes.len()];
            self.turn += 1;
            let n = out.len().min(want).min(self.bytes.len() - self.at);
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn lines_cut_anywhere_come_back_whole_and_leave_nothing_behind() {
        // Calls with PINs between lines of growing length (up to a few times the buffer),
        // read a byte at a time, in odd sizes, and as much as fits.
        let mut bytes = Vec::new();
        for id in 0..24u64 {
            let old = format!("{:06}", 100_000 + id);
            let call = Up::Call {
                id,
                call: Call::ChangePin {
                    token_id: "t-1".into(),
                    old: WirePin(Pin::from(old.as_str())),
                    new: WirePin(Pin::from("246802")),
                    force: false,
                },
            };
            write(&mut bytes, &call).unwrap();
            let error = "y".repeat(id as usize * 9_973);
            write(&mut bytes, &Up::Failed { error }).unwrap();
        }
        let sizes: [&'static [usize]; 4] = [&[1], &[2, 5, 11, 4093], &[64 * 1024], &[usize::MAX]];
        for sizes in sizes {
            let mut r = LineReader::new(Chunks {
                bytes: bytes.clone(),
                at: 0,
                sizes,
                turn: 0,
            });
            for id in 0..24u64 {
                match r.read::<Up>().unwrap() {
                    Some(Up::Call {
                        id: got,
                        call: Call::ChangePin { old, .. },
                    }) => {
                        assert_eq!(got, id, "reads of {sizes:?}");
                        assert_eq!(old.0.expose_secret(), format!("{:06}", 100_000 + id));
                    }
                    other => panic!("not call {id} (reads of {sizes:?}): {other:?}"),
                }
                match r.read::<Up>().unwrap() {
                    Some(Up::Failed { error }) => {
                        assert_eq!(error.len(), id as usize * 9_973, "reads of {sizes:?}")
                    }
                    other => panic!("not line {id}'s long one (reads of {sizes:?}): {other:?}"),
                }
            }
            assert!(r.read::<Up>().unwrap().is_none());
            // Every line was wiped once parsed, and what moved was wiped where it was.
            assert!(
                r.buf.iter().all(|b| *b == 0),
                "bytes left in the buffer (reads of {sizes:?})"
            );
        }
    }

    #[test]
    fn a_line_that_does_not_parse_is_skipped_with_an_error() {
        let mut bytes = b"{\"type\":\"nonsense\"}\n".to_vec();
        write(&mut bytes, &Up::Idle { received: 1 }).unwrap();
        let mut r = LineReader::new(&bytes[..]);
        let e = r.read::<Up>().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            r.read::<Up>().unwrap(),
            Some(Up::Idle { received: 1 })
        ));
    }

    #[test]
    fn a_line_cut_off_by_the_end_of_the_stream_is_an_error() {
        let mut r = LineReader::new(&b"{\"type\":\"idle\""[..]);
        assert_eq!(
            r.read::<Up>().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn a_snapshot_comes_back_the_same_and_reuses_what_the_previous_one_had() {
        let der = include_bytes!("../../tests/fixtures/sample-sm2.der").to_vec();
        let mut snap = Snapshot::default();
        snap.readers.push(Reader {
            name: "Virtual PCD 00 00".into(),
            atr: Some(vec![0x3b, 0x80]),
        });
        snap.tokens.push(Token {
            id: "t-1".into(),
            label: "云杉".into(),
            manufacturer: "SoftHSM".into(),
            model: "SoftHSM v2".into(),
            serial: "1234".into(),
            location: crate::model::Location {
                library: "/usr/lib/softhsm/libsofthsm2.so".into(),
                slot: 3,
            },
            pin: PinState {
                min_len: 6,
                max_len: 16,
                initialized: true,
                count_low: true,
                ..PinState::default()
            },
            so_pin: PinState::default(),
            seal: Some(Seal {
                format: "png",
                bytes: Arc::new(vec![0x89, b'P', b'N', b'G']),
            }),
        });
        snap.certificates.push(core::entry(CertObject {
            token_id: "t-1".into(),
            label: "sign".into(),
            key_id: vec![1, 2],
            der,
            has_private_key: true.into(),
        }));
        // The issuer check crosses as the inventory made it (the dialog process cannot
        // redo it: it sees neither the other tokens nor the CA files).
        let checks = core::Trust::none().check_all(&snap.certificates);
        snap.certificates[0].issuer = checks[0].clone();
        assert!(snap.certificates[0].issuer.is_some());

        let line = serde_json::to_string(&WireSnapshot::new(&snap)).unwrap();
        let first: WireSnapshot = serde_json::from_str(&line).unwrap();
        let back = first.into_snapshot(&Snapshot::default());
        assert_eq!(back.tokens, snap.tokens);
        assert_eq!(back.readers.len(), 1);
        assert_eq!(back.readers[0].atr, snap.readers[0].atr);
        let (a, b) = (&back.certificates[0], &snap.certificates[0]);
        assert_eq!((&a.id, &a.sha256, &a.der), (&b.id, &b.sha256, &b.der));
        assert_eq!(a.issuer, b.issuer);
        assert_eq!(
            a.parsed.as_ref().unwrap().serial,
            b.parsed.as_ref().unwrap().serial
        );

        let again: WireSnapshot = serde_json::from_str(&line).unwrap();
        let again = again.into_snapshot(&back);
        let (s1, s2) = (
            back.tokens[0].seal.as_ref().unwrap(),
            again.tokens[0].seal.as_ref().unwrap(),
        );
        assert!(Arc::ptr_eq(&s1.bytes, &s2.bytes), "the seal was copied");
    }
}
