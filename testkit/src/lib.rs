//! Fixtures that own real servers for the length of a test: start on a free loopback
//! port, wait until ready, keep the server's log, kill on drop.

mod beanstalkd;
pub mod bin;
mod port;

pub use beanstalkd::{Beanstalkd, BeanstalkdBuilder};
pub use port::free_port;
