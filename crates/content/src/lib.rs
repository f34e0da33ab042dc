//! Content-addressed blob store: verified streaming writes, atomic commit.
