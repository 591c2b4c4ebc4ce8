//! The client listener: every shard binds the same address with SO_REUSEPORT, so the kernel spreads
//! new connections over the shards and no accept queue is shared between cores.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length asked of the kernel, which caps it at `net.core.somaxconn` (4096 by
/// default; tuning/sysctl.conf raises it to this): deep enough to absorb a reconnect storm from
/// HAProxy. Asking for no more than the default made the sysctl a no-op.
const LISTEN_BACKLOG: i32 = 65535;

/// Fails with a clear message when `addr` is taken by anything, even another SO_REUSEPORT socket:
/// binding without SO_REUSEPORT first means two gateways never silently share a port.
pub fn check_available(addr: SocketAddr) -> Result<(), String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(format!(
            "cannot listen on {addr}: the address is already in use (is another switchyard or server running there?)"
        )),
        Err(e) => Err(format!("cannot listen on {addr}: {e}")),
    }
}

/// Binds `addr` for one shard (SO_REUSEPORT) and hands the socket to the shard's executor.
pub fn bind(addr: SocketAddr) -> io::Result<glommio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the fd is a bound, listening TCP socket that we own and hand over.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}
