//! Fuzz target: DNS packets as a container sends them to the embedded server. Any bytes give
//! a question or nothing, and the replies built from them never panic.

#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use wharf_network::dns_wire::{answer, error_reply, parse_query, RCODE_REFUSED, RCODE_SERVFAIL};

fuzz_target!(|data: &[u8]| {
    if let Some(q) = parse_query(data) {
        let reply = answer(data, &q, &[Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]);
        assert_eq!(reply.get(..2), data.get(..2), "the reply keeps the query's id");
        let _ = answer(data, &q, &[]);
        let _ = answer(&data[..data.len() / 2], &q, &[]);
    }
    let _ = error_reply(data, RCODE_REFUSED);
    let _ = error_reply(data, RCODE_SERVFAIL);
});
