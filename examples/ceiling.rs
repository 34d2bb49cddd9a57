//! The benchmark's ceiling: mysqlchk's HTTP side with no check at all. Same shape as the daemon
//! (one LocalExecutor on the main thread, one task per connection); it reads the request head,
//! answers 200, shuts down writing and drains until the client closes (scripts/bench.sh).
//!
//! Usage: ceiling [ADDR]   (default 127.0.0.1:9200)

use std::net::Shutdown;
use std::rc::Rc;

use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::LocalExecutor;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\
Connection: close\r\n\r\nMySQL is running.\r\n";

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf).await? {
            0 => return Ok(()),
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    stream.write_all(RESPONSE).await?;
    stream.shutdown(Shutdown::Write)?;
    while stream.read(&mut buf).await? > 0 {}
    Ok(())
}

fn main() -> std::io::Result<()> {
    // As the daemon does: this thread drives async-io alone, without its helper thread.
    async_io::no_helper_thread();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9200".into());
    let ex = Rc::new(LocalExecutor::new());
    smol::block_on(ex.run(async {
        let listener = TcpListener::bind(addr.as_str()).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            ex.spawn(serve(stream)).detach();
        }
    }))
}
