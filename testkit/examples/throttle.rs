//! A distant, slow link for benchmarks: forwards a free loopback port to UPSTREAM,
//! delaying every byte by half of RTT_MS each way and carrying what the server sends at
//! RATE bytes a second over all connections together (0: unlimited); prints
//! `127.0.0.1:PORT` and runs until killed (`scripts/bench-fetch`).
//!
//!     cargo run --release -p testkit --example throttle -- HOST:PORT RATE [RTT_MS]

use std::time::Duration;

use testkit::{Link, Proxy};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|r| r.parse::<u64>().ok());
    let (Some(upstream), Some(rate)) = (args.first(), number(1)) else {
        eprintln!("usage: throttle HOST:PORT BYTES_PER_SECOND [ROUND_TRIP_MS]");
        std::process::exit(2);
    };
    let link = Link {
        bytes_per_second: (rate > 0).then_some(rate),
        round_trip: Duration::from_millis(number(2).unwrap_or(0)),
    };
    let proxy = Proxy::start_link(upstream, link).unwrap_or_else(|e| {
        eprintln!("throttle: cannot listen: {e}");
        std::process::exit(1);
    });
    println!("{}", proxy.addr());
    loop {
        std::thread::park();
    }
}
