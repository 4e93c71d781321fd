//! The analysis's end of the read-ahead: frames (or why the video could not be read) in
//! the order asked, each released from the window as it is taken; and the simple
//! read-ahead of sources that fetch no faster in parallel (`FrameStream::by_blocks`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use super::Window;
use crate::bytes::ByteSource;
use crate::video::{FrameSource, Payload};
use crate::{Deadline, ReadError};

/// Frames (or why the video could not be read) in the order asked, as the read-ahead
/// fetches them.
pub struct FrameStream {
    items: mpsc::Receiver<Result<Item, ReadError>>,
    /// Tells the read-ahead what was taken (and that the stream is gone, on drop).
    taken: Option<mpsc::Sender<Event>>,
    counter: Counter,
    /// A reader of the video for fetching more of a frame, when the source has one.
    reader: Option<Box<dyn ByteSource>>,
}

/// Where the bytes fetched are counted.
enum Counter {
    /// A reader whose clones count together (the read-ahead's and the completions').
    Source(Box<dyn ByteSource>),
    /// Updated by a thread fetching through [`FrameSource::fetch`].
    Shared(Arc<AtomicU64>),
}

/// A frame fetched, with the bytes it holds (released from the window when taken).
pub(super) struct Item {
    pub(super) frame: u64,
    pub(super) payload: Result<Payload, String>,
    pub(super) bytes: u64,
}

/// What the read-ahead hears: a request done, a frame taken, or the stream dropped.
pub(super) enum Event {
    Done(u64, Result<Vec<Vec<u8>>, ReadError>),
    Taken(u64),
    Closed,
}

impl std::fmt::Debug for FrameStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStream")
            .field("bytes_fetched", &self.bytes_fetched())
            .finish()
    }
}

impl FrameStream {
    /// The stream of a read-ahead that sends its frames to `items` and hears of those
    /// taken on `taken`; `counter` counts the bytes fetched (it and its clones).
    pub(super) fn new(
        items: mpsc::Receiver<Result<Item, ReadError>>,
        taken: mpsc::Sender<Event>,
        counter: Option<Box<dyn ByteSource>>,
        reader: Option<Box<dyn ByteSource>>,
    ) -> FrameStream {
        FrameStream {
            items,
            taken: Some(taken),
            counter: match counter {
                Some(c) => Counter::Source(c),
                None => Counter::Shared(Arc::default()),
            },
            reader,
        }
    }

    /// The next frame, waiting at most until `deadline`; `None` once every frame asked
    /// for was given.
    pub fn next(
        &mut self,
        deadline: Option<&Deadline>,
        video: &str,
    ) -> Option<Result<crate::Fetched, ReadError>> {
        let item = match deadline {
            None => self.items.recv().ok()?,
            Some(d) => match self.items.recv_timeout(d.left()) {
                Ok(item) => item,
                Err(mpsc::RecvTimeoutError::Timeout) => return Some(Err(d.exceeded(video))),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            },
        };
        Some(item.map(|item| {
            if let Some(taken) = &self.taken {
                let _ = taken.send(Event::Taken(item.bytes));
            }
            (item.frame, item.payload)
        }))
    }

    /// Bytes fetched for the video so far, more of frames (through [`FrameStream::reader`])
    /// included.
    pub fn bytes_fetched(&self) -> u64 {
        match &self.counter {
            Counter::Source(s) => s.bytes_fetched(),
            Counter::Shared(n) => n.load(Ordering::Relaxed),
        }
    }

    /// A reader of the video's bytes, for fetching more of a frame fetched in parts.
    pub fn reader(&mut self) -> Option<Box<dyn ByteSource>> {
        self.reader.take()
    }

    /// This stream, with `reader` as the reader [`FrameStream::reader`] gives.
    pub fn with_reader(mut self, reader: Box<dyn ByteSource>) -> FrameStream {
        self.reader = Some(reader);
        self
    }

    /// Fetches `frames` from `source` a few at a time on a thread of its own, at most
    /// `window.frames` ahead: for sources that fetch no faster in parallel requests of
    /// their own (lazycache, tests).
    pub fn by_blocks(
        mut source: Box<dyn FrameSource>,
        frames: Vec<u64>,
        window: Window,
    ) -> FrameStream {
        let (tx, items) = mpsc::sync_channel(window.frames);
        let fetched = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&fetched);
        let chunk = window.frames.div_ceil(2).max(1);
        let name = source.info().cache_url.clone();
        let fetch = move || {
            for block in frames.chunks(chunk) {
                let fetched_now = source.fetch(block);
                counter.store(source.bytes_fetched(), Ordering::Relaxed);
                let block = match fetched_now {
                    Ok(block) => block,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for (frame, payload) in block {
                    let item = Item {
                        frame,
                        payload,
                        bytes: 0,
                    };
                    if tx.send(Ok(item)).is_err() {
                        return;
                    }
                }
            }
        };
        let (items, taken) = match std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(fetch)
        {
            Ok(_) => (items, None),
            Err(e) => (failed(&name, format!("cannot start its thread: {e}")), None),
        };
        FrameStream {
            items,
            taken,
            counter: Counter::Shared(fetched),
            reader: None,
        }
    }

    /// A stream that gives only `error`: a read-ahead that could not start.
    pub(super) fn failed_with(error: ReadError) -> FrameStream {
        let (tx, items) = mpsc::channel();
        let _ = tx.send(Err(error));
        FrameStream {
            items,
            taken: None,
            counter: Counter::Shared(Arc::default()),
            reader: None,
        }
    }
}

/// A receiver that gives only the read-ahead error `detail` of `video`.
fn failed(video: &str, detail: String) -> mpsc::Receiver<Result<Item, ReadError>> {
    let (tx, items) = mpsc::channel();
    let _ = tx.send(Err(ReadError::ReadAhead {
        what: video.into(),
        detail,
    }));
    items
}

impl Drop for FrameStream {
    fn drop(&mut self) {
        if let Some(taken) = &self.taken {
            let _ = taken.send(Event::Closed);
        }
    }
}
