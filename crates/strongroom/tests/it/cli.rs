//! CLI commands through the real binary (filled in by the CLI suite).
