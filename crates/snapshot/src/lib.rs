//! Overlayfs snapshots of image layers and container upper dirs; applying layer tars with whiteouts.
