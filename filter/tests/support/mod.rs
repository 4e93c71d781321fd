//! Test support for the analysis: ProRes clips rendered from a known camera path, so
//! every frame pair has an exact ground-truth similarity.
#![allow(dead_code)]

pub mod synth;
