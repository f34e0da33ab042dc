//! Applies a layer tar file with the snapshotter and prints the time it took: a rough benchmark
//! of the pull hot path. Usage: `apply_tar <snapshot-root> <layer.tar> [nosync]`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(root), Some(tar)) = (args.get(1), args.get(2)) else {
        return Err("usage: apply_tar <snapshot-root> <layer.tar> [nosync]".into());
    };
    let mut snap = wharf_snapshot::Snapshotter::open(std::path::Path::new(root))?;
    snap.set_sync(args.get(3).map(|s| s != "nosync").unwrap_or(true));
    let file = std::fs::File::open(tar)?;
    let chain = wharf_types::Digest::of(tar.as_bytes());
    snap.remove_layer(&chain)?;
    let start = Instant::now();
    let applied = snap.apply_layer(&chain, None, file)?;
    println!("applied {} ({} bytes) in {:?}", applied.diff_id, applied.size, start.elapsed());
    Ok(())
}
