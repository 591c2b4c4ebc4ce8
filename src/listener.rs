//! The client listener: every shard binds the same address with SO_REUSEPORT, so the kernel spreads
//! new connections over the shards and no accept queue is shared between cores.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length asked of the kernel, which caps it at `net.core.somaxconn` (4096 by
/// default; tuning/sysctl.conf raises it to this): deep enough to absorb a reconnect storm from
/// HAProxy. Asking for no more than the default made the sysctl a no-op.
const LISTEN_BACKLOG: i32 = 65535;

/// Fails with a clear message when `addr` is taken by anything, even another SO_REUSEPORT socket:
/// binding without SO_REUSEPORT first finds a gateway already there ([`check_alone`] finds one
/// that bound at the same instant).
pub fn check_available(addr: SocketAddr) -> Result<(), String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(format!(
            "cannot listen on {addr}: the address is already in use (is another switchyard or server running there?)"
        )),
        Err(e) => Err(format!("cannot listen on {addr}: {e}")),
    }
}

/// Fails when `addr` has more listening sockets than this process's `ours`: another process
/// bound it with SO_REUSEPORT between [`check_available`] and the shards' own binds (two gateways
/// started at the same instant), and would take a share of the connections. Each such gateway
/// sees the other's sockets once its own are bound, so at most one of them goes on serving.
pub fn check_alone(addr: SocketAddr, ours: usize) -> Result<(), String> {
    let table = if addr.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).map_err(|e| format!("cannot read {table}: {e}"))?;
    let listening = text.lines().filter(|l| listens_on(l, addr)).count();
    if listening > ours {
        return Err(format!(
            "cannot listen on {addr}: another process listens there too (SO_REUSEPORT); is another switchyard running?"
        ));
    }
    Ok(())
}

/// Whether a line of `/proc/net/tcp` or `/proc/net/tcp6` is a socket listening on `addr`. Its
/// local address is the kernel's in-memory address in hex, 32 bits at a time in host (little-
/// endian) order, then `:` and the port in hex.
fn listens_on(line: &str, addr: SocketAddr) -> bool {
    /// `st` of a listening socket.
    const TCP_LISTEN: &str = "0A";
    let mut fields = line.split_whitespace();
    let (Some(_slot), Some(local), Some(_remote), Some(state)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let Some((ip, port)) = local.split_once(':') else {
        return false;
    };
    if state != TCP_LISTEN || u16::from_str_radix(port, 16) != Ok(addr.port()) {
        return false;
    }
    let mut bytes = Vec::with_capacity(16);
    for word in ip.as_bytes().chunks(8) {
        let Some(w) = std::str::from_utf8(word)
            .ok()
            .and_then(|w| u32::from_str_radix(w, 16).ok())
        else {
            return false;
        };
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    match addr.ip() {
        std::net::IpAddr::V4(v4) => bytes == v4.octets(),
        std::net::IpAddr::V6(v6) => bytes == v6.octets(),
    }
}

/// Binds `addr` for a glommio executor without SO_REUSEPORT (glommio's own bind sets it): for
/// listeners that must not share their port, such as the sample backend's. A port-0 bind with
/// SO_REUSEPORT can be handed a port that another SO_REUSEPORT listener of the same user holds,
/// a gateway's, and the two would then split its connections (seen in the test suite: a gateway's
/// calls reached the gateway itself).
pub fn bind_exclusive(addr: SocketAddr) -> io::Result<glommio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: the fd is a bound, listening TCP socket that we own and hand over.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

/// A shard's listening socket, which stops listening the moment it is dropped.
///
/// Closing the descriptor is not enough: an accept in flight in the shard's io_uring holds the
/// socket, and the kernel cancels it only when the ring is torn down, after the process has
/// exited. The socket went on listening meanwhile, and a gateway started in that moment (a
/// restart) found the address in use, in about one start of three right after an exit.
/// `shutdown` takes a listening socket out of the listening state at once, whoever holds it
/// (the in-flight accept ends with an error), and leaves no connection behind: ones not yet
/// accepted are reset, as they would be by the close.
pub struct Listener {
    socket: glommio::net::TcpListener,
    /// `socket`'s descriptor (glommio's listener does not expose it).
    fd: RawFd,
}

impl Listener {
    /// The next client connection.
    pub async fn accept(&self) -> glommio::Result<glommio::net::TcpStream, ()> {
        self.socket.accept().await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: `fd` is `socket`'s, which is open until the fields are dropped after this.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}

/// Binds `addr` for one shard (SO_REUSEPORT) and hands the socket to the shard's executor.
pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let fd = socket.into_raw_fd();
    // SAFETY: the fd is a bound, listening TCP socket that we own and hand over.
    let socket = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
    Ok(Listener { socket, fd })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_sockets_from_proc_net_tcp() {
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        assert!(listens_on(line, v4));
        assert!(
            !listens_on(&line.replace(" 0A ", " 01 "), v4),
            "established"
        );
        assert!(!listens_on(line, "127.0.0.1:8081".parse().unwrap()));
        assert!(!listens_on(line, "127.0.0.2:8080".parse().unwrap()));
        let v6 = "   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        assert!(listens_on(v6, "[::1]:8080".parse().unwrap()));
        assert!(
            !listens_on("  sl  local_address rem_address   st", v4),
            "the header line"
        );
    }

    #[test]
    fn a_port_shared_with_another_process_is_refused() {
        // Two SO_REUSEPORT sockets on one port, as two gateways would hold it: one of them is
        // "ours", the other is someone else's.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let first = bind_std(addr);
        assert!(check_alone(addr, 1).is_ok(), "alone");
        let _second = bind_std(addr);
        let err = check_alone(addr, 1).unwrap_err();
        assert!(err.contains("another process listens there too"), "{err}");
        assert!(check_alone(addr, 2).is_ok(), "both ours");
        drop(first);
    }

    #[test]
    fn a_dropped_listener_stops_listening_with_an_accept_in_flight() {
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("executor");
        executor.run(async {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = probe.local_addr().unwrap();
            drop(probe);
            let listener = bind(addr).expect("bind");
            // The executor parks for the timer, and parking hands the accept to the kernel; the
            // timer ends the wait and drops the accept, whose cancellation the ring has not seen.
            futures_lite::future::or(
                async {
                    let _ = listener.accept().await;
                },
                glommio::timer::sleep(std::time::Duration::from_millis(1)),
            )
            .await;
            drop(listener);
            // At once, with the executor not run since: the accept still in the ring holds the
            // socket, and without the shutdown it would go on listening.
            assert!(check_alone(addr, 0).is_ok(), "still listening on {addr}");
        });
    }

    fn bind_std(addr: SocketAddr) -> Socket {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket.bind(&addr.into()).unwrap();
        socket.listen(16).unwrap();
        socket
    }
}
