//! Durability: kill -9 and restart (filled in by the CLI suite).
