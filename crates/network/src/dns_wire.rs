//! The DNS wire format as far as the embedded DNS server needs it: the header and the one
//! question of a query, an answer with A records, and a reply with only a response code.
//! Every byte comes from a container, so nothing here indexes past what was checked.

use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_REFUSED: u8 = 5;
pub const TTL: u32 = 600;

/// The question of a query.
#[derive(Debug, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// Lowercase, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Where the question ends (the answer section of a reply starts there).
    pub end: usize,
}

/// Parses the header and the one question of a query.
pub fn parse_query(msg: &[u8]) -> Option<Question> {
    if msg.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    // A response, or not exactly one question: not something to answer.
    if msg[2] & 0x80 != 0 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *msg.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        // Compression pointers cannot appear in the first name of a query.
        if len > 63 {
            return None;
        }
        let label = msg.get(pos..pos + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(pos + 2)?, *msg.get(pos + 3)?]);
    Some(Question { id, name: labels.join("."), qtype, qclass, end: pos + 4 })
}

/// A reply to `query` with the given A records (none: NOERROR without answers, as for AAAA of
/// a container that has only IPv4).
pub fn answer(query: &[u8], q: &Question, addrs: &[Ipv4Addr]) -> Vec<u8> {
    // `q` is the parse of `query`; anything else is answered as a server failure.
    let Some(head) = query.get(..q.end).filter(|h| h.len() >= 12) else {
        return error_reply(query, RCODE_SERVFAIL);
    };
    let mut out = Vec::with_capacity(q.end + addrs.len() * 16);
    out.extend_from_slice(head);
    // QR, opcode and RD kept, AA and RA set, rcode 0.
    out[2] = 0x80 | (head[2] & 0x79) | 0x04;
    out[3] = 0x80;
    let ancount = if q.qtype == TYPE_A || q.qtype == TYPE_ANY { addrs.len() as u16 } else { 0 };
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    out[8..12].copy_from_slice(&[0, 0, 0, 0]);
    if ancount > 0 {
        for a in addrs {
            out.extend_from_slice(&[0xc0, 0x0c]);
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&a.octets());
        }
    }
    out
}

/// A reply with only a response code, echoing the query's header and question.
pub fn error_reply(query: &[u8], rcode: u8) -> Vec<u8> {
    let end = parse_query(query).map(|q| q.end).unwrap_or(12.min(query.len()));
    let mut out = query[..end].to_vec();
    if out.len() < 12 {
        out.resize(12, 0);
    }
    out[2] = 0x80 | (out[2] & 0x79);
    out[3] = 0x80 | rcode;
    out[6..12].copy_from_slice(&[0; 6]);
    if end <= 12 {
        out[4..6].copy_from_slice(&[0, 0]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    #[test]
    fn parse_table() {
        let q = parse_query(&query("Web.MyNet", TYPE_A)).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype, q.qclass), (0x1234, "web.mynet", TYPE_A, CLASS_IN));
        let cases: &[(&[u8], bool)] = &[
            (&[], false),
            (&[0; 11], false),
            // A response.
            (&[0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], false),
            // Two questions.
            (&[0, 1, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], false),
            // Truncated label.
            (&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'a'], false),
            // A pointer in the question.
            (&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1], false),
            // The root name.
            (&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], true),
        ];
        for (m, ok) in cases {
            assert_eq!(parse_query(m).is_some(), *ok, "{m:?}");
        }
    }

    #[test]
    fn answers_a_and_empty_aaaa() {
        let m = query("web", TYPE_A);
        let q = parse_query(&m).unwrap();
        let r = answer(&m, &q, &[Ipv4Addr::new(10, 1, 0, 2)]);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 1, 0, 2]);
        let m = query("web", 28);
        let q = parse_query(&m).unwrap();
        let r = answer(&m, &q, &[Ipv4Addr::new(10, 1, 0, 2)]);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
        assert_eq!(r.len(), m.len());
    }

    #[test]
    fn refusal_keeps_the_question() {
        let m = query("example.com", TYPE_A);
        let r = error_reply(&m, RCODE_REFUSED);
        assert_eq!(r.len(), m.len());
        assert_eq!(r[3] & 0x0f, RCODE_REFUSED);
        assert_eq!(u16::from_be_bytes([r[4], r[5]]), 1);
    }
}
