//! Watch streams: a chunked response of newline-delimited `{"type": ..., "object": ...}`
//! events, as client-go and kube-rs read them.
//!
//! Semantics follow the real server's watch cache: no `resourceVersion` (or `0`) starts with
//! synthetic ADDED events for the current state; a resourceVersion resumes after it (410 Gone
//! as an ERROR event when the history no longer reaches back that far, or when the watcher
//! falls behind); `sendInitialEvents=true` streams the current state and then a BOOKMARK
//! annotated `k8s.io/initial-events-end`; `allowWatchBookmarks` adds periodic BOOKMARKs;
//! `timeoutSeconds` ends the stream. With selectors, an object that stops matching is reported
//! as DELETED and one that starts matching as ADDED. Tables (for `kubectl get -w`) carry the
//! column definitions in the first event only, as the real server does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::time::{Instant, Interval};

use super::Output;
use super::query::Query;
use super::table::{self, Include};
use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::store::{EventType, ListOptions, Store, WatchEvent, meta_str};

/// Default lifetime of a watch without `timeoutSeconds` (the real server picks 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// At most this many queued events go into one chunk.
const BATCH: usize = 256;

/// How events are rendered.
#[derive(Debug, Clone, Copy)]
enum Render {
    Json,
    Metadata,
    Table {
        api_version: &'static str,
        include: Include,
        columns_sent: bool,
    },
}

struct Watch {
    rx: broadcast::Receiver<WatchEvent>,
    r: &'static ResourceDef,
    ns: Option<String>,
    opts: ListOptions,
    name: Option<String>,
    /// Keys the client currently holds, tracked only when a selector filters events.
    seen: Option<HashSet<(String, String)>>,
    render: Render,
    deadline: Instant,
    bookmarks: Option<Interval>,
    /// The newest resourceVersion this stream has accounted for (for BOOKMARKs).
    last_rv: u64,
    first: Option<Bytes>,
    done: bool,
}

fn key_of(obj: &Value) -> (String, String) {
    (
        meta_str(obj, "namespace").unwrap_or("").to_string(),
        meta_str(obj, "name").unwrap_or("").to_string(),
    )
}

/// Serve a watch of `r` in `ns` (all namespaces when `None`), optionally of one object `name`.
pub fn serve(
    store: &Arc<Store>,
    r: &'static ResourceDef,
    ns: Option<String>,
    name: Option<String>,
    q: &Query,
    output: Output,
) -> Result<Response, ApiError> {
    let opts = q.list_options(r)?;
    let rv = q.resource_version()?;
    let bookmarks_allowed = q.flag("allowWatchBookmarks")?;
    let initial_events = q.bool("sendInitialEvents")?;
    let timeout = match q.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        _ => DEFAULT_TIMEOUT,
    };
    let render = match output {
        Output::Table { api_version } => Render::Table {
            api_version,
            include: q.include_object()?,
            columns_sent: false,
        },
        Output::Metadata => Render::Metadata,
        _ => Render::Json,
    };
    let filtered = !opts.label.as_ref().is_none_or(|l| l.is_empty())
        || !opts.field.as_ref().is_none_or(|f| f.is_empty())
        || name.is_some();
    let from = if initial_events == Some(true) {
        None
    } else {
        rv.filter(|rv| *rv > 0)
    };

    let mut w = Watch {
        rx: store.subscribe(),
        r,
        ns: ns.clone(),
        opts,
        name,
        seen: None,
        render,
        deadline: Instant::now() + timeout,
        bookmarks: bookmarks_allowed.then(|| {
            let mut i = tokio::time::interval_at(Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        }),
        last_rv: 0,
        first: None,
        done: false,
    };
    let mut chunk = Vec::new();
    // A lower bound of the version the watch starts at (bookmarks must never run ahead of
    // what the stream has delivered).
    let rv_before = store.current_rv();
    match store.watch(r, ns.as_deref(), from, &w.opts) {
        Ok((backlog, rx)) => {
            w.rx = rx;
            w.last_rv = from.unwrap_or(rv_before);
            if filtered {
                // For a resumed watch, the client is assumed to hold what matches now.
                let current = if from.is_some() {
                    store.list(r, ns.as_deref(), &w.opts).0
                } else {
                    Vec::new()
                };
                w.seen = Some(
                    current
                        .iter()
                        .filter(|o| w.name_matches(o))
                        .map(key_of)
                        .collect(),
                );
            }
            let synthetic = from.is_none();
            for ev in backlog {
                if synthetic {
                    // The store stamps synthetic events with the watch's starting version.
                    w.last_rv = w.last_rv.max(ev.rv);
                }
                w.push(&ev, &mut chunk);
            }
            if initial_events == Some(true) && bookmarks_allowed {
                w.push_bookmark(&mut chunk, true);
            }
        }
        Err(e) if e.code == 410 => {
            push_event(&mut chunk, "ERROR", &e.to_status());
            w.done = true;
        }
        Err(e) => return Err(e),
    }
    if !chunk.is_empty() {
        w.first = Some(Bytes::from(chunk));
    }
    let stream = futures::stream::unfold(w, |mut w| async move {
        let chunk = w.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), w))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(format!("building watch response: {e}")))
}

fn push_event(buf: &mut Vec<u8>, ty: &str, object: &Value) {
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(ty.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    // Serializing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, object);
    buf.extend_from_slice(b"}\n");
}

impl Watch {
    fn name_matches(&self, obj: &Value) -> bool {
        self.name
            .as_deref()
            .is_none_or(|n| meta_str(obj, "name") == Some(n))
    }

    /// Append `ev` if this watch reports it, translating selector transitions.
    fn push(&mut self, ev: &WatchEvent, buf: &mut Vec<u8>) {
        if ev.resource.group != self.r.group || ev.resource.plural != self.r.plural {
            return;
        }
        if let Some(ns) = &self.ns
            && self.r.namespaced
            && ev.namespace() != Some(ns.as_str())
        {
            return;
        }
        let obj = &ev.object;
        let matches = self.name_matches(obj) && self.opts.matches(obj);
        let ty = match &mut self.seen {
            None if !matches => return,
            None => ev.kind,
            Some(seen) => {
                let key = key_of(obj);
                match (ev.kind, matches, seen.contains(&key)) {
                    (EventType::Deleted, _, true) => {
                        seen.remove(&key);
                        EventType::Deleted
                    }
                    (EventType::Deleted, m, false) => {
                        if !m {
                            return;
                        }
                        EventType::Deleted
                    }
                    (_, true, was) => {
                        seen.insert(key);
                        if was { ev.kind } else { EventType::Added }
                    }
                    (_, false, true) => {
                        seen.remove(&key);
                        EventType::Deleted
                    }
                    (_, false, false) => return,
                }
            }
        };
        let ty = match ty {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        };
        match &mut self.render {
            Render::Json => push_event(buf, ty, obj),
            Render::Metadata => push_event(buf, ty, &table::partial_metadata(obj)),
            Render::Table {
                api_version,
                include,
                columns_sent,
            } => {
                let rv = meta_str(obj, "resourceVersion").map(str::to_string);
                let t = table::render(
                    self.r,
                    api_version,
                    [obj.as_ref()],
                    rv,
                    *include,
                    !*columns_sent,
                );
                *columns_sent = true;
                push_event(buf, ty, &t);
            }
        }
    }

    fn push_bookmark(&self, buf: &mut Vec<u8>, initial_end: bool) {
        if matches!(self.render, Render::Table { .. }) {
            return;
        }
        let mut meta = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (api_version, kind) = match self.render {
            Render::Metadata => ("meta.k8s.io/v1".to_string(), "PartialObjectMetadata"),
            _ => (self.r.api_version(), self.r.kind),
        };
        push_event(
            buf,
            "BOOKMARK",
            &json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
        );
    }

    fn lagged(&mut self) -> Bytes {
        self.done = true;
        let mut buf = Vec::new();
        push_event(&mut buf, "ERROR", &ApiError::gone(self.last_rv).to_status());
        Bytes::from(buf)
    }

    /// The next chunk to send, or `None` when the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.done {
            return None;
        }
        loop {
            enum Wake {
                Timeout,
                Bookmark,
                Event(Result<WatchEvent, broadcast::error::RecvError>),
            }
            let bookmarks = &mut self.bookmarks;
            let tick = async move {
                match bookmarks {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => Wake::Timeout,
                _ = tick => Wake::Bookmark,
                ev = self.rx.recv() => Wake::Event(ev),
            };
            let ev = match wake {
                Wake::Timeout => {
                    self.done = true;
                    return None;
                }
                Wake::Bookmark => {
                    let mut buf = Vec::new();
                    self.push_bookmark(&mut buf, false);
                    if buf.is_empty() {
                        continue;
                    }
                    return Some(Bytes::from(buf));
                }
                Wake::Event(ev) => ev,
            };
            let mut buf = Vec::new();
            match ev {
                Ok(ev) => {
                    self.last_rv = self.last_rv.max(ev.rv);
                    self.push(&ev, &mut buf);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(self.lagged()),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
            // Drain what is already queued into the same chunk.
            for _ in 0..BATCH {
                match self.rx.try_recv() {
                    Ok(ev) => {
                        self.last_rv = self.last_rv.max(ev.rv);
                        self.push(&ev, &mut buf);
                    }
                    Err(TryRecvError::Lagged(_)) => {
                        let tail = self.lagged();
                        buf.extend_from_slice(&tail);
                        return Some(Bytes::from(buf));
                    }
                    Err(_) => break,
                }
            }
            if !buf.is_empty() {
                return Some(Bytes::from(buf));
            }
        }
    }
}
