//! A byte source for the read-ahead's specs whose requests the test paces and looks
//! at, and a parts planner that declines some frames.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Video;
use crate::bytes::ByteSource;
use crate::video::PartsPlanner;
use crate::ReadError;

/// What the test sees of the requests: how many are in flight (and the most ever),
/// the bytes served, and a count of requests the test lets finish.
pub(super) struct Wire {
    pub(super) in_flight: AtomicUsize,
    pub(super) most: AtomicUsize,
    /// Bytes asked for (counted when a request starts).
    pub(super) asked: AtomicU64,
    pub(super) served: AtomicU64,
    /// Requests made.
    pub(super) requests: AtomicU64,
    /// Requests allowed to finish (`u64::MAX`: all).
    pub(super) allowed: Mutex<u64>,
    pub(super) changed: Condvar,
    /// Ranges one request takes at most.
    pub(super) per_request: usize,
    /// Requests for several ranges after this many requests are refused as a server
    /// without multi-range support refuses them.
    pub(super) multi_until: u64,
    /// Checked at the start of every request, with its ranges.
    pub(super) check: Option<Check>,
}

impl Default for Wire {
    fn default() -> Wire {
        Wire {
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            asked: AtomicU64::new(0),
            served: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            allowed: Mutex::new(0),
            changed: Condvar::new(),
            per_request: usize::MAX,
            multi_until: u64::MAX,
            check: None,
        }
    }
}

impl Wire {
    pub(super) fn open() -> Wire {
        Wire {
            allowed: Mutex::new(u64::MAX),
            ..Wire::default()
        }
    }

    pub(super) fn allow(&self, n: u64) {
        let mut allowed = self.allowed.lock().unwrap();
        *allowed = allowed.saturating_add(n);
        self.changed.notify_all();
    }

    /// Waits until `pred` holds (a minute at most: a hang fails the test).
    pub(super) fn wait_for(&self, what: &str, pred: impl Fn(&Wire) -> bool) {
        let started = Instant::now();
        while !pred(self) {
            assert!(started.elapsed() < Duration::from_secs(60), "never {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A look at a request's ranges as it starts (it may hold the request).
pub(super) type Check = Box<dyn Fn(&[(u64, usize)]) + Send + Sync>;

/// Byte `i` of every paced file.
pub(super) fn byte_at(i: u64) -> u8 {
    (i % 251) as u8
}

/// A file of `len` bytes (byte i is [`byte_at`]) whose requests the test paces.
struct Paced {
    len: u64,
    wire: Arc<Wire>,
    connections: usize,
}

impl ByteSource for Paced {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = byte_at(offset + i as u64);
        }
        Ok(())
    }
    fn bytes_fetched(&self) -> u64 {
        self.wire.served.load(Ordering::SeqCst)
    }
    fn name(&self) -> &str {
        "paced"
    }
    fn requests_in_flight(&self) -> usize {
        self.connections
    }
    fn ranges_per_request(&self, ranges: &[(u64, usize)]) -> usize {
        ranges.len().clamp(1, self.wire.per_request)
    }
    fn read_request(&mut self, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, ReadError> {
        assert!(ranges.len() <= self.wire.per_request, "{ranges:?}");
        if let Some(check) = &self.wire.check {
            check(ranges);
        }
        let bytes: u64 = ranges.iter().map(|&(_, l)| l as u64).sum();
        self.wire.asked.fetch_add(bytes, Ordering::SeqCst);
        let n = self.wire.requests.fetch_add(1, Ordering::SeqCst);
        let now = self.wire.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.wire.most.fetch_max(now, Ordering::SeqCst);
        {
            let mut allowed = self.wire.allowed.lock().unwrap();
            while *allowed == 0 {
                allowed = self.wire.changed.wait(allowed).unwrap();
            }
            *allowed -= 1;
        }
        let out = if ranges.len() > 1 && n >= self.wire.multi_until {
            Err(ReadError::NoMultiRange {
                url: "paced".into(),
                detail: "the whole file".into(),
            })
        } else {
            self.wire.served.fetch_add(bytes, Ordering::SeqCst);
            self.read_ranges(ranges)
        };
        self.wire.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }
    fn try_clone(&self) -> Option<Box<dyn ByteSource>> {
        Some(Box::new(Paced {
            len: self.len,
            wire: Arc::clone(&self.wire),
            connections: self.connections,
        }))
    }
}

/// `count` frames of `size` bytes, every 10th of a file of such frames.
pub(super) fn video(wire: &Arc<Wire>, connections: usize, count: u64, size: usize) -> Video {
    let frames = (0..count)
        .map(|i| (1 + 10 * i, (10 * i * size as u64, size)))
        .collect();
    Video {
        bytes: Box::new(Paced {
            len: 10 * count * size as u64,
            wire: Arc::clone(wire),
            connections,
        }),
        frames,
        planner: None,
        name: "paced".into(),
    }
}

/// Plans two ranges of every frame (one overlapping its 64-byte head), and declines
/// frames whose first byte is a multiple of 3, as the reduced decoder's planner
/// declines an interlaced frame's table.
pub(super) struct Declining;

pub(super) const HEAD: usize = 64;

impl Declining {
    pub(super) fn declines(first_byte: u8) -> bool {
        first_byte.is_multiple_of(3)
    }
    pub(super) fn ranges() -> Vec<(usize, usize)> {
        vec![(0, 100), (400, 50)]
    }
}

impl PartsPlanner for Declining {
    fn head_len(&self) -> usize {
        HEAD
    }
    fn plan(&self, head: &[u8], _len: usize) -> Option<Vec<(usize, usize)>> {
        (!Declining::declines(head[0])).then(Declining::ranges)
    }
}
