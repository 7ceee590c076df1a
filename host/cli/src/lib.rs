//! The library side of the `aerie` package: the wiring between rooms that
//! more than one client needs (the CLI, the benchmarks, and the server to come).
//! The commands themselves live in the binary.

pub mod wiring;
