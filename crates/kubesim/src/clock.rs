//! Simulated time: every delay in the simulator (boot, container start, grace periods) is
//! expressed in simulated seconds and divided by the time scale, so a scenario that says
//! "nodes boot in 60 s" runs in 0.6 s at scale 100 while timestamps stay real wall-clock time.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    scale: f64,
}

impl Default for Clock {
    fn default() -> Self {
        Self { scale: 1.0 }
    }
}

impl Clock {
    /// `scale` > 1 runs faster than real time. Non-finite or non-positive values are rejected.
    pub fn new(scale: f64) -> Result<Self, String> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(format!("time scale must be a positive number, got {scale}"));
        }
        Ok(Self { scale })
    }
    pub fn scale(&self) -> f64 {
        self.scale
    }
    /// Real duration of a simulated one.
    pub fn real(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.scale)
    }
    /// Real duration of `secs` simulated seconds.
    pub fn real_secs(&self, secs: f64) -> Duration {
        self.real(Duration::from_secs_f64(secs.max(0.0)))
    }
    pub async fn sleep(&self, simulated: Duration) {
        tokio::time::sleep(self.real(simulated)).await
    }
    /// Wall-clock now, as Kubernetes renders timestamps (RFC 3339, second precision, `Z`).
    pub fn now_rfc3339() -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
    /// Wall-clock now + a simulated delay, rendered as a Kubernetes timestamp.
    pub fn rfc3339_after(&self, simulated: Duration) -> String {
        let real = chrono::Duration::from_std(self.real(simulated)).unwrap_or_default();
        (chrono::Utc::now() + real).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}
