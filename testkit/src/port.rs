//! Free loopback ports for test servers.

use std::net::TcpListener;

/// A loopback port that was free a moment ago. Another process may still take it before
/// the server binds; fixtures retry on a failed start for that reason.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
