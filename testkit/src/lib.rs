//! Fixtures that own real servers for the length of a test: beanstalkd and a small HTTP
//! server, each on a free loopback port, ready before use, stopped on drop.

mod beanstalkd;
pub mod bin;
pub mod git;
pub mod http;
mod port;

pub use beanstalkd::{Beanstalkd, BeanstalkdBuilder};
pub use port::free_port;
