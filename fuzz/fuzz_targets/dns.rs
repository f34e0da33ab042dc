//! Fuzz target: DNS packets as a container sends them to the embedded server. Any bytes give
//! a question or nothing, and the replies built from them never panic.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use wharf_network::dns_wire::{answer, error_reply, parse_query, RCODE_REFUSED, RCODE_SERVFAIL};

fuzz_target!(|data: &[u8]| {
    if let Some(q) = parse_query(data) {
        let addrs = [
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        ];
        let reply = answer(data, &q, &addrs);
        assert_eq!(reply.get(..2), data.get(..2), "the reply keeps the query's id");
        let _ = answer(data, &q, &[]);
        let _ = answer(&data[..data.len() / 2], &q, &[]);
    }
    let _ = error_reply(data, RCODE_REFUSED);
    let _ = error_reply(data, RCODE_SERVFAIL);
});
