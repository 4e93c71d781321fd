//! The async beanstalkd connection: one TCP stream, one command at a time.

use std::time::Duration;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream, ReadBuf,
};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::proto::{parse_yaml_list, parse_yaml_map, Reply, MAX_REPLY_LINE};
use super::stats::{JobStats, ServerStats, TubeStats};
use super::{validate_tube_name, Error};

/// beanstalkd's own upper bound on `-z`; a data block longer than this is not real.
const MAX_DATA_BLOCK: usize = 1 << 30;

/// A job as the server hands it out: its id and its body, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJob {
    /// The server's 64-bit id.
    pub id: u64,
    /// The body, exactly as put (any bytes).
    pub body: Vec<u8>,
}

/// Priority, delay and time-to-run of a `put`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOptions {
    /// 0 is the most urgent; below 1024 counts as "urgent" in the stats.
    pub priority: u32,
    /// Seconds before the job becomes ready.
    pub delay: u32,
    /// Seconds a worker may hold the job without `touch` before it returns to ready.
    pub ttr: u32,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            priority: 1024,
            delay: 0,
            ttr: 120,
        }
    }
}

/// Timeouts of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// How long the TCP connect may take.
    pub connect_timeout: Duration,
    /// How long the server may take to answer a command (a `reserve-with-timeout` gets
    /// its own timeout on top; a plain `reserve` waits for ever). `None`: no limit.
    pub io_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            io_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// One connection to beanstalkd.
///
/// Reservations belong to the connection that made them. The methods are not
/// cancel-safe: a request dropped part-way (say, by `tokio::select!`) leaves the
/// connection marked broken, and every later call returns [`Error::Broken`].
#[derive(Debug)]
pub struct Client {
    stream: BufStream<Transport>,
    addr: String,
    io_timeout: Option<Duration>,
    broken: bool,
    /// The tube `put` goes to (`use`), as the server last confirmed it.
    used: String,
}

/// Plain TCP, or TLS over it.
#[derive(Debug)]
enum Transport {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How long a request may wait for its reply.
enum Wait {
    Io,
    Extra(Duration),
    Forever,
}

impl Client {
    /// Connects to `addr` (`host:port`) with the default timeouts.
    pub async fn connect(addr: &str) -> Result<Client, Error> {
        Client::connect_with(addr, ConnectOptions::default()).await
    }

    /// Connects to `addr` (`host:port`) with the given timeouts.
    pub async fn connect_with(addr: &str, options: ConnectOptions) -> Result<Client, Error> {
        let tcp = Client::tcp(addr, options).await?;
        Ok(Client::over(Transport::Tcp(tcp), addr, options))
    }

    /// Connects to `addr` (`host:port`) over TLS with `config`, checking the server's
    /// certificate for the name `host`.
    pub async fn connect_tls(
        addr: &str,
        config: Arc<rustls::ClientConfig>,
        options: ConnectOptions,
    ) -> Result<Client, Error> {
        let tcp = Client::tcp(addr, options).await?;
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name =
            rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| Error::Tls {
                addr: addr.to_owned(),
                detail: format!("{host:?} is not a server name: {e}"),
            })?;
        let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
        let tls = tokio::time::timeout(options.connect_timeout, handshake)
            .await
            .map_err(|_| Error::ConnectTimeout {
                addr: addr.to_owned(),
                after: options.connect_timeout,
            })?
            .map_err(|e| Error::Tls {
                addr: addr.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(Client::over(Transport::Tls(Box::new(tls)), addr, options))
    }

    fn over(transport: Transport, addr: &str, options: ConnectOptions) -> Client {
        Client {
            stream: BufStream::new(transport),
            addr: addr.to_owned(),
            io_timeout: options.io_timeout,
            broken: false,
            used: "default".to_owned(),
        }
    }

    async fn tcp(addr: &str, options: ConnectOptions) -> Result<TcpStream, Error> {
        let connect = TcpStream::connect(addr);
        let tcp = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| Error::ConnectTimeout {
                addr: addr.to_owned(),
                after: options.connect_timeout,
            })?
            .map_err(|source| Error::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Commands are small and answered one at a time; Nagle would only add latency.
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// The address this client connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `put`: adds a job to the used tube and returns its id.
    pub async fn put(&mut self, body: &[u8], options: PutOptions) -> Result<u64, Error> {
        let PutOptions {
            priority,
            delay,
            ttr,
        } = options;
        let line = format!("put {priority} {delay} {ttr} {}\r\n", body.len());
        let reply = self.request("put", &line, Some(body), Wait::Io).await?;
        match reply.word.as_str() {
            "INSERTED" => reply.num_arg(0, "put"),
            _ => Err(reply.into_error("put")),
        }
    }

    /// `use`: the tube that later `put`s go to.
    pub async fn use_tube(&mut self, tube: &str) -> Result<(), Error> {
        validate_tube_name(tube)?;
        self.expect("use", &format!("use {tube}\r\n"), "USING")
            .await?;
        tube.clone_into(&mut self.used);
        Ok(())
    }

    /// The tube `put` goes to now (`default` until [`Client::use_tube`]), known without
    /// asking the server.
    pub fn used_tube(&self) -> &str {
        &self.used
    }

    /// `reserve`: waits, without limit, for a job from the watched tubes.
    pub async fn reserve(&mut self) -> Result<RawJob, Error> {
        let reply = self.request("reserve", "reserve\r\n", None, Wait::Forever);
        job_from(reply.await?, "reserve", "RESERVED")
    }

    /// `reserve-with-timeout`: waits up to `seconds` for a job; [`Error::TimedOut`] if none
    /// came, [`Error::DeadlineSoon`] if a job this connection holds is about to time out.
    pub async fn reserve_with_timeout(&mut self, seconds: u32) -> Result<RawJob, Error> {
        let line = format!("reserve-with-timeout {seconds}\r\n");
        let wait = Wait::Extra(Duration::from_secs(seconds.into()));
        let reply = self.request("reserve-with-timeout", &line, None, wait);
        job_from(reply.await?, "reserve-with-timeout", "RESERVED")
    }

    /// `reserve-job`: reserves the job with this id, whatever tube it is in.
    pub async fn reserve_job(&mut self, id: u64) -> Result<RawJob, Error> {
        let line = format!("reserve-job {id}\r\n");
        let reply = self.request("reserve-job", &line, None, Wait::Io).await?;
        job_from(reply, "reserve-job", "RESERVED")
    }

    /// `delete`: removes a job this connection reserved (or any ready, delayed or buried job).
    pub async fn delete(&mut self, id: u64) -> Result<(), Error> {
        let line = format!("delete {id}\r\n");
        self.expect("delete", &line, "DELETED").await.map(drop)
    }

    /// `release`: puts a reserved job back, ready after `delay` seconds.
    pub async fn release(&mut self, id: u64, priority: u32, delay: u32) -> Result<(), Error> {
        let line = format!("release {id} {priority} {delay}\r\n");
        self.expect("release", &line, "RELEASED").await.map(drop)
    }

    /// `bury`: parks a reserved job until it is kicked.
    pub async fn bury(&mut self, id: u64, priority: u32) -> Result<(), Error> {
        let line = format!("bury {id} {priority}\r\n");
        self.expect("bury", &line, "BURIED").await.map(drop)
    }

    /// `touch`: restarts the TTR clock of a job this connection holds.
    pub async fn touch(&mut self, id: u64) -> Result<(), Error> {
        let line = format!("touch {id}\r\n");
        self.expect("touch", &line, "TOUCHED").await.map(drop)
    }

    /// `watch`: adds a tube to the watch list; returns how many tubes are watched.
    pub async fn watch(&mut self, tube: &str) -> Result<u64, Error> {
        validate_tube_name(tube)?;
        let line = format!("watch {tube}\r\n");
        self.expect("watch", &line, "WATCHING")
            .await?
            .num_arg(0, "watch")
    }

    /// `ignore`: removes a tube from the watch list; returns how many remain.
    pub async fn ignore(&mut self, tube: &str) -> Result<u64, Error> {
        validate_tube_name(tube)?;
        let line = format!("ignore {tube}\r\n");
        self.expect("ignore", &line, "WATCHING")
            .await?
            .num_arg(0, "ignore")
    }

    /// `peek`: the job with this id, in any state.
    pub async fn peek(&mut self, id: u64) -> Result<RawJob, Error> {
        self.peek_line("peek", &format!("peek {id}\r\n")).await
    }

    /// `peek-ready`: the next ready job in the used tube.
    pub async fn peek_ready(&mut self) -> Result<RawJob, Error> {
        self.peek_line("peek-ready", "peek-ready\r\n").await
    }

    /// `peek-delayed`: the delayed job in the used tube that is ready soonest.
    pub async fn peek_delayed(&mut self) -> Result<RawJob, Error> {
        self.peek_line("peek-delayed", "peek-delayed\r\n").await
    }

    /// `peek-buried`: the oldest buried job in the used tube.
    pub async fn peek_buried(&mut self) -> Result<RawJob, Error> {
        self.peek_line("peek-buried", "peek-buried\r\n").await
    }

    /// `kick`: moves up to `bound` buried (or, if none, delayed) jobs of the used tube to
    /// ready; returns how many moved.
    pub async fn kick(&mut self, bound: u64) -> Result<u64, Error> {
        let line = format!("kick {bound}\r\n");
        self.expect("kick", &line, "KICKED")
            .await?
            .num_arg(0, "kick")
    }

    /// `kick-job`: moves one buried or delayed job to ready.
    pub async fn kick_job(&mut self, id: u64) -> Result<(), Error> {
        let line = format!("kick-job {id}\r\n");
        self.expect("kick-job", &line, "KICKED").await.map(drop)
    }

    /// `stats`: the server's counters.
    pub async fn stats(&mut self) -> Result<ServerStats, Error> {
        let data = self.data("stats", "stats\r\n").await?;
        ServerStats::parse(&parse_yaml_map(&data))
    }

    /// `stats-job`: one job's state and counters.
    pub async fn stats_job(&mut self, id: u64) -> Result<JobStats, Error> {
        let data = self
            .data("stats-job", &format!("stats-job {id}\r\n"))
            .await?;
        JobStats::from_map(&parse_yaml_map(&data))
    }

    /// `stats-job` of many ids in one round trip: every command is sent, then every reply
    /// read in order; each id's answer (NotFound for an id the server does not hold).
    /// For walks over many ids, where one round trip each would take hours far away.
    pub async fn stats_jobs(&mut self, ids: &[u64]) -> Result<Vec<Result<JobStats, Error>>, Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        self.broken = true;
        let mut lines = String::with_capacity(ids.len() * 24);
        for id in ids {
            lines.push_str(&format!("stats-job {id}\r\n"));
        }
        let io_timeout = self.io_timeout;
        let exchange = async {
            self.stream.write_all(lines.as_bytes()).await?;
            self.stream.flush().await?;
            let mut answers = Vec::with_capacity(ids.len());
            for _ in ids {
                let reply = self.read_reply().await?;
                answers.push(if reply.word == "OK" {
                    JobStats::from_map(&parse_yaml_map(&reply.data.unwrap_or_default()))
                } else {
                    Err(reply.into_error("stats-job"))
                });
            }
            Ok::<_, Error>(answers)
        };
        // As long as one exchange may take, for each id.
        let answers = match io_timeout {
            None => exchange.await?,
            Some(io) => {
                let after = io.saturating_mul(ids.len().max(1) as u32);
                tokio::time::timeout(after, exchange)
                    .await
                    .map_err(|_| Error::ReadTimeout {
                        command: "stats-job",
                        after,
                    })??
            }
        };
        self.broken = false;
        Ok(answers)
    }

    /// `stats-tube`, `None` for a tube the server does not know: beanstalkd forgets a
    /// tube once it is empty and nobody uses it, so a missing tube counts as empty.
    pub async fn stats_tube_if_any(&mut self, tube: &str) -> Result<Option<TubeStats>, Error> {
        match self.stats_tube(tube).await {
            Ok(stats) => Ok(Some(stats)),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `stats-tube`: one tube's counters.
    pub async fn stats_tube(&mut self, tube: &str) -> Result<TubeStats, Error> {
        validate_tube_name(tube)?;
        let line = format!("stats-tube {tube}\r\n");
        let data = self.data("stats-tube", &line).await?;
        TubeStats::from_map(&parse_yaml_map(&data))
    }

    /// `list-tubes`: every tube that exists.
    pub async fn list_tubes(&mut self) -> Result<Vec<String>, Error> {
        let data = self.data("list-tubes", "list-tubes\r\n").await?;
        Ok(parse_yaml_list(&data))
    }

    /// `list-tube-used`: the tube `put` goes to.
    pub async fn list_tube_used(&mut self) -> Result<String, Error> {
        let reply = self
            .expect("list-tube-used", "list-tube-used\r\n", "USING")
            .await?;
        match reply.args.into_iter().next() {
            Some(tube) => Ok(tube),
            None => Err(Error::UnexpectedReply {
                command: "list-tube-used",
                reply: "USING".into(),
            }),
        }
    }

    /// `list-tubes-watched`: the tubes `reserve` takes from.
    pub async fn list_tubes_watched(&mut self) -> Result<Vec<String>, Error> {
        let data = self
            .data("list-tubes-watched", "list-tubes-watched\r\n")
            .await?;
        Ok(parse_yaml_list(&data))
    }

    /// `pause-tube`: hands out no job from `tube` for `seconds`.
    pub async fn pause_tube(&mut self, tube: &str, seconds: u32) -> Result<(), Error> {
        validate_tube_name(tube)?;
        let line = format!("pause-tube {tube} {seconds}\r\n");
        self.expect("pause-tube", &line, "PAUSED").await.map(drop)
    }

    /// `quit`: closes the connection; the server returns held jobs to ready.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.stream.write_all(b"quit\r\n").await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn peek_line(&mut self, command: &'static str, line: &str) -> Result<RawJob, Error> {
        let reply = self.request(command, line, None, Wait::Io).await?;
        job_from(reply, command, "FOUND")
    }

    /// Sends a command whose success reply is `OK <bytes>` and returns the data.
    async fn data(&mut self, command: &'static str, line: &str) -> Result<Vec<u8>, Error> {
        let reply = self.expect(command, line, "OK").await?;
        Ok(reply.data.unwrap_or_default())
    }

    /// Sends a command and turns any reply but `success` into its error.
    async fn expect(
        &mut self,
        command: &'static str,
        line: &str,
        success: &str,
    ) -> Result<Reply, Error> {
        let reply = self.request(command, line, None, Wait::Io).await?;
        if reply.word == success {
            Ok(reply)
        } else {
            Err(reply.into_error(command))
        }
    }

    /// Sends one command (and body) and reads one reply, within the timeout `wait` allows.
    async fn request(
        &mut self,
        command: &'static str,
        line: &str,
        body: Option<&[u8]>,
        wait: Wait,
    ) -> Result<Reply, Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        // Stays set unless the exchange completes, so that an error or a cancelled future
        // leaves the connection marked out of step.
        self.broken = true;
        let limit = match (wait, self.io_timeout) {
            (Wait::Forever, _) | (_, None) => None,
            (Wait::Io, Some(io)) => Some(io),
            (Wait::Extra(extra), Some(io)) => Some(io + extra),
        };
        let exchange = self.exchange(line.as_bytes(), body);
        let reply = match limit {
            None => exchange.await?,
            Some(after) => tokio::time::timeout(after, exchange)
                .await
                .map_err(|_| Error::ReadTimeout { command, after })??,
        };
        self.broken = false;
        Ok(reply)
    }

    async fn exchange(&mut self, line: &[u8], body: Option<&[u8]>) -> Result<Reply, Error> {
        self.stream.write_all(line).await?;
        if let Some(body) = body {
            self.stream.write_all(body).await?;
            self.stream.write_all(b"\r\n").await?;
        }
        self.stream.flush().await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> Result<Reply, Error> {
        let mut line = Vec::with_capacity(64);
        let limited = (&mut self.stream).take(MAX_REPLY_LINE as u64);
        tokio::pin!(limited);
        let n = limited.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Err(Error::ConnectionClosed);
        }
        let Some(text) = line.strip_suffix(b"\r\n") else {
            return Err(if n >= MAX_REPLY_LINE {
                Error::UnexpectedReply {
                    command: "reply",
                    reply: String::from_utf8_lossy(&line[..64]).into_owned() + "…",
                }
            } else {
                Error::ConnectionClosed
            });
        };
        let mut reply = Reply::parse_line(text);
        if let Some(len) = reply.data_len() {
            let len = match len.parse::<usize>() {
                Ok(len) if len <= MAX_DATA_BLOCK => len,
                _ => return Err(reply.into_error("reply")),
            };
            reply.data = Some(self.read_data(len).await?);
        }
        Ok(reply)
    }

    async fn read_data(&mut self, len: usize) -> Result<Vec<u8>, Error> {
        let mut data = vec![0; len + 2];
        match self.stream.read_exact(&mut data).await {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Error::ConnectionClosed)
            }
            other => other?,
        };
        if !data.ends_with(b"\r\n") {
            return Err(Error::UnexpectedReply {
                command: "reply",
                reply: "data block not followed by CR LF".into(),
            });
        }
        data.truncate(len);
        Ok(data)
    }
}

fn job_from(reply: Reply, command: &'static str, success: &str) -> Result<RawJob, Error> {
    if reply.word != success {
        return Err(reply.into_error(command));
    }
    let id = reply.num_arg(0, command)?;
    Ok(RawJob {
        id,
        body: reply.data.unwrap_or_default(),
    })
}

/// Sends a raw command line for the tests of replies the typed methods never provoke.
#[cfg(test)]
impl Client {
    pub(crate) async fn raw(&mut self, line: &str) -> Result<(), Error> {
        let reply = self.request("raw", line, None, Wait::Io).await?;
        Err(reply.into_error("raw"))
    }
}
