//! Port-forward over a websocket, as kubelet's `portforward/websocket.go`: the ports are the
//! URL's `port` query parameters; port `i` has channels `2i` (data) and `2i+1` (error), and the
//! first message of each is the port, two bytes little-endian. Each port is one TCP
//! connection to `127.0.0.1:PORT` inside the pod's network namespace, dialled from a thread of
//! its own that joins that namespace (a socket stays in the namespace it was made in, so the
//! thread ends right after the connect and the stream is then an ordinary tokio socket).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::{Transport, Ws, WsEvent};
use crate::Cri;

/// How long a connect inside the pod may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The ports of a websocket port-forward: `port=` parameters (each may be a comma-separated
/// list, as kubelet reads them), else those of the PortForward request.
pub fn query_ports(query: &str, default: &[i32]) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.split('&') {
        let Some(v) = pair.strip_prefix("port=") else { continue };
        for p in v.split(',').filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("invalid port {p:?} in the query: a port is 1 to 65535")),
            }
        }
    }
    if ports.is_empty() {
        ports = default.iter().filter_map(|p| u16::try_from(*p).ok()).collect();
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    // Two channels a port, numbered in one byte.
    if ports.len() > 127 {
        return Err(format!("{} ports asked: a websocket port-forward carries at most 127", ports.len()));
    }
    Ok(ports)
}

/// A TCP connection to `port` on the loopback of the network namespace of process `pid`.
pub(super) async fn dial(pid: i32, port: u16) -> io::Result<tokio::net::TcpStream> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    let (tx, rx) = oneshot::channel();
    // A thread of its own, never a runtime's: the namespace sticks to the thread that joined it.
    std::thread::Builder::new().name("cri-portforward".into()).spawn(move || {
        let r = (|| {
            // SAFETY: setns on a descriptor this thread owns; it changes only this thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), DIAL_TIMEOUT)
        })();
        let _ = tx.send(r);
    })?;
    let s = rx.await.map_err(|_| io::Error::other("the dialling thread ended without an answer"))??;
    s.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(s)
}

pub async fn session<W: AsyncWrite + Unpin>(cri: &Cri, mut ws: Ws<W>, sandbox_id: &str, ports: Vec<u16>) {
    let ready = ports.len();
    for (i, p) in ports.iter().enumerate() {
        let ch = (2 * i) as u8;
        if ws.send(ch, &p.to_le_bytes()).await.is_err() || ws.send(ch + 1, &p.to_le_bytes()).await.is_err() {
            return;
        }
    }
    let pid = super::sandbox_pid(cri, sandbox_id);
    let (tx, mut from_tcp) = mpsc::channel::<(usize, Option<Vec<u8>>)>(16);
    let mut writers = Vec::with_capacity(ready);
    let mut open = 0;
    for (i, &port) in ports.iter().enumerate() {
        let conn = match pid {
            Some(pid) => dial(pid, port).await,
            None => Err(io::Error::other(format!("pod sandbox {sandbox_id} is not running"))),
        };
        match conn {
            Ok(s) => {
                let (mut r, w) = s.into_split();
                writers.push(Some(w));
                open += 1;
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 << 10];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                let _ = tx.send((i, None)).await;
                                return;
                            }
                            Ok(n) => {
                                if tx.send((i, Some(buf[..n].to_vec()))).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                writers.push(None);
                let msg = format!("error forwarding port {port} to pod {sandbox_id}: {e}");
                if ws.send((2 * i + 1) as u8, msg.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    while open > 0 {
        let idle = tokio::time::sleep(super::STREAM_IDLE_TIMEOUT);
        tokio::select! {
            _ = idle => return,
            got = from_tcp.recv() => match got {
                Some((i, Some(data))) => {
                    if ws.send((2 * i) as u8, &data).await.is_err() {
                        return;
                    }
                }
                Some((i, None)) => {
                    // The pod's side closed: this port is done.
                    if let Some(Some(mut w)) = writers.get_mut(i).map(Option::take) {
                        let _ = w.shutdown().await;
                    }
                    open -= 1;
                }
                None => break,
            },
            msg = ws.next() => match msg {
                WsEvent::Data(ch, data) if ch % 2 == 0 => {
                    if let Some(Some(w)) = writers.get_mut(usize::from(ch / 2)) {
                        if w.write_all(&data).await.is_err() {
                            log::debug!("cri streaming: port-forward write to the pod failed");
                        }
                    }
                }
                WsEvent::Data(..) | WsEvent::Closed(_) => {}
                // The client left: dropping the sockets closes them.
                WsEvent::End => return,
            },
        }
    }
    ws.finish().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_query_else_the_request() {
        assert_eq!(query_ports("port=80&port=8080,9090", &[1]).unwrap(), vec![80, 8080, 9090]);
        assert_eq!(query_ports("", &[443]).unwrap(), vec![443]);
        assert!(query_ports("", &[]).unwrap_err().contains("required"));
        assert!(query_ports("port=0", &[]).is_err());
        assert!(query_ports("port=70000", &[]).is_err());
        assert!(query_ports("port=http", &[]).is_err());
        let many = (1..=128).map(|p| format!("port={p}")).collect::<Vec<_>>().join("&");
        assert!(query_ports(&many, &[]).unwrap_err().contains("at most 127"));
        assert_eq!(query_ports(&many.replace("&port=128", ""), &[]).unwrap().len(), 127);
    }
}
