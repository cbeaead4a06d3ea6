//! The streams a connection can run over.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A connected byte stream both ends can read and write, with read and
/// write timeouts: a Unix socket (a socketpair's end, an fd a child
/// inherited) or a TCP stream. Pipes are not: a connection needs one
/// descriptor it can read and write.
pub trait Socket: Read + Write + Send + 'static {
    /// Set how long a read may block (`None`: no limit).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Set how long a write may block without progress (`None`: no limit).
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Another handle on the same stream (for [`crate::StopHandle`]).
    fn try_clone_socket(&self) -> io::Result<Box<dyn Socket>>;
    /// Shut both directions down: a read blocked on the stream in another
    /// thread returns end of file.
    fn shutdown_both(&self) -> io::Result<()>;
}

impl Socket for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
    fn try_clone_socket(&self) -> io::Result<Box<dyn Socket>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn shutdown_both(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Both)
    }
}

impl Socket for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
    fn try_clone_socket(&self) -> io::Result<Box<dyn Socket>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn shutdown_both(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Both)
    }
}

impl Socket for Box<dyn Socket> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }
    fn try_clone_socket(&self) -> io::Result<Box<dyn Socket>> {
        (**self).try_clone_socket()
    }
    fn shutdown_both(&self) -> io::Result<()> {
        (**self).shutdown_both()
    }
}

/// Whether an I/O error only means "not now" (a timeout, a non-blocking
/// socket with nothing to do).
pub(crate) fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
