//! What the bridge's handlers share: the core's use cases, and what only HTTP needs (the
//! `Host` values and own origins the guard checks, limits, the list cache, shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::guard::Gate;
use super::limits::Limits;
use crate::config::BridgeConfig;
use crate::core::{Approvals, Live, Prompt, Signing};
use crate::model::Snapshot;

/// 16 MiB for data to sign, 64 KiB for everything else.
pub const SIGN_BODY_LIMIT: usize = 16 * 1024 * 1024;
pub const BODY_LIMIT: usize = 64 * 1024;
/// Event streams open at once.
pub const EVENT_STREAMS: usize = 32;
/// Event streams one website may hold (its tabs): the others keep theirs.
pub const EVENT_STREAMS_PER_SITE: usize = 8;
/// Keep-alive comment interval for event streams.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How to build the bridge.
pub struct BridgeOptions {
    pub config: BridgeConfig,
    /// The port actually listened on (the configured one, or the one the OS chose for 0).
    pub port: u16,
    pub warning_days: u32,
}

/// Everything the handlers share.
pub struct BridgeState {
    pub signing: Arc<Signing>,
    pub config: BridgeConfig,
    pub warning_days: u32,
    /// What the guard checks requests against.
    pub gate: Arc<Gate>,
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Event streams open per website.
    pub site_streams: Arc<Mutex<HashMap<String, usize>>>,
    /// The request limits every route shares.
    pub limits: Arc<Limits>,
    pub list_cache: ListCache,
    /// Set when the server begins to stop: event streams end then.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl BridgeState {
    pub fn new(signing: Arc<Signing>, o: BridgeOptions) -> Arc<BridgeState> {
        BridgeState::with_limits(signing, o, Limits::default())
    }

    /// [`BridgeState::new`] with other request limits (tests).
    pub fn with_limits(
        signing: Arc<Signing>,
        o: BridgeOptions,
        limits: Limits,
    ) -> Arc<BridgeState> {
        Arc::new(BridgeState {
            gate: Arc::new(Gate::new(o.port, true, signing.clone())),
            signing,
            config: o.config,
            warning_days: o.warning_days,
            event_streams: Arc::new(tokio::sync::Semaphore::new(EVENT_STREAMS)),
            site_streams: Arc::default(),
            limits: Arc::new(limits),
            stopping: tokio::sync::watch::Sender::new(false),
            list_cache: ListCache::default(),
        })
    }

    pub fn live(&self) -> &Arc<Live> {
        self.signing.live()
    }

    pub fn approvals(&self) -> &Arc<Approvals> {
        self.signing.approvals()
    }

    pub fn prompt(&self) -> &Arc<dyn Prompt> {
        self.signing.prompt()
    }

    /// The bridge's own origin (the check page's), e.g. `http://127.0.0.1:21088`.
    pub fn own_origin(&self) -> String {
        self.gate.own_origin().unwrap_or_default()
    }
}

/// The serialized unfiltered certificate list, reused while the inventory has not changed
/// and for at most a second (days left and status move with the clock). Portals poll this
/// list; building it each time is most of what such a request costs.
#[derive(Default)]
pub struct ListCache {
    entry: Mutex<Option<(Arc<Snapshot>, std::time::Instant, axum::body::Bytes)>>,
}

impl ListCache {
    const FRESH: Duration = Duration::from_secs(1);

    pub fn get(&self, snapshot: &Arc<Snapshot>) -> Option<axum::body::Bytes> {
        let entry = self.entry.lock().unwrap_or_else(|e| e.into_inner());
        match &*entry {
            Some((s, at, body)) if Arc::ptr_eq(s, snapshot) && at.elapsed() < Self::FRESH => {
                Some(body.clone())
            }
            _ => None,
        }
    }

    pub fn put(&self, snapshot: Arc<Snapshot>, body: axum::body::Bytes) {
        *self.entry.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((snapshot, std::time::Instant::now(), body));
    }
}
