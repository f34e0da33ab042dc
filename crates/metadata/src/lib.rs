//! The embedded transactional metadata database (redb): images, tags, containers.
