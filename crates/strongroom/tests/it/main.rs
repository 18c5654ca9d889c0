//! Strongroom's black-box suite: one test binary, modules by capability. Every HTTP test runs
//! against SQLite and PostgreSQL (`<test>::sqlite`, `<test>::postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod privacy;
mod process;
mod support;

mod access;
mod api_keys;
mod asset_cache;
mod assets;
mod audit_export;
mod audit_rollback;
mod audit_verify;
mod authz;
mod authz_table;
mod backup;
mod backup_ops;
mod browser;
mod bruteforce;
mod cli;
mod client;
mod contract;
mod crash;
mod dashboard;
mod edge;
mod erasure;
mod escalation;
mod faults;
mod key_cache;
mod keys;
mod lifecycle;
mod links;
mod mail;
mod media_jobs;
mod metrics;
mod mfa;
mod org_deletion;
mod quotas;
mod residency;
mod s3;
mod sealed_metadata;
mod sessions;
mod signals;
mod storage;
mod video;
