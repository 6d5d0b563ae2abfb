//! Child processes the bed and its tests start (moto, `cargo lambda watch`) die with the
//! process that started them, even when it is killed without unwinding (a test timeout's
//! SIGKILL): nothing is left running.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Make `cmd`'s child receive SIGKILL when this process dies (Linux `PR_SET_PDEATHSIG`).
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
