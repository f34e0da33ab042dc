//! The multi-layer image: whiteouts, opaque directories, hard links, symlinks, setuid bits,
//! ownership and xattrs must all come out as the layers say.

use std::ffi::CString;

use crate::harness::{find_named, registry, Cli, Daemon};

pub(crate) const SCRIPT: &str = r#"
for f in /data/a.txt /data/dir/x /data/gone; do test -e $f && echo "present $f"; done
echo "b=$(cat /data/b.txt)"
echo "dir=$(ls /data/dir | tr '\n' ' ')"
echo "opq=$(ls /opq | tr '\n' ' ')"
test "$(stat -c %i /data/hard1)" = "$(stat -c %i /data/hard2)" && echo hardlink=same
echo "links=$(stat -c %h /data/hard1)"
echo "rel=$(readlink /data/rel) $(cat /data/rel)"
echo "abs=$(readlink /data/abs) $(cat /data/abs)"
echo "suid=$(stat -c %a /data/suid)"
echo "owned=$(stat -c %u:%g:%a /data/owned)"
echo "new=$(cat /data/new/file)"
echo "keep=$(cat /data/keep/k)"
echo "tmp=$(stat -c %a /tmp)"
"#;

pub(crate) const EXPECTED: &str = "b=b2
dir=y 
opq=three 
hardlink=same
links=2
rel=keep/k k
abs=/etc/hello hello
suid=4755
owned=1000:1000:640
new=new
keep=k
tmp=1777
";

fn layers_apply_in_order(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("test/layers:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image, "sh", "-c", SCRIPT]);
    out.ok();
    assert_eq!(out.stdout, EXPECTED, "{out}");
}
both!(layers_apply_in_order);

#[test]
fn layer_xattrs_are_kept() {
    let d = Daemon::start();
    d.pull("test/layers:latest");
    // busybox has no getfattr: look at the unpacked layer from the host.
    let files: Vec<_> = find_named(&d.data_root, "xattr")
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|c| c == b"has an xattr\n"))
        .collect();
    assert!(!files.is_empty(), "no unpacked /data/xattr under {}", d.data_root.display());
    for f in files {
        let path = CString::new(f.as_os_str().as_encoded_bytes()).expect("path");
        let name = CString::new("user.test").expect("name");
        let mut buf = [0u8; 64];
        // SAFETY: valid NUL-terminated strings and a buffer of the length passed.
        let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n >= 0, "{} has no user.test xattr: {}", f.display(), std::io::Error::last_os_error());
        assert_eq!(&buf[..n as usize], b"wharf", "{}", f.display());
    }
}

#[test]
fn a_container_writes_to_its_own_layer_only() {
    let d = Daemon::start();
    let image = d.pull("test/layers:latest");
    d.wharf(&["run", "--name", "writer", &image, "sh", "-c", "echo changed > /data/b.txt; rm /data/keep/k"]).ok();
    let out = d.wharf(&["run", "--rm", &image, "sh", "-c", "cat /data/b.txt /data/keep/k"]);
    assert_eq!(out.ok().stdout, "b2\nk\n", "{out}");
    d.wharf(&["rm", "writer"]).ok();
}
