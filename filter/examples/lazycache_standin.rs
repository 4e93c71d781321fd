//! A lazycache stand-in for benchmarks (the one the tests use: ffprobe for metadata,
//! ffmpeg for each frame): serves ROOT under lazycache's URL prefix, prints its URL and
//! runs until killed (`scripts/bench-lazycache`).
//!
//!     cargo run --release -p filter --example lazycache_standin -- ROOT

#[path = "../tests/support/lazycache.rs"]
#[allow(dead_code)]
mod lazycache;

fn main() {
    let Some(root) = std::env::args().nth(1) else {
        eprintln!("usage: lazycache_standin ROOT");
        std::process::exit(2);
    };
    let server = lazycache::start(root.into());
    println!("{}", server.url());
    loop {
        std::thread::park();
    }
}
