//! Fuzz target: any text fed to the Dockerfile parser, word expansion and `.dockerignore`
//! must give a result or an error, never a panic or a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(df) = wharf_build::parse(&text) {
        let _ = wharf_build::stages_needed(&df, None);
        if let Ok(meta) = df.meta_arg_values(&|_| None) {
            let lookup = |n: &str| meta.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            for stage in &df.stages {
                let _ = stage.expand_base(df.escape, &lookup);
                let _ = stage.expand_platform(df.escape, &lookup);
                for instruction in &stage.instructions {
                    let _ = instruction.expand(df.escape, &|_| Some("a b".to_string()));
                }
            }
        }
    }
    let _ = wharf_build::expand_word(&text, '\\', &|_| Some("x".to_string()));
    let _ = wharf_build::expand_words(&text, '`', &|_| None);
    if let Ok(ignore) = wharf_build::Ignore::new(&text) {
        let _ = ignore.matches(&text);
        let _ = ignore.can_skip_dir("a/b");
    }
});
