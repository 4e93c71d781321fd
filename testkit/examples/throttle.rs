//! A slow link for benchmarks: forwards a free loopback port to UPSTREAM, carrying what
//! the server sends at RATE bytes a second over all connections together; prints
//! `127.0.0.1:PORT` and runs until killed (`scripts/bench-fetch`).
//!
//!     cargo run --release -p testkit --example throttle -- HOST:PORT RATE

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(upstream), Some(rate)) = (args.first(), args.get(1).and_then(|r| r.parse().ok()))
    else {
        eprintln!("usage: throttle HOST:PORT BYTES_PER_SECOND");
        std::process::exit(2);
    };
    let proxy = testkit::Proxy::start_throttled(upstream, rate).unwrap_or_else(|e| {
        eprintln!("throttle: cannot listen: {e}");
        std::process::exit(1);
    });
    println!("{}", proxy.addr());
    loop {
        std::thread::park();
    }
}
