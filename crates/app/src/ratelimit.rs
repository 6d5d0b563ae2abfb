//! A client-side token bucket, like client-go's QPS/burst, so a drain of hundreds of pods does
//! not trip the API server's priority-and-fairness limits.

use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Mutex;

pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `qps` ≤ 0 disables limiting.
    pub fn new(qps: f32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: f64::from(qps),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Wait for a token.
    pub async fn acquire(&self) {
        if self.qps <= 0.0 {
            return;
        }
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let (tokens, last) = *s;
            let tokens =
                (tokens + now.duration_since(last).as_secs_f64() * self.qps).min(self.burst) - 1.0;
            *s = (tokens, now);
            // A negative balance is this caller's place in the queue.
            if tokens < 0.0 {
                Duration::from_secs_f64(-tokens / self.qps)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_burst_is_free_and_the_rest_is_paced_at_qps() {
        let l = RateLimiter::new(10.0, 5);
        let t0 = tokio::time::Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(t0.elapsed() < Duration::from_millis(1));
        for _ in 0..10 {
            l.acquire().await;
        }
        let e = t0.elapsed();
        assert!(
            e >= Duration::from_millis(950) && e <= Duration::from_millis(1100),
            "{e:?}"
        );
    }
}
