//! The `strongroom` binary's library half: configuration, instance start-up, the HTTPS server
//! wiring and the command-line commands. `main.rs` only parses arguments and reports errors, so
//! the tests run exactly the code the binary runs.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
pub mod boot;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod mail;
pub mod serve;
