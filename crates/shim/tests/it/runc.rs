//! The shim driving runc (`--runtime`) on the bundles the other tests run under wharf's own
//! runtime: logs, exit codes, the overlay rootfs mounted only in the shim's namespace, the
//! runtime's words for a command that cannot run, and nothing left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf_runtime::spec::ANNOTATION_OVERLAY;

use super::{require_root, Bundle, SHIM};

const RUNC: &str = "/usr/sbin/runc";

fn need_runc() {
    require_root();
    assert!(Path::new(RUNC).exists(), "this test needs runc at {RUNC} (apt-get install runc)");
}

/// The shim with runc and a state directory in the bundle.
fn shim(b: &Bundle) -> Command {
    let mut cmd = Command::new(SHIM);
    cmd.args(["--runtime", RUNC, "--runtime-root"]).arg(state(b));
    cmd
}

fn state(b: &Bundle) -> PathBuf {
    b.dir.join("runc-state")
}

fn overlay(spec: &mut wharf_runtime::spec::Spec, dir: &Path) {
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        dir.join("rootfs").display(),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    spec.annotations.insert(ANNOTATION_OVERLAY.to_string(), opts);
    spec.root.as_mut().unwrap().path = "merged".to_string();
}

#[test]
fn runc_runs_the_bundle_with_logs_exit_code_and_overlay() {
    need_runc();
    let b =
        Bundle::new("runc-overlay", &["sh", "-c", "echo data > /written; cat /written; echo err >&2; exit 3"], overlay);
    let hs = b.start_cmd(shim(&b));
    assert!(hs["error"].is_null() && hs["pid"].as_i64().unwrap_or(0) > 0, "{hs}");
    assert_eq!(b.wait_exit()["exit_code"], 3);
    assert_eq!(b.stdout(), "data\n");
    assert!(b.logs().contains(&("err\n".to_string(), "stderr".to_string())), "{:?}", b.logs());
    // Written through the overlay mounted in the shim's namespace, into the upper dir.
    assert_eq!(std::fs::read_to_string(b.dir.join("upper/written")).unwrap(), "data\n");
    assert!(!b.dir.join("merged/written").exists());
    b.assert_cleaned_up();
    // runc's record goes once the container has ended (after exit.json: wait a moment).
    let gone = (0..250).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        !state(&b).join(&b.id).exists()
    });
    assert!(gone, "runc's state of {} is still there", b.id);
}

#[test]
fn runc_missing_command_is_127_with_runcs_words() {
    need_runc();
    let b = Bundle::new("runc-nosuch", &["nosuchcmd"], |_, _| {});
    let hs = b.start_cmd(shim(&b));
    assert_eq!(hs["exit_code"], 127, "{hs}");
    let msg = hs["error"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("OCI runtime create failed: ")
            && msg.contains("exec: \"nosuchcmd\": executable file not found in $PATH"),
        "{hs}"
    );
    assert!(!b.dir.join("exit.json").exists());
    b.assert_cleaned_up();
}

#[test]
fn runc_sigkill_is_137_and_init_is_the_shims_child() {
    need_runc();
    let b = Bundle::new("runc-kill", &["sleep", "1000"], |_, _| {});
    let hs = b.start_cmd(shim(&b));
    let pid = hs["pid"].as_i64().unwrap_or(0) as i32;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i64 = stat.rsplit_once(") ").unwrap().1.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(ppid, hs["shim_pid"].as_i64().unwrap(), "the init's parent is not the shim");
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(b.wait_exit()["exit_code"], 137);
    b.assert_cleaned_up();
}

#[test]
fn a_runtime_that_is_not_there_is_127_naming_it() {
    require_root();
    let b = Bundle::new("runc-ghost", &["true"], |_, _| {});
    let mut cmd = Command::new(SHIM);
    cmd.args(["--runtime", "/nonexistent/runtime", "--runtime-root"]).arg(state(&b));
    let hs = b.start_cmd(cmd);
    assert_eq!(hs["exit_code"], 127, "{hs}");
    assert_eq!(hs["error"], "OCI runtime create failed: fork/exec /nonexistent/runtime: no such file or directory");
    b.assert_cleaned_up();
}

#[test]
fn a_bad_runtime_arg_is_reported_with_the_runtimes_words() {
    need_runc();
    let b = Bundle::new("runc-badarg", &["true"], |_, _| {});
    let mut cmd = shim(&b);
    cmd.args(["--runtime-arg", "--nosuchflag"]);
    let hs = b.start_cmd(cmd);
    assert_eq!(hs["exit_code"], 125, "{hs}");
    let msg = hs["error"].as_str().unwrap_or_default();
    assert!(msg.starts_with("OCI runtime create failed: ") && msg.contains("flag provided but not defined"), "{hs}");
    // Nothing of it reached the container's log.
    assert!(b.logs().is_empty(), "{:?}", b.logs());
    b.assert_cleaned_up();
}
