//! Fixtures that own real servers for the length of a test: beanstalkd, nginx as the
//! archive, a small HTTP server (with a gate that holds frames until the test lets go)
//! and a TCP proxy that cuts or blackholes connections (or is a distant link, counting
//! them), each on a free loopback port, stopped on drop; and the grid fixture the end-to-end tests share (`world`: a world, its processes, a flow
//! document; `clip`: ProRes clips).

mod beanstalkd;
pub mod bin;
pub mod clip;
pub mod gate;
pub mod git;
pub mod http;
pub mod nginx;
mod port;
pub mod proxy;
pub mod stunnel;
pub mod world;

pub use beanstalkd::{Beanstalkd, BeanstalkdBuilder};
pub use gate::{files_with_gate, Gate};
pub use nginx::{Nginx, NginxOptions};
pub use port::free_port;
pub use proxy::{Link, Proxy};
pub use world::{flow_document, Proc, World};
