//! The shim's socket protocol, spoken with wharfd over `<exec-root>/shim/<id>.sock`.
//!
//! A client sends one JSON line ([`Request`]); then both sides exchange frames
//! `[kind u8][len u32 BE][payload]`. Client to shim: [`STDIN`] data, [`CLOSE_STDIN`].
//! Shim to client: [`STDOUT`]/[`STDERR`] data, [`STARTED`] `{"pid"}` when an exec'd process
//! runs, [`EXIT`] `{"exit_code"}` when the process ended (the shim then closes the
//! connection), [`ERROR`] `{"message","exit_code"}` when a request failed.

use serde::{Deserialize, Serialize};
use wharf_runtime::spec::Process;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const CLOSE_STDIN: u8 = 3;
pub const STARTED: u8 = 4;
pub const EXIT: u8 = 5;
pub const ERROR: u8 = 6;
pub const OK: u8 = 7;

/// The longest header line or frame payload accepted from a client.
pub const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Stream the container's output (and feed its stdin).
    Attach { stdin: bool, stdout: bool, stderr: bool },
    /// Size the terminal of the container (`exec: None`) or of an exec'd process.
    Resize {
        #[serde(default)]
        exec: Option<String>,
        rows: u16,
        cols: u16,
    },
    /// Run a process in the container; the connection is attached to it.
    Exec { id: String, process: Box<Process>, stdin: bool },
}

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits the complete frames off the front of `buf`; `Err` when one is too large.
pub fn take_frames(buf: &mut Vec<u8>) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= 5 {
        let kind = buf[pos];
        let len = u32::from_be_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(format!("frame of {len} bytes is too large"));
        }
        if buf.len() - pos - 5 < len {
            break;
        }
        frames.push((kind, buf[pos + 5..pos + 5 + len].to_vec()));
        pos += 5 + len;
    }
    buf.drain(..pos);
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_table() {
        let mut all = frame(STDIN, b"abc");
        all.extend(frame(CLOSE_STDIN, b""));
        all.extend(&frame(STDIN, b"partial")[..6]);
        type Frames = Vec<(u8, Vec<u8>)>;
        let cases: Vec<(Vec<u8>, Frames, usize)> = vec![
            (vec![], vec![], 0),
            (vec![0, 0, 0], vec![], 3),
            (all, vec![(STDIN, b"abc".to_vec()), (CLOSE_STDIN, vec![])], 6),
        ];
        for (mut input, want, left) in cases {
            let got = take_frames(&mut input).unwrap();
            assert_eq!(got, want);
            assert_eq!(input.len(), left);
        }
        let mut huge = vec![STDIN, 0xff, 0xff, 0xff, 0xff];
        assert!(take_frames(&mut huge).is_err());
    }

    #[test]
    fn requests_parse() {
        let r: Request = serde_json::from_str(r#"{"attach":{"stdin":true,"stdout":true,"stderr":false}}"#).unwrap();
        assert_eq!(r, Request::Attach { stdin: true, stdout: true, stderr: false });
        let r: Request = serde_json::from_str(r#"{"resize":{"rows":24,"cols":80}}"#).unwrap();
        assert_eq!(r, Request::Resize { exec: None, rows: 24, cols: 80 });
    }
}
