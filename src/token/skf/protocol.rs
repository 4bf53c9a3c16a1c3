//! The pipe between certray and a `certray skf-host` process: frames, requests, replies.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON (serde_json),
//! at most [`MAX_FRAME`]. The framing is these few lines of std I/O rather than a crate: the
//! host is a blocking program with no async runtime, and a codec crate would bring one.
//!
//! certray writes [`Request`]s with an id; the host answers each with one
//! [`HostFrame::Reply`] of the same id, in order, and pushes [`HostFrame::Event`]s (device
//! insert and remove) whenever they happen. PINs travel as [`WirePin`]: the frame buffers that
//! hold them are zeroized on both ends, and `Debug` shows no PIN.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::model::{Pin, PinState};

/// The largest frame either side accepts (a certificate list of a key with many containers
/// fits easily).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Write one frame; the JSON buffer is zeroized after (it may hold a PIN).
pub fn write_frame<T: Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    let body = Zeroizing::new(serde_json::to_vec(value).map_err(io::Error::other)?);
    if body.len() > MAX_FRAME {
        return Err(io::Error::other("frame too large"));
    }
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + body.len()));
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    out.write_all(&frame)?;
    out.flush()
}

/// Read one frame; `Ok(None)` at a clean end of the stream. The JSON buffer is zeroized
/// after parsing.
pub fn read_frame<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::other(format!(
            "frame of {len} bytes is too large"
        )));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    input.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(io::Error::other)
}

/// A PIN on the pipe. Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WirePin(String);

impl WirePin {
    pub fn new(pin: &Pin) -> WirePin {
        use secrecy::ExposeSecret;
        WirePin(pin.expose_secret().to_owned())
    }

    pub fn to_pin(&self) -> Pin {
        Pin::from(self.0.clone())
    }
}

impl Drop for WirePin {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for WirePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WirePin([REDACTED])")
    }
}

/// What to sign, already prepared on certray's side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SignData {
    /// `SKF_ECCSignData(e)`: e = SM3(Z‖M), 32 bytes.
    Sm2 { e: Vec<u8> },
    /// `SKF_RSASignData(DigestInfo‖hash)`.
    Rsa { digest_info: Vec<u8> },
}

/// How a signature is authorised (see [`crate::token::Auth`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SignAuth {
    Pin {
        pin: WirePin,
        force: bool,
        remember: bool,
    },
    Session,
}

/// A request to the host; device, application and container names are the library's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Every present device with its applications' PIN state and its certificates.
    Scan,
    /// The user PIN state of a device's application.
    PinState {
        device: Vec<u8>,
    },
    Sign {
        device: Vec<u8>,
        container: Vec<u8>,
        data: SignData,
        auth: SignAuth,
    },
    ChangePin {
        device: Vec<u8>,
        old: WirePin,
        new: WirePin,
        force: bool,
    },
    Unlock {
        device: Vec<u8>,
        admin: WirePin,
        new: WirePin,
        force: bool,
    },
    Logout {
        device: Vec<u8>,
    },
    /// Close every handle (kept logins end).
    Reset,
    /// Start the device-event thread (`SKF_WaitForDevEvent`). `false` in the reply: the
    /// library exports no events.
    Watch,
    /// Cancel the event wait and exit.
    Shutdown,
}

/// A certificate found in a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertFound {
    pub container: Vec<u8>,
    /// The signing certificate (else the encryption one).
    pub sign: bool,
    pub der: Vec<u8>,
}

/// A device as a scan found it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceFound {
    pub name: Vec<u8>,
    pub manufacturer: String,
    pub issuer: String,
    pub label: String,
    pub serial: String,
    /// The application whose PINs are the token's (the first holding containers).
    pub application: Option<Vec<u8>>,
    pub pin: PinState,
    pub admin_pin: PinState,
    pub certificates: Vec<CertFound>,
}

/// A successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    Devices(Vec<DeviceFound>),
    Pin(PinState),
    /// DER `SEQUENCE{r,s}` for SM2, PKCS#1 v1.5 bytes for RSA.
    Signature(Vec<u8>),
    Done,
    Watching(bool),
}

/// Why a request failed, as the host saw it.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum Failure {
    #[error("device not present")]
    DeviceRemoved,
    #[error("no container {0}")]
    NoContainer(String),
    #[error("PIN incorrect")]
    PinIncorrect(PinState),
    #[error("PIN locked")]
    PinLocked(PinState),
    #[error("PIN locked: not submitted")]
    RefusedLocked(PinState),
    #[error("final try: not submitted without confirmation")]
    RefusedFinalTry(PinState),
    #[error("PIN length {len} refused by the key")]
    PinLenRange { len: usize },
    #[error("not logged in and no PIN given")]
    PinRequired,
    #[error("{0}")]
    Unsupported(String),
    #[error("{function}: {rc}")]
    Sar { function: String, rc: String },
    #[error("{0}")]
    Other(String),
}

/// certray → host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    pub request: Request,
}

/// host → certray.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HostFrame {
    Reply {
        id: u64,
        result: Result<Answer, Failure>,
    },
    /// A device came (`inserted`) or went.
    Event { device: Vec<u8>, inserted: bool },
    /// The library cannot wait for events after all: poll it.
    EventsUnsupported,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        let req = RequestFrame {
            id: 7,
            request: Request::ChangePin {
                device: b"dev".to_vec(),
                old: WirePin("123456".into()),
                new: WirePin("654321".into()),
                force: false,
            },
        };
        write_frame(&mut buf, &req).unwrap();
        write_frame(
            &mut buf,
            &RequestFrame {
                id: 8,
                request: Request::Scan,
            },
        )
        .unwrap();
        let mut r = &buf[..];
        let a: RequestFrame = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(a.id, 7);
        assert!(!format!("{a:?}").contains("123456"));
        let b: RequestFrame = read_frame(&mut r).unwrap().unwrap();
        assert!(matches!(b.request, Request::Scan));
        assert!(read_frame::<RequestFrame>(&mut r).unwrap().is_none());
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let mut big = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        big.extend_from_slice(b"{}");
        assert!(read_frame::<Request>(&mut &big[..]).is_err());
        let mut short = 10u32.to_be_bytes().to_vec();
        short.extend_from_slice(b"{}");
        assert!(read_frame::<Request>(&mut &short[..]).is_err());
    }
}
