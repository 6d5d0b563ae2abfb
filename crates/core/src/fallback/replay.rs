//! The keeper's replay of queued writes, decided: when (only once traffic is fully restored:
//! no traffic-shift lease left under [`crate::record::SHIFT_PK`]), in which order (per path in
//! sequence; paths take turns, so one busy path does not starve the others), at what pace
//! (`COSTOP_REPLAY_RATE` per second, so the recovering service is not flooded), and what each
//! answer means for the write.
//!
//! Paths are replayed side by side ([`replay_lanes`], at most [`REPLAY_PATHS_AT_ONCE`] at a
//! time), each one write at a time, and the rate counts the writes started, not the round trips:
//! a service that takes 80 ms a write still gets `COSTOP_REPLAY_RATE` per second, not twelve.
//!
//! A replay the service answered with anything but a "try again" is done, whatever the status:
//! 2xx applied it, 3xx/4xx are the service's final word on it (stored with the receipt for the
//! client to read). "Try again" is no answer at all, a 5xx, 408 (Request Timeout), 425 (Too
//! Early) or 429 (Too Many Requests): the write is retried on a later pass, and after
//! `COSTOP_REPLAY_MAX_ATTEMPTS` tries it is dead-lettered — kept, reported, never dropped. While a
//! path's first write is failing, the writes after it on that path wait (their order matters);
//! once it is dead-lettered they go on.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::record::QueuedWrite;

/// The longest one tick replays before it leaves the rest for the next tick (the keeper runs
/// every minute).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(40);

/// Paths replayed at the same time at most (each path one write at a time): bounds the
/// connections the keeper opens to the service; the rate bounds the requests.
pub const REPLAY_PATHS_AT_ONCE: usize = 32;

/// Only once no traffic shift is active (`shift_leases` items under `SHIFT`).
pub fn traffic_restored(shift_leases: usize) -> bool {
    shift_leases == 0
}

/// The writes to try this pass, as indexes into `writes` (sorted by path and sequence, as
/// [`super::record::writes_from_items`] returns them): round robin over the paths, each path in
/// sequence, at most `max`.
pub fn replay_order(writes: &[QueuedWrite], max: usize) -> Vec<usize> {
    let mut by_path: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        by_path.entry(&w.path).or_default().push(i);
    }
    for v in by_path.values_mut() {
        v.sort_by_key(|&i| writes[i].seq);
    }
    let mut out = Vec::new();
    let mut round = 0;
    while out.len() < max {
        let mut any = false;
        for v in by_path.values() {
            if let Some(&i) = v.get(round) {
                any = true;
                if out.len() < max {
                    out.push(i);
                }
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    out
}

/// The writes of `order` (from [`replay_order`]) split per path, each lane in the order's
/// sequence, the lanes in the order their paths first appear.
pub fn replay_lanes(writes: &[QueuedWrite], order: &[usize]) -> Vec<Vec<usize>> {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in order {
        let lane = *lane_of.entry(&writes[i].path).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(i);
    }
    lanes
}

/// The pause between two replays at `rate` per second.
pub fn replay_interval(rate: f32) -> Duration {
    if rate.is_finite() && rate > 0.0 {
        Duration::from_secs_f64(1.0 / f64::from(rate))
    } else {
        REPLAY_WINDOW
    }
}

/// How many writes one tick may replay at `rate` per second within `window`.
pub fn replay_budget(rate: f32, window: Duration) -> usize {
    let n = f64::from(rate.max(0.0)) * window.as_secs_f64();
    (n.floor() as usize).max(1)
}

/// What becomes of a write after a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fate")]
pub enum ReplayFate {
    /// The service answered for good: settle the receipt with `status`.
    Replayed {
        /// The service's status.
        status: u16,
    },
    /// Try again on a later pass; the path waits behind it.
    Retry {
        /// Tries so far.
        attempts: u32,
        /// Why.
        error: String,
    },
    /// Out of tries: dead-letter, report.
    DeadLetter {
        /// Tries made.
        attempts: u32,
        /// The last status, if the service answered.
        status: Option<u16>,
        /// Why.
        error: String,
    },
}

/// Whether a replay's status means "try again later".
pub fn is_retry_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500..=599)
}

/// The fate of a write tried `attempts_before` times, after this try's `answer` (a status, or
/// why there was none), with `max_attempts` allowed.
pub fn replay_fate(
    answer: Result<u16, String>,
    attempts_before: u32,
    max_attempts: u32,
) -> ReplayFate {
    let attempts = attempts_before.saturating_add(1);
    let (status, error) = match answer {
        Ok(status) if !is_retry_status(status) => return ReplayFate::Replayed { status },
        Ok(status) => (Some(status), format!("HTTP {status}")),
        Err(why) => (None, why),
    };
    if attempts >= max_attempts {
        ReplayFate::DeadLetter {
            attempts,
            status,
            error,
        }
    } else {
        ReplayFate::Retry { attempts, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(path: &str, seq: u64) -> QueuedWrite {
        QueuedWrite {
            receipt_id: format!("{path}{seq}"),
            path: path.into(),
            seq,
            method: "POST".into(),
            query: None,
            headers: vec![],
            body: vec![],
            idempotency_key: "k".into(),
            client_key: false,
            queued_at: chrono::DateTime::UNIX_EPOCH,
            attempts: 0,
            last_error: None,
            depth_shard: 0,
        }
    }

    #[test]
    fn paths_take_turns_each_in_sequence_up_to_the_budget() {
        let writes = vec![
            w("/a", 1),
            w("/a", 5),
            w("/a", 9),
            w("/b", 2),
            w("/c", 1),
            w("/c", 3),
        ];
        let ids = |order: Vec<usize>| -> Vec<String> {
            order
                .into_iter()
                .map(|i| writes[i].receipt_id.clone())
                .collect()
        };
        for (max, want) in [
            (100, vec!["/a1", "/b2", "/c1", "/a5", "/c3", "/a9"]),
            (4, vec!["/a1", "/b2", "/c1", "/a5"]),
            (1, vec!["/a1"]),
            (0, vec![]),
        ] {
            assert_eq!(ids(replay_order(&writes, max)), want, "{max}");
        }
        assert!(replay_order(&[], 10).is_empty());
    }

    #[test]
    fn lanes_keep_each_paths_sequence_and_the_order_in_which_paths_first_come() {
        let writes = vec![w("/b", 1), w("/a", 2), w("/a", 1), w("/b", 2), w("/c", 1)];
        let order = replay_order(&writes, 10);
        let lanes = replay_lanes(&writes, &order);
        let named: Vec<Vec<(&str, u64)>> = lanes
            .iter()
            .map(|l| {
                l.iter()
                    .map(|&i| (writes[i].path.as_str(), writes[i].seq))
                    .collect()
            })
            .collect();
        assert_eq!(
            named,
            vec![
                vec![("/a", 1), ("/a", 2)],
                vec![("/b", 1), ("/b", 2)],
                vec![("/c", 1)],
            ]
        );
        assert!(replay_lanes(&writes, &[]).is_empty());
        // A budget that cuts a path short leaves its lane short, never out of sequence.
        let lanes = replay_lanes(&writes, &replay_order(&writes, 4));
        assert_eq!(
            lanes.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 1, 1]
        );
    }

    #[test]
    fn the_pace_follows_the_rate() {
        assert_eq!(replay_interval(4.0), Duration::from_millis(250));
        assert_eq!(replay_interval(0.5), Duration::from_secs(2));
        assert_eq!(replay_budget(5.0, REPLAY_WINDOW), 200);
        assert_eq!(replay_budget(0.01, Duration::from_secs(1)), 1);
    }

    #[test]
    fn final_answers_settle_try_again_answers_retry_until_the_last_attempt() {
        for (answer, before, max, want) in [
            (Ok(201), 0, 3, ReplayFate::Replayed { status: 201 }),
            (Ok(409), 2, 3, ReplayFate::Replayed { status: 409 }),
            (Ok(302), 0, 3, ReplayFate::Replayed { status: 302 }),
            (
                Ok(503),
                0,
                3,
                ReplayFate::Retry {
                    attempts: 1,
                    error: "HTTP 503".into(),
                },
            ),
            (
                Ok(429),
                1,
                3,
                ReplayFate::Retry {
                    attempts: 2,
                    error: "HTTP 429".into(),
                },
            ),
            (
                Ok(500),
                2,
                3,
                ReplayFate::DeadLetter {
                    attempts: 3,
                    status: Some(500),
                    error: "HTTP 500".into(),
                },
            ),
            (
                Err("connection refused".into()),
                0,
                1,
                ReplayFate::DeadLetter {
                    attempts: 1,
                    status: None,
                    error: "connection refused".into(),
                },
            ),
        ] {
            assert_eq!(replay_fate(answer.clone(), before, max), want, "{answer:?}");
        }
    }

    #[test]
    fn replay_waits_while_any_shift_is_active() {
        assert!(traffic_restored(0));
        assert!(!traffic_restored(1));
    }
}
