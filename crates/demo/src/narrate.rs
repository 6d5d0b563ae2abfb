//! The demo's voice: numbered steps, what happened in each, and how long each took, written to
//! whatever the caller gives (stdout for the binary, a buffer for a test).

use std::io::Write;
use std::time::{Duration, Instant};

/// Writes the steps in order.
pub struct Narrator<'a> {
    out: &'a mut dyn Write,
    step: u32,
    began: Instant,
}

impl<'a> Narrator<'a> {
    pub fn new(out: &'a mut dyn Write) -> Self {
        Self {
            out,
            step: 0,
            began: Instant::now(),
        }
    }

    /// Open the next numbered step.
    pub fn step(&mut self, title: &str) -> std::io::Result<()> {
        self.step += 1;
        writeln!(self.out, "\n{}. {title}", self.step)?;
        self.out.flush()
    }

    /// One indented line of the current step.
    pub fn say(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.out, "   {line}")?;
        self.out.flush()
    }

    /// Close the current step with its duration.
    pub fn took(&mut self, d: Duration) -> std::io::Result<()> {
        self.say(&format!("(took {})", secs(d)))
    }

    /// The raw output, for blocks the caller lays out itself.
    pub fn out(&mut self) -> &mut dyn Write {
        self.out
    }

    /// Time since the narration began.
    pub fn elapsed(&self) -> Duration {
        self.began.elapsed()
    }
}

/// A duration for people: `0.42 s`, `12.3 s`.
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}
