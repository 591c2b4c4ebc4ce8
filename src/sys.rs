//! The few Linux calls switchyard makes directly: CPU affinity, locked-memory limits, the io_uring
//! switch, randomness, signal masks and a socket liveness probe. Each that can fail returns an
//! error that tells the operator what to do.

use std::io;

/// The CPUs this process may run on (so `taskset` and systemd `CPUAffinity=` are honoured).
pub fn affinity_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Pins the calling thread (and the threads it starts afterwards) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is out of range"),
        ));
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it (checked above).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (wall clock; 0 if the clock is before 1970).
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 64 random bits from the kernel (for node ids and request-id seeds; not on the request path).
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // getrandom(2) on 8 bytes does not fail short on Linux ≥ 3.17; fall back to the clock anyway.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ (std::process::id() as u64) << 32;
    }
    u64::from_ne_bytes(buf)
}

/// Makes sure `needed` bytes may be locked (glommio registers its io_uring rings and buffers).
///
/// Raises the soft limit, and the hard one when privileged; otherwise explains which `ulimit -l`
/// or systemd `LimitMEMLOCK=` is needed.
pub fn ensure_memlock(needed: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(format!(
            "cannot read the locked-memory limit: {}",
            io::Error::last_os_error()
        ));
    }
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= needed {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: needed,
        rlim_max: if lim.rlim_max == libc::RLIM_INFINITY {
            lim.rlim_max
        } else {
            lim.rlim_max.max(needed)
        },
    };
    // SAFETY: raised is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
        return Ok(());
    }
    let kib = needed.div_ceil(1024);
    Err(format!(
        "the locked-memory limit is {} KiB but switchyard needs {kib} KiB for its io_uring rings: \
         run `ulimit -l {kib}` (or `ulimit -l unlimited`) before starting it, or set \
         LimitMEMLOCK={kib}K in its systemd unit",
        lim.rlim_cur / 1024
    ))
}

/// Whether the peer of the connected socket `fd` has closed or reset it, asked of the kernel
/// directly: a non-blocking one-byte `MSG_PEEK` that consumes nothing. End of stream or a socket
/// error means closed; no data yet, or data waiting, means open.
///
/// The answer does not depend on when the executor reaps io_uring completions, which is why the
/// upstream pool asks it before reusing an idle connection.
pub fn peer_closed(fd: std::os::fd::RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv writes at most one byte into `byte`; an fd that is not a socket only yields an
    // error, which is reported as closed.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => !matches!(
            io::Error::last_os_error().kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}

/// Fails with an explanation when the kernel has io_uring switched off.
pub fn check_io_uring() -> Result<(), String> {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(v) if v.trim() != "0" => Err(format!(
            "io_uring is disabled on this kernel (kernel.io_uring_disabled = {}): switchyard's \
             executors need it; run `sysctl kernel.io_uring_disabled=0`",
            v.trim()
        )),
        // Absent on kernels before 6.6, which have io_uring enabled unless built without it;
        // that case is reported when the first executor starts.
        _ => Ok(()),
    }
}

/// The signals that stop the gateway (by draining): SIGTERM and SIGINT.
const TERMINATION_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// Signals whose default action would kill the process at once, in-flight requests and all, that
/// an operator or a tool sends a server out of habit: SIGHUP (nginx's reload, an ssh session's end),
/// SIGUSR1 and SIGUSR2 (log reopening in nginx and others). The gateway has nothing to reload or
/// reopen (its configuration is read at start, its log goes to stderr), so they are received and
/// logged, and it serves on.
const IGNORED_SIGNALS: [libc::c_int; 3] = [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

/// Every signal the gateway takes in its own hands: blocked in every thread, received by
/// [`wait_for_termination`].
fn handled_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset adds to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in TERMINATION_SIGNALS.iter().chain(&IGNORED_SIGNALS) {
            libc::sigaddset(&mut set, *sig);
        }
        set
    }
}

/// Blocks the handled signals (SIGTERM, SIGINT and the ignored ones) in the calling thread and in
/// every thread it starts afterwards, so that only [`wait_for_termination`] receives them.
pub fn block_handled_signals() {
    let set = handled_signals();
    // SAFETY: an initialised set; the old mask is not asked for (null).
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// A signal received: `Some` when it stops the gateway; an ignored one is logged.
fn received(sig: libc::c_int) -> Option<i32> {
    if TERMINATION_SIGNALS.contains(&sig) {
        return Some(sig);
    }
    tracing::warn!(
        signal = sig,
        "signal ignored: switchyard has nothing to reload or reopen (its options are read at start, its log goes to stderr); SIGTERM or SIGINT drains it"
    );
    None
}

/// Waits for SIGTERM or SIGINT (blocked beforehand by [`block_handled_signals`]), logging and
/// ignoring SIGHUP, SIGUSR1 and SIGUSR2 meanwhile.
pub fn wait_for_termination() -> i32 {
    let set = handled_signals();
    loop {
        let mut sig = 0;
        // SAFETY: an initialised set; sigwait writes the signal number into sig.
        let failed = unsafe { libc::sigwait(&set, &mut sig) } != 0;
        if let Some(sig) = (!failed).then(|| received(sig)).flatten() {
            return sig;
        }
    }
}

/// Waits up to `limit` for SIGTERM or SIGINT (blocked beforehand): the signal, or `None` if none
/// came (an ignored signal ends the wait early, logged, as `None`).
pub fn termination_within(limit: std::time::Duration) -> Option<i32> {
    let set = handled_signals();
    let timeout = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: an initialised set and timeout; no siginfo is asked for (null).
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
    (sig > 0).then(|| received(sig)).flatten()
}

#[cfg(test)]
mod tests {
    use super::peer_closed;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        (ours, theirs)
    }

    #[test]
    fn an_open_idle_connection_is_not_closed() {
        let (ours, _theirs) = pair();
        assert!(!peer_closed(ours.as_raw_fd()));
    }

    #[test]
    fn waiting_data_is_not_consumed_and_means_open() {
        let (ours, mut theirs) = pair();
        theirs.write_all(b"x").unwrap();
        // Blocking peek: the byte has arrived once it returns.
        ours.peek(&mut [0u8; 1]).unwrap();
        assert!(!peer_closed(ours.as_raw_fd()));
        assert!(!peer_closed(ours.as_raw_fd()), "the probe consumed nothing");
        let mut buf = [0u8; 1];
        (&ours).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"x");
    }

    #[test]
    fn a_closed_peer_is_seen() {
        let (ours, theirs) = pair();
        drop(theirs);
        ours.peek(&mut [0u8; 1]).unwrap();
        assert!(peer_closed(ours.as_raw_fd()));
    }

    #[test]
    fn a_reset_peer_is_seen() {
        let (ours, theirs) = pair();
        socket2::SockRef::from(&theirs)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(theirs);
        // A blocking peek returns once the reset has arrived (as an error, which it consumes: the
        // probe must still see a closed socket).
        let _ = ours.peek(&mut [0u8; 1]);
        assert!(peer_closed(ours.as_raw_fd()));
    }

    #[test]
    fn a_descriptor_that_is_not_a_socket_counts_as_closed() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(peer_closed(file.as_raw_fd()));
    }
}
