//! Integration tests of the media pipeline against the real ffmpeg/ffprobe (Debian's, in
//! /usr/bin): no mocks. Inputs are generated with ffmpeg's lavfi sources; sources and sinks are
//! in memory. One test binary, split into modules, to keep link times down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hls;
mod hostile;
mod images;
mod probe;
mod support;
