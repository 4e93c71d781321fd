//! Real-server tests of the error replies that only a malformed command provokes, which
//! the typed methods never send.

use testkit::Beanstalkd;

use super::{Client, Error};

#[tokio::test]
async fn unknown_command_bad_format_and_expected_crlf_are_typed() {
    let server = Beanstalkd::start().unwrap();
    let mut c = Client::connect(&server.addr()).await.unwrap();
    assert!(matches!(
        c.raw("frobnicate\r\n").await,
        Err(Error::UnknownCommand)
    ));
    assert!(matches!(c.raw("use -bad\r\n").await, Err(Error::BadFormat)));
    assert!(matches!(
        c.raw("put 0 0 10 x\r\n").await,
        Err(Error::BadFormat)
    ));
    // Says 3 bytes, sends 4: the server finds "d\r" where it wants CR LF.
    assert!(matches!(
        c.raw("put 0 0 10 3\r\nabcd\r\n").await,
        Err(Error::ExpectedCrlf)
    ));
}
