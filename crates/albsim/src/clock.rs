//! Simulated time: every interval, delay and timeout in the configuration is in simulated
//! seconds, and runs `scale` times faster in real time, so tests can use AWS's own numbers.

use std::time::Duration;

/// Converts simulated durations to real ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Simulated seconds per real second; 1 is real time.
    scale: f64,
}

impl Default for Clock {
    fn default() -> Self {
        Self { scale: 1.0 }
    }
}

impl Clock {
    /// A clock running `scale` simulated seconds per real second; a non-positive or
    /// non-finite scale is taken as 1.
    pub fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Self { scale }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The real duration of `simulated`.
    pub fn real(&self, simulated: Duration) -> Duration {
        Duration::from_secs_f64(simulated.as_secs_f64() / self.scale)
    }

    /// The real duration of `seconds` simulated seconds.
    pub fn secs(&self, seconds: u64) -> Duration {
        self.real(Duration::from_secs(seconds))
    }
}
