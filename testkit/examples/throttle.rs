//! A distant, slow link for benchmarks: forwards a free loopback port to UPSTREAM,
//! delaying every byte by half of RTT_MS each way and carrying what the server sends at
//! RATE bytes a second over all connections together (0: unlimited); prints
//! `127.0.0.1:PORT` and runs until killed (`scripts/bench-fetch`). With COUNT_FILE, the
//! bytes carried to the clients so far are written there every 100 ms (the wire's bytes:
//! TLS and HTTP/2 framing included, which a server's log does not count).
//!
//!     cargo run --release -p testkit --example throttle -- HOST:PORT RATE [RTT_MS [COUNT_FILE]]

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
    let Some(count_file) = args.get(3) else {
        loop {
            std::thread::park();
        }
    };
    let mut written = u64::MAX;
    loop {
        let now = proxy.bytes_to_clients();
        if now != written {
            // Whole or not at all: a reader never sees half a number.
            let part = format!("{count_file}.part");
            if std::fs::write(&part, now.to_string()).is_ok()
                && std::fs::rename(&part, count_file).is_ok()
            {
                written = now;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
