//! Client throughput against a real beanstalkd: put N jobs, then reserve and delete each,
//! on one connection, one command at a time. Prints jobs per second.
//!
//! `cargo bench -p common --bench client` (N from `BENCH_JOBS`, default 100,000).

use std::time::Instant;

use common::beanstalk::{Client, PutOptions};
use testkit::Beanstalkd;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: u64 = std::env::var("BENCH_JOBS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(100_000);
    // No binlog: this measures the client and the protocol, not fsync.
    let server = Beanstalkd::builder().binlog(false).start()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut c = Client::connect(&server.addr()).await?;
        c.use_tube("bench").await?;
        c.watch("bench").await?;
        c.ignore("default").await?;
        let body = br#"{"version":1,"video":"/data/CAMHDA301-20170614T231900.mov","output":"RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/CAMHDA301-20170614T231900_optical_flow.json","stride":10,"start":1,"stop":-1}"#;

        let t0 = Instant::now();
        for _ in 0..jobs {
            c.put(body, PutOptions::default()).await?;
        }
        let put = t0.elapsed();
        let t1 = Instant::now();
        for _ in 0..jobs {
            let job = c.reserve_with_timeout(0).await?;
            c.delete(job.id).await?;
        }
        let work = t1.elapsed();
        let total = t0.elapsed();
        let rate = |n: u64, d: std::time::Duration| n as f64 / d.as_secs_f64();
        println!("jobs: {jobs} ({} byte bodies)", body.len());
        println!("put:              {:>9.0} jobs/s", rate(jobs, put));
        println!("reserve+delete:   {:>9.0} jobs/s", rate(jobs, work));
        println!(
            "put+reserve+delete: {:>7.0} jobs/s ({:.2} s total)",
            rate(jobs, total),
            total.as_secs_f64()
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
