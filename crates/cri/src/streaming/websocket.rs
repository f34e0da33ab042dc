//! RFC 6455 WebSocket, the server side, as much as the Kubernetes channel protocols need:
//! the accept key of the handshake (with SHA-1 written here: it is the only use of it, and
//! the lock file has no SHA-1 crate), masked client frames read and reassembled from
//! fragments, unmasked server frames written, ping answered, close echoed.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID every accept key is made with (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest message taken from a client: a channel message is a chunk of a stream or a
/// resize, never near this; more is refused rather than buffered.
pub const MAX_MESSAGE: usize = 16 << 20;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    use base64::Engine as _;
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1(&input))
}

/// What a client sent: a whole message, or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Message {
        text: bool,
        data: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong,
    /// The close frame's status code, when it had one.
    Close(Option<u16>),
}

/// Reads client frames; keeps a fragmented message until its last frame.
pub struct Reader<R> {
    r: R,
    partial: Option<(bool, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(r: R) -> Reader<R> {
        Reader { r, partial: None }
    }

    /// The next message or control frame; `None` at the end of the connection. A protocol
    /// error (an unmasked frame, an unknown opcode, a too large message) is an `InvalidData`
    /// error, after which the connection is closed.
    pub async fn next(&mut self) -> io::Result<Option<Incoming>> {
        loop {
            let mut head = [0u8; 2];
            match self.r.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let fin = head[0] & 0x80 != 0;
            if head[0] & 0x70 != 0 {
                return Err(bad("reserved bits set (no extension was negotiated)"));
            }
            let opcode = head[0] & 0x0f;
            if head[1] & 0x80 == 0 {
                return Err(bad("client frame is not masked"));
            }
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.r.read_exact(&mut b).await?;
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.r.read_exact(&mut b).await?;
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let have = self.partial.as_ref().map_or(0, |(_, d)| d.len());
            if len > (MAX_MESSAGE - have) as u64 {
                return Err(bad("message too large"));
            }
            let mut mask = [0u8; 4];
            self.r.read_exact(&mut mask).await?;
            let mut payload = vec![0u8; len as usize];
            self.r.read_exact(&mut payload).await?;
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            match opcode {
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !fin || payload.len() > 125 {
                        return Err(bad("fragmented or oversized control frame"));
                    }
                    return Ok(Some(match opcode {
                        OP_CLOSE => Incoming::Close(payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]))),
                        OP_PING => Incoming::Ping(payload),
                        _ => Incoming::Pong,
                    }));
                }
                OP_TEXT | OP_BINARY => {
                    if self.partial.is_some() {
                        return Err(bad("a new message inside a fragmented one"));
                    }
                    if fin {
                        return Ok(Some(Incoming::Message { text: opcode == OP_TEXT, data: payload }));
                    }
                    self.partial = Some((opcode == OP_TEXT, payload));
                }
                OP_CONTINUATION => {
                    let Some((_, data)) = self.partial.as_mut() else {
                        return Err(bad("continuation frame without a message"));
                    };
                    data.extend_from_slice(&payload);
                    if fin {
                        let (text, data) = self.partial.take().unwrap_or_default();
                        return Ok(Some(Incoming::Message { text, data }));
                    }
                }
                other => return Err(bad(&format!("unknown opcode {other:#x}"))),
            }
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {what}"))
}

/// One unmasked frame with FIN set (a server never masks, RFC 6455 §5.1).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Writes frames to the client.
pub struct Writer<W> {
    w: W,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(w: W) -> Writer<W> {
        Writer { w }
    }

    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.w.write_all(&frame(opcode, payload)).await?;
        self.w.flush().await
    }

    /// A close frame with `code`, then the end of the connection.
    pub async fn close(&mut self, code: u16) -> io::Result<()> {
        self.send(OP_CLOSE, &code.to_be_bytes()).await?;
        self.w.shutdown().await
    }
}

/// SHA-1 (FIPS 180-4), for the accept key only: the handshake needs it, nothing secret.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex(&sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hex(&sha1(&[b'a'; 1000])), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    }

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn reads_fragments_control_frames_and_refuses_unmasked_ones() {
        let mut wire = masked(OP_BINARY, false, b"\x00hel");
        wire.extend(masked(OP_PING, true, b"p"));
        wire.extend(masked(OP_CONTINUATION, true, &[b'l'; 300]));
        wire.extend(masked(OP_CLOSE, true, &1000u16.to_be_bytes()));
        let mut r = Reader::new(&wire[..]);
        assert_eq!(r.next().await.unwrap(), Some(Incoming::Ping(b"p".to_vec())));
        let mut want = b"\x00hel".to_vec();
        want.extend([b'l'; 300]);
        assert_eq!(r.next().await.unwrap(), Some(Incoming::Message { text: false, data: want }));
        assert_eq!(r.next().await.unwrap(), Some(Incoming::Close(Some(1000))));
        assert_eq!(r.next().await.unwrap(), None);

        let unmasked = frame(OP_TEXT, b"hi");
        let err = Reader::new(&unmasked[..]).next().await.unwrap_err();
        assert!(err.to_string().contains("not masked"), "{err}");
        let huge = [0x82u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(Reader::new(&huge[..]).next().await.unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn frames_carry_the_three_length_forms() {
        assert_eq!(frame(OP_BINARY, b"ab"), vec![0x82, 2, b'a', b'b']);
        assert_eq!(&frame(OP_BINARY, &[0; 200])[..4], &[0x82, 126, 0, 200]);
        assert_eq!(&frame(OP_BINARY, &[0; 70000])[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }
}
