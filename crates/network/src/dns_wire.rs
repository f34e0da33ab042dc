//! The DNS wire format as far as the embedded DNS server needs it: the header and the one
//! question of a query, an answer with A and AAAA records, and a reply with only a response
//! code.
//! Every byte comes from a container, so nothing here indexes past what was checked.

#![warn(clippy::indexing_slicing)]

use std::net::IpAddr;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
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
    let header: &[u8; 12] = msg.first_chunk()?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    // A response, or not exactly one question: not something to answer.
    if header[2] & 0x80 != 0 || u16::from_be_bytes([header[4], header[5]]) != 1 {
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

/// A reply to `query` with the records of `addrs` its type asks for: A records for the IPv4
/// ones (type A), AAAA records for the IPv6 ones (type AAAA), both for ANY. None of the type
/// asked: NOERROR without answers, as for AAAA of a container that has only IPv4.
pub fn answer(query: &[u8], q: &Question, addrs: &[IpAddr]) -> Vec<u8> {
    // `q` is the parse of `query`; anything else is answered as a server failure.
    let Some((header, question)) = query.get(..q.end).and_then(|h| h.split_first_chunk::<12>()) else {
        return error_reply(query, RCODE_SERVFAIL);
    };
    let records: Vec<&IpAddr> = addrs
        .iter()
        .filter(|a| match a {
            IpAddr::V4(_) => q.qtype == TYPE_A || q.qtype == TYPE_ANY,
            IpAddr::V6(_) => q.qtype == TYPE_AAAA || q.qtype == TYPE_ANY,
        })
        .collect();
    let mut head = *header;
    // QR, opcode and RD kept, AA and RA set, rcode 0.
    head[2] = 0x80 | (header[2] & 0x79) | 0x04;
    head[3] = 0x80;
    head[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    head[8..12].fill(0);
    let mut out = Vec::with_capacity(q.end + records.len() * 28);
    out.extend_from_slice(&head);
    out.extend_from_slice(question);
    for a in records {
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (kind, data): (u16, Vec<u8>) = match a {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// A reply with only a response code, echoing the query's header and question.
pub fn error_reply(query: &[u8], rcode: u8) -> Vec<u8> {
    let question = parse_query(query).and_then(|q| query.get(12..q.end));
    // The query's header, zero-padded when the query is shorter.
    let mut header = [0u8; 12];
    header.iter_mut().zip(query).for_each(|(h, &b)| *h = b);
    header[2] = 0x80 | (header[2] & 0x79);
    header[3] = 0x80 | rcode;
    header[6..12].fill(0);
    // No question echoed when it did not parse.
    if question.is_none() {
        header[4..6].fill(0);
    }
    let mut out = header.to_vec();
    out.extend_from_slice(question.unwrap_or_default());
    out
}

#[cfg(test)]
// Test code: an index out of range is the test's failure report.
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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
        let r = answer(&m, &q, &[IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2))]);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 1, 0, 2]);
        let m = query("web", 28);
        let q = parse_query(&m).unwrap();
        let r = answer(&m, &q, &[IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2))]);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 0);
        assert_eq!(r.len(), m.len());
    }

    #[test]
    fn dual_stack_answers_by_type() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2));
        let v6: IpAddr = "fd00:1::2".parse().unwrap();
        // (type asked, answers, bytes of the last answer's data)
        let cases: &[(u16, u16, &[u8])] = &[
            (TYPE_A, 1, &[10, 1, 0, 2]),
            (TYPE_AAAA, 1, &[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            (TYPE_ANY, 2, &[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            (15, 0, &[]),
        ];
        for (qtype, count, tail) in cases {
            let m = query("web", *qtype);
            let q = parse_query(&m).unwrap();
            let r = answer(&m, &q, &[v4, v6]);
            assert_eq!(u16::from_be_bytes([r[6], r[7]]), *count, "type {qtype}");
            assert!(r.ends_with(tail), "type {qtype}: {r:?}");
            if *qtype == TYPE_AAAA {
                // name pointer, type 28, class IN, TTL, length 16
                let rr = &r[m.len()..];
                assert_eq!(&rr[..4], &[0xc0, 0x0c, 0, 28]);
                assert_eq!(&rr[10..12], &[0, 16]);
                assert_eq!(rr.len(), 12 + 16);
            }
        }
    }

    #[test]
    fn refusal_keeps_the_question() {
        let m = query("example.com", TYPE_A);
        let r = error_reply(&m, RCODE_REFUSED);
        assert_eq!(r.len(), m.len());
        assert_eq!(r[3] & 0x0f, RCODE_REFUSED);
        assert_eq!(u16::from_be_bytes([r[4], r[5]]), 1);
    }

    #[test]
    fn short_or_mismatched_input_is_answered_not_a_panic() {
        for m in [&[][..], &[0x12], &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0], &[0x12, 0x34, 0x01, 0x00, 0, 1]] {
            let r = error_reply(m, RCODE_SERVFAIL);
            assert_eq!(r.len(), 12, "{m:?}");
            assert_eq!((r[3] & 0x0f, u16::from_be_bytes([r[4], r[5]])), (RCODE_SERVFAIL, 0), "{m:?}");
        }
        // A question that is not the parse of this query (its end lies past it): a server failure.
        let m = query("web", TYPE_A);
        let mut q = parse_query(&m).unwrap();
        q.end = m.len() + 1;
        let r = answer(&m[..4], &q, &[IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2))]);
        assert_eq!((r.len(), r[3] & 0x0f), (12, RCODE_SERVFAIL));
    }
}
