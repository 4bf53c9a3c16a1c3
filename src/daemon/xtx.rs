//! The BJCA-compatible listeners of `certray run` when `[xtx] enabled`: plain on `listen`,
//! TLS on `tls_listen`, both over the daemon's core. The TLS trust is installed on the first
//! start and kept current on every start after ([`Trust::install`] is idempotent). Nothing
//! here stops the daemon: a port held by another program (a vendor helper on 21051 is
//! common) or a trust that cannot be installed leaves that listener out, with a warning.

use std::sync::Arc;

use crate::bridge::xtx::trust::{self, InstallOptions, Trust};
use crate::bridge::xtx::{self as protocol, XtxState};
use crate::config::Config;
use crate::core::Signing;

/// The XTX listeners of a running daemon.
pub struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What to tell the person: the URLs served.
    pub urls: Vec<String>,
}

impl Running {
    /// Stop serving and wait (briefly) for the listeners to finish.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), t).await;
        }
    }
}

/// Start the listeners when `[xtx] enabled` (`None` when off, or when neither could start).
/// Addresses off loopback are refused (`Err`, a configuration error).
pub async fn start(config: &Config, signing: Arc<Signing>) -> Result<Option<Running>, String> {
    let x = &config.xtx;
    if !x.enabled {
        return Ok(None);
    }
    for addr in [x.listen, x.tls_listen] {
        crate::bridge::check_listen(addr).map_err(|e| e.replace("[bridge]", "[xtx]"))?;
    }
    let bind = |addr: std::net::SocketAddr| async move {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                    "in use by another program (a vendor's helper?)".to_string()
                } else {
                    e.to_string()
                };
                tracing::warn!(%addr, "[xtx]: cannot listen: {why}; the BJCA-compatible endpoint is off there");
                None
            }
        }
    };
    let plain = bind(x.listen).await;
    let tls = match tokio::task::spawn_blocking(tls_acceptor).await {
        Ok(Ok(acceptor)) => bind(x.tls_listen).await.map(|l| (l, acceptor)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "[xtx]: no TLS listener (wss, https) without a trusted certificate");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "[xtx]: installing the TLS trust failed");
            None
        }
    };
    if plain.is_none() && tls.is_none() {
        return Ok(None);
    }
    let state = XtxState::start(signing);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut urls = Vec::new();
    let mut spawn = |listener: tokio::net::TcpListener,
                     acceptor: Option<tokio_rustls::TlsAcceptor>| {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        urls.push(match acceptor {
            Some(_) => format!("wss://127.0.0.1:{port}/xtxapp/"),
            None => format!("ws://127.0.0.1:{port}/xtxapp/"),
        });
        let mut stopped = stopped.clone();
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = protocol::serve(listener, acceptor, state, shutdown).await {
                tracing::warn!(error = %e, "xtx: listener stopped");
            }
        }));
    };
    if let Some(listener) = plain {
        spawn(listener, None);
    }
    if let Some((listener, acceptor)) = tls {
        spawn(listener, Some(acceptor));
    }
    Ok(Some(Running { stop, tasks, urls }))
}

/// Install (first start) or keep current the TLS trust, and load the server identity.
fn tls_acceptor() -> Result<tokio_rustls::TlsAcceptor, trust::Error> {
    let trust = Trust::for_current_user()?;
    if let Err(e) = trust.install(InstallOptions::default()) {
        // The identity may still be there (a store could not be written): serve with it.
        tracing::warn!(error = %e, "xtx: cannot install the TLS trust");
        return trust.tls_acceptor().map_err(|_| e);
    }
    trust.tls_acceptor()
}
