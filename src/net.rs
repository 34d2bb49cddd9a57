//! Sockets shaped by what a check costs in system calls.
//!
//! async-io re-arms a one-shot epoll registration for every wait (`epoll_ctl`), and each time
//! the reactor blocks it also re-arms its timer and wake-up descriptors (`timerfd_settime`, two
//! more `epoll_ctl`, a `read`). So the cheapest wait is the one that is not needed, and the next
//! cheapest is one that comes straight after an answer was asked for, instead of a read that is
//! bound to fail with `EAGAIN` first:
//!
//! * [`Conn`] waits for readability before reading whenever it has just written (or just
//!   connected): a MySQL server never answers before it is asked.
//! * [`connect_tcp`] does not wait for the connection to complete: the server's greeting is the
//!   first thing read, and readability says both that the handshake completed and that the
//!   greeting is there (a refused connection is readable too, and its read fails).
//! * [`accept`] takes a connection already non-blocking (`accept4`), with no registration at
//!   all: the server registers it only if it ever has to wait for it.
//! * [`Client::write_all`] sends with `MSG_MORE`: the response waits for the close that follows
//!   and leaves with the FIN, one segment that wakes the client once.
//! * [`Conn::last_words`] does the same for COM_QUIT: QUIT and FIN reach the server in one
//!   segment.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};
use rustix::net::{self as rn, SocketFlags};

/// A connection to the database, over TCP or a unix socket: reads wait for readability first
/// after every write.
///
/// Both kinds are held as a `TcpStream`: reading and writing a connected stream socket are the
/// same system calls (`recvfrom`, `sendto`) whatever its family, and one type means one copy of
/// the check's code in the binary instead of two. Only the address methods of `TcpStream` would
/// not fit a unix socket, and nothing calls them on one.
pub struct Conn {
    /// Shared with whoever needs to ask the kernel about the socket later (see
    /// [`Conn::handle`]); only the `Conn` reads and writes.
    io: Rc<Async<TcpStream>>,
    /// Something was asked (or the connection was just opened, or the last read emptied the
    /// socket): the answer cannot be there yet, so wait for it before reading.
    asked: bool,
    /// What is written from now on is the last before the close ([`Conn::last_words`]).
    closing: std::cell::Cell<bool>,
}

impl Conn {
    /// Wraps a connected (or connecting) non-blocking socket; the first read waits.
    fn new(socket: rustix::fd::OwnedFd) -> io::Result<Conn> {
        Ok(Conn {
            io: Rc::new(Async::new_nonblocking(TcpStream::from(socket))?),
            asked: true,
            closing: Default::default(),
        })
    }

    /// The socket.
    pub fn get_ref(&self) -> &TcpStream {
        self.io.get_ref()
    }

    /// The socket, to ask the kernel about it after the `Conn` is gone (whether a connection
    /// that timed out had completed, say).
    pub fn handle(&self) -> Rc<Async<TcpStream>> {
        self.io.clone()
    }

    /// Whether the server closed the connection or sent something unasked, looking without
    /// reading or waiting (one `recvfrom` with `MSG_PEEK`): an idle connection has nothing.
    pub fn has_news(&self) -> bool {
        match self.get_ref().peek(&mut [0u8; 1]) {
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            Ok(_) => true,
        }
    }

    /// Marks what is written from now on (COM_QUIT, and under TLS its close_notify) as the last
    /// words before the close: they go out with `MSG_MORE`, and the close that follows sends
    /// them with the FIN in one segment, which wakes the server once.
    pub fn last_words(&self) {
        self.closing.set(true);
    }

    /// Resolves when the socket is writable (a connection in progress has completed or failed).
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.asked {
            ready!(self.io.poll_readable(cx))?;
            self.asked = false;
        }
        let n = ready!(Pin::new(&mut &*self.io).poll_read(cx, buf))?;
        // A read that did not fill the buffer emptied the socket: the rest of the answer (the
        // next result of a multi-statement query, say) is still being written, so wait for it.
        if n < buf.len() {
            self.asked = true;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = if self.closing.get() {
            loop {
                match send_more(self.io.get_ref(), buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.io.poll_writable(cx))?,
                    sent => break sent?,
                }
            }
        } else {
            ready!(Pin::new(&mut &*self.io).poll_write(cx, buf))?
        };
        if written > 0 {
            self.asked = true;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.io).poll_flush(cx)
    }

    /// Nothing to do: dropping the connection closes it. The server has read our last packet
    /// (COM_QUIT) or never will, so a half-close first would only cost a system call.
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Starts a TCP connection to `addr` and returns at once (`socket` and `connect` with
/// `SOCK_NONBLOCK`): the first read waits for it to complete. Errors of the connection itself
/// (refused, unreachable) come from that read.
pub fn connect_tcp(addr: SocketAddr) -> io::Result<Conn> {
    let family = if addr.is_ipv4() { rn::AddressFamily::INET } else { rn::AddressFamily::INET6 };
    let socket = rn::socket_with(
        family,
        rn::SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        Some(rn::ipproto::TCP),
    )?;
    match rn::connect(&socket, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Conn::new(socket)
}

/// Connects to a unix socket; such a connect completes (or fails) at once. A server whose
/// listen backlog is full refuses it (`EAGAIN`) rather than making us wait.
pub fn connect_unix(path: &Path) -> io::Result<Conn> {
    let socket = rn::socket_with(
        rn::AddressFamily::UNIX,
        rn::SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let addr = rn::SocketAddrUnix::new(path)?;
    match rn::connect(&socket, &addr) {
        Ok(()) => Conn::new(socket),
        Err(rustix::io::Errno::AGAIN) => {
            Err(io::Error::new(io::ErrorKind::WouldBlock, "the server's listen backlog is full"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Accepts one connection if one is waiting, already non-blocking and close-on-exec; `Ok(None)`
/// when none is (`EAGAIN`).
pub fn accept(listener: &TcpListener) -> io::Result<Option<(TcpStream, SocketAddr)>> {
    match rn::acceptfrom_with(listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) {
        Ok((socket, Some(peer))) => match SocketAddr::try_from(peer) {
            Ok(peer) => Ok(Some((TcpStream::from(socket), peer))),
            Err(_) => Err(io::Error::new(io::ErrorKind::InvalidData, "accepted a peer with a non-IP address")),
        },
        Ok((_, None)) => Err(io::Error::new(io::ErrorKind::InvalidData, "accepted a peer without an address")),
        Err(rustix::io::Errno::AGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A client's connection: the bare non-blocking socket until the first time we have to wait for
/// it, and only then registered with the reactor. A client that sent its whole request with the
/// connection (HAProxy does) is answered and closed without ever being registered, which saves
/// the registration, its re-arming and its removal (three `epoll_ctl`).
pub enum Client {
    Bare(TcpStream),
    Registered(Async<TcpStream>),
    /// Registering failed; the socket is closed.
    Closed,
}

impl Client {
    /// A non-blocking socket (as [`accept`] returns them).
    pub fn new(stream: TcpStream) -> Client {
        Client::Bare(stream)
    }

    fn socket(&self) -> io::Result<&TcpStream> {
        match self {
            Client::Bare(s) => Ok(s),
            Client::Registered(a) => Ok(a.get_ref()),
            Client::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Whether the client has sent bytes that wait to be read, without reading them or waiting.
    pub fn has_pending(&self) -> bool {
        self.socket().and_then(|s| s.peek(&mut [0u8; 1])).is_ok_and(|n| n > 0)
    }

    /// Half-closes: the client reads the end of our response.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.socket()?.shutdown(std::net::Shutdown::Write)
    }

    /// The socket registered with the reactor, registering it now if it is not yet.
    fn registered(&mut self) -> io::Result<&Async<TcpStream>> {
        if let Client::Bare(_) = self {
            if let Client::Bare(s) = std::mem::replace(self, Client::Closed) {
                *self = Client::Registered(Async::new_nonblocking(s)?);
            }
        }
        match self {
            Client::Registered(a) => Ok(a),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Reads what has arrived, waiting only if nothing has.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Client::Bare(s) = self {
            match (&*s).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
        futures_lite::AsyncReadExt::read(&mut self.registered()?, buf).await
    }

    /// Writes all of `bytes`, waiting only if the send buffer is full. The bytes go out with
    /// `MSG_MORE`: the kernel holds the last partial segment back until the close or half-close
    /// that must follow, which sends it with the FIN in one segment.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let sent = match self {
                Client::Bare(s) => send_more(s, bytes),
                _ => self.registered()?.write_with(|s| send_more(s, bytes)).await,
            };
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                // The send buffer is full: wait for room from here on.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.registered()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One `send` with `MSG_MORE` (and `MSG_NOSIGNAL`, as std's writes).
fn send_more(s: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    Ok(rn::send(s, bytes, rn::SendFlags::MORE | rn::SendFlags::NOSIGNAL)?)
}
