//! Workspace integration harness: builders that start real SAIR processes on loopback, and an
//! `assert_eventually!` whose patience is set by `SAIR_TEST_PATIENCE_SECONDS`.
//!
//! It must not reimplement component logic: tests talk to real binaries over real protocols.
