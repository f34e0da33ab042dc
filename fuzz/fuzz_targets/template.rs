//! Fuzz target: the Go-template evaluator behind `--format`, with any template over a
//! container-like value. A result or an error, never a panic or a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/cli/src/table.rs"]
mod table;
#[allow(dead_code)]
#[path = "../../crates/cli/src/template.rs"]
mod template;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let dot = serde_json::json!({
        "ID": "0123456789ab", "Names": ["/web"], "Image": "busybox",
        "Labels": {"a": "1", "com.example": "x y"}, "Ports": [{"PrivatePort": 80, "Type": "tcp"}],
        "State": {"Running": true, "ExitCode": 0}, "Size": 12345, "Mounts": [], "Nil": null
    });
    let _ = template::render(&text, &dot);
    let _ = template::format_list(&text, &[dot.clone(), dot.clone()], &dot);
});
