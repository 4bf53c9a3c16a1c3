//! The key-backend seam: what the core needs from a kind of key library, whatever its API.
//!
//! A [`Backend`] serves the tokens of one library: a PKCS#11 module
//! ([`super::pkcs11::ModuleHandle`]) or, later, a GM/T 0016 SKF library in a host process. It
//! speaks the domain's types only (`model`): tokens by [`TokenId`], keys by their key id
//! bytes (the bytes [`CertObject::key_id`](crate::model::CertObject) carries: a CKA_ID, an SKF
//! container name…), [`HashAlg`], [`SignInput`], [`Signature`], [`PinState`], [`Pin`]. Slots,
//! sessions, mechanisms and handles stay inside the backend.
//!
//! Every call is a request to a backend's worker thread (hardware calls block, and they never
//! run on an async thread). A call returns a [`Pending`] reply at once; the caller then either
//! blocks on it ([`Pending::wait`]) or awaits it (`.await`, [`IntoFuture`]). Nothing is sent
//! before one of the two: a `Pending` dropped untouched asks nothing of the token, and a
//! blocking caller can first lend its CPU to the worker that will answer (see
//! `pkcs11::affinity`).
//!
//! *Contract for implementations*: a PIN in a request is always checked by the token (a
//! login kept from before is ended first, never reused for a request that carries a PIN); the
//! PIN rules ([`PinState::admit`], [`PinState::check_len`]) are applied to the state read
//! right before every PIN submission, which happens at most once per request; a token seen
//! before and absent now gives [`Error::TokenRemoved`], a token never seen
//! [`Error::TokenNotFound`]; a request for one token never waits behind a signature on
//! another.

use std::any::Any;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::path::Path;
use std::pin::Pin as StdPin;
use std::task::{Context, Poll};

use super::Error;
use crate::model::{HashAlg, Pin, PinState, SignInput, Signature, TokenId, TokenScan};

/// How a signature request is authorised.
#[derive(Debug)]
pub enum Auth {
    /// Log in with this PIN for this request. `force` confirms a final try; `remember`
    /// keeps the login for later [`Auth::Session`] requests.
    Pin {
        pin: Pin,
        force: bool,
        remember: bool,
    },
    /// Use the login kept from an earlier request; `PIN_REQUIRED` when there is none.
    Session,
}

/// A request to sign with the private key whose key id is `key_id`. For an SM2 key `hash`
/// is always SM3 and `input` follows [`SignInput`]'s SM2 contract (`Data`: the message M,
/// the backend computes e = SM3(Z ‖ M), e.g. with [`crate::cert::sm2_e`]; `Digest`: e). The
/// signature comes back as DER (`SEQUENCE { r, s }` for EC and SM2); the core verifies it
/// with the certificate's key before it goes anywhere.
#[derive(Debug)]
pub struct SignRequest {
    pub token_id: TokenId,
    pub key_id: Vec<u8>,
    pub hash: HashAlg,
    pub input: SignInput,
    pub auth: Auth,
}

/// What a backend's device watcher reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A token or device came, went or changed: scan again.
    Changed,
    /// The library turned out unable to report events after all: poll it instead. Reported
    /// at most once, and nothing follows it.
    Unsupported,
}

/// The seam between the core and a kind of key library. Object-safe: the core holds
/// `Arc<dyn Backend>`s.
pub trait Backend: Send + Sync + fmt::Debug {
    /// The library this backend loaded; tokens it serves carry it in
    /// [`Location::library`](crate::model::Location).
    fn library(&self) -> &Path;

    /// Every initialised token with its certificate objects (read without a PIN; a kept
    /// login may let private ones show too).
    fn scan(&self) -> Pending<Vec<TokenScan>>;

    /// Sign with a key of a token. See [`SignRequest`] and [`Auth`].
    fn sign(&self, request: SignRequest) -> Pending<Signature>;

    /// The token's user PIN state, read fresh from the token.
    fn pin_state(&self, token: &TokenId) -> Pending<PinState>;

    /// Change the user PIN: `old` is submitted once, `force` confirms a final try. Answers
    /// the PIN state afterwards.
    fn change_pin(&self, token: &TokenId, old: Pin, new: Pin, force: bool) -> Pending<PinState>;

    /// Unlock with the admin PIN (SO PIN, unlock code) and set a new user PIN. Answers the
    /// user PIN state afterwards.
    fn unlock(&self, token: &TokenId, so_pin: Pin, new: Pin, force: bool) -> Pending<PinState>;

    /// End a login kept by [`Auth::Pin`] with `remember`. A token without one: nothing to do.
    fn logout(&self, token: &TokenId) -> Pending<()>;

    /// Start the library afresh between two requests, so that it sees tokens that appeared
    /// since (some libraries only look at start-up). Kept logins end.
    fn reinitialize(&self) -> Pending<()>;

    /// Report device events to `on_event` from a thread of the backend's own, until the
    /// backend stops. `false`: the library cannot report them; poll it with [`Backend::scan`].
    fn watch(&self, on_event: Box<dyn FnMut(DeviceEvent) + Send>) -> bool;
}

/// How the caller of a [`Pending`] waits for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The calling thread blocks until the answer ([`Pending::wait`]).
    Blocking,
    /// The calling task awaits it; its thread goes on with other tasks meanwhile.
    Async,
}

/// A request handed to its worker: where the answer comes from, and anything the caller's
/// thread must hold until it has come (dropped on that thread right after the answer).
pub struct Sent<T> {
    pub reply: oneshot::Receiver<Result<T, Error>>,
    pub hold: Option<Box<dyn Any>>,
}

impl<T> Sent<T> {
    /// Nothing to hold.
    pub fn reply(reply: oneshot::Receiver<Result<T, Error>>) -> Sent<T> {
        Sent { reply, hold: None }
    }
}

type SendFn<T> = Box<dyn FnOnce(Waiting) -> Result<Sent<T>, Error> + Send>;

/// The answer to a backend request, to be waited for ([`Pending::wait`]) or awaited. The
/// request leaves when one of them starts; dropped before, it is never sent.
#[must_use = "a request is sent only when it is waited for or awaited"]
pub struct Pending<T> {
    state: State<T>,
}

enum State<T> {
    /// Known without asking a worker (e.g. refused before any hardware call).
    Ready(Result<T, Error>),
    /// Not sent yet.
    Unsent(SendFn<T>),
}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            State::Ready(_) => "Pending(ready)",
            State::Unsent(_) => "Pending(unsent)",
        })
    }
}

impl<T> Pending<T> {
    /// A request that `send` hands to its worker once the caller says how it waits.
    pub fn new(send: impl FnOnce(Waiting) -> Result<Sent<T>, Error> + Send + 'static) -> Self {
        Pending {
            state: State::Unsent(Box::new(send)),
        }
    }

    /// An answer known already.
    pub fn ready(result: Result<T, Error>) -> Self {
        Pending {
            state: State::Ready(result),
        }
    }

    /// Send the request and block this thread until the answer.
    pub fn wait(self) -> Result<T, Error> {
        match self.state {
            State::Ready(r) => r,
            State::Unsent(send) => {
                let Sent { reply, hold } = send(Waiting::Blocking)?;
                let answer = reply.recv().map_err(|_| Error::WorkerGone)?;
                drop(hold);
                answer
            }
        }
    }
}

impl<T> IntoFuture for Pending<T> {
    type Output = Result<T, Error>;
    type IntoFuture = PendingFuture<T>;

    fn into_future(self) -> PendingFuture<T> {
        PendingFuture {
            state: match self.state {
                State::Ready(r) => Fut::Ready(Some(r)),
                State::Unsent(send) => Fut::Unsent(Some(send)),
            },
        }
    }
}

/// A [`Pending`] being awaited: sends the request when first polled.
#[must_use = "futures do nothing unless polled"]
pub struct PendingFuture<T> {
    state: Fut<T>,
}

enum Fut<T> {
    Ready(Option<Result<T, Error>>),
    Unsent(Option<SendFn<T>>),
    Sent(oneshot::AsyncReceiver<Result<T, Error>>),
}

// Nothing in it is ever pinned in place: it is polled through `&mut`.
impl<T> Unpin for PendingFuture<T> {}

impl<T> Future for PendingFuture<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: StdPin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                Fut::Ready(r) => {
                    return Poll::Ready(r.take().unwrap_or(Err(Error::WorkerGone)));
                }
                Fut::Unsent(send) => {
                    let Some(send) = send.take() else {
                        return Poll::Ready(Err(Error::WorkerGone));
                    };
                    this.state = match send(Waiting::Async) {
                        // Nothing is held for an awaiting caller: its thread moves on.
                        Ok(sent) => Fut::Sent(sent.reply.into_future()),
                        Err(e) => Fut::Ready(Some(Err(e))),
                    };
                }
                Fut::Sent(rx) => {
                    return StdPin::new(rx)
                        .poll(cx)
                        .map(|r| r.unwrap_or(Err(Error::WorkerGone)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A request answered by a thread, counting how often it was sent.
    fn echo(sent: Arc<AtomicUsize>, value: u32) -> Pending<u32> {
        Pending::new(move |_| {
            sent.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = oneshot::channel();
            std::thread::spawn(move || tx.send(Ok(value)));
            Ok(Sent::reply(rx))
        })
    }

    #[test]
    fn a_pending_request_leaves_only_when_waited_for_or_awaited() {
        let sent = Arc::new(AtomicUsize::new(0));
        drop(echo(sent.clone(), 1));
        assert_eq!(sent.load(Ordering::SeqCst), 0);
        assert_eq!(echo(sent.clone(), 2).wait().unwrap(), 2);
        assert_eq!(sent.load(Ordering::SeqCst), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(async { echo(sent.clone(), 3).await }).unwrap(),
            3
        );
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        assert!(matches!(
            rt.block_on(async { Pending::<u32>::ready(Err(Error::PinRequired)).await }),
            Err(Error::PinRequired)
        ));
    }

    #[test]
    fn a_worker_that_drops_the_request_answers_worker_gone() {
        let gone = || {
            Pending::<u32>::new(|_| {
                let (tx, rx) = oneshot::channel();
                drop(tx);
                Ok(Sent::reply(rx))
            })
        };
        assert!(matches!(gone().wait(), Err(Error::WorkerGone)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(
            rt.block_on(async { gone().await }),
            Err(Error::WorkerGone)
        ));
    }
}
