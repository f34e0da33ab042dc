//! Typed client of the Docker Engine API over a unix socket, used by the CLI and the tests.
