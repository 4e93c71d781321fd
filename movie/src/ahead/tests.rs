//! Specs of the read-ahead against a paced byte source: requests in flight, the window
//! in frames and bytes, whole frames and parts, frames the planner declines, and a
//! server that stops answering multi-range requests mid-stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::paced::{byte_at, video, Declining, Wire, HEAD};
use super::*;
use crate::video::Payload;

/// Checks frame `n` of [`video`]'s frames: whole (all of it, right bytes) or in
/// the parts [`Declining`] plans (the right bytes where fetched); gives whether whole.
fn check_frame(n: u64, size: usize, payload: &Payload) -> bool {
    let at = 10 * n * size as u64;
    match payload {
        Payload::Prores(bytes) => {
            assert_eq!(bytes.len(), size, "frame #{n}");
            assert!(
                bytes
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == byte_at(at + i as u64)),
                "frame #{n}'s bytes"
            );
            true
        }
        Payload::ProresParts(parts) => {
            assert_eq!((parts.at, parts.len), (at, size), "frame #{n}");
            let covered: Vec<(usize, usize)> =
                parts.fetched.iter().map(|(o, b)| (*o, b.len())).collect();
            assert_eq!(covered, Declining::ranges(), "frame #{n}'s parts");
            for (o, bytes) in &parts.fetched {
                assert!(
                    bytes
                        .iter()
                        .enumerate()
                        .all(|(i, &b)| b == byte_at(at + (o + i) as u64)),
                    "frame #{n}'s part at {o}"
                );
            }
            false
        }
        Payload::Image(_) => panic!("frame #{n}: an image"),
    }
}

/// Takes every frame of a stream of `count`, checking each; gives how many came whole.
fn take_all(stream: &mut FrameStream, count: u64, size: usize) -> usize {
    let mut whole = 0;
    for n in 0..count {
        let (frame, payload) = stream.next(None, "paced").unwrap().unwrap();
        assert_eq!(frame, 1 + 10 * n, "in order, each once");
        whole += usize::from(check_frame(n, size, &payload.unwrap()));
    }
    assert!(stream.next(None, "paced").is_none(), "every frame, once");
    whole
}

#[test]
fn as_many_requests_as_allowed_are_in_flight_never_more() {
    let wire = Arc::new(Wire::default());
    let mut stream = start(video(&wire, 5, 200, 1000), Window::frames(100));
    // Nothing finishes until the test says so: the read-ahead asks for as many as it
    // may (one connection each), and then waits.
    wire.wait_for("five requests in flight", |w| {
        w.in_flight.load(Ordering::SeqCst) == 5
    });
    wire.allow(u64::MAX);
    assert_eq!(take_all(&mut stream, 200, 1000), 200);
    assert_eq!(wire.most.load(Ordering::SeqCst), 5);
}

#[test]
fn what_is_fetched_and_not_taken_stays_within_the_window() {
    let wire = Arc::new(Wire::open());
    let window = Window {
        frames: 1000,
        bytes: 100_000,
    };
    let mut stream = start(video(&wire, 8, 300, 7_000), window);
    // Nothing is taken until the read-ahead has had all it may: the window, and one
    // frame more at most (asked for while the window had room for less).
    wire.wait_for("the read-ahead fill its window", |w| {
        w.served.load(Ordering::SeqCst) > window.bytes - 7_000
            && w.in_flight.load(Ordering::SeqCst) == 0
    });
    let limit = window.bytes + 7_000;
    assert!(wire.asked.load(Ordering::SeqCst) <= limit);
    let mut taken = 0u64;
    while let Some(next) = stream.next(None, "paced") {
        assert!(next.is_ok());
        // The read-ahead may hear of this frame before `taken` counts it.
        let held = wire.asked.load(Ordering::SeqCst) - taken;
        assert!(held <= limit + 7_000, "{held} bytes held, {taken} taken");
        taken += 7_000;
    }
    assert_eq!(taken, 300 * 7_000);
}

#[test]
fn a_frame_the_planner_declines_comes_whole_once_in_order() {
    // The read-ahead once handed such a frame over with its head only, and panicked
    // when its whole bytes came after (issue 33). Here a whole frame's request is held
    // until the test waits for that very frame, so it always comes after.
    const SIZE: usize = 1000;
    const WINDOW: usize = 12;
    // A held request holds its connection: enough connections that parts still pass
    // while every declined frame of the window waits.
    let declined_at = |n: u64| Declining::declines(byte_at(10 * n * SIZE as u64));
    let most_held = (0..240 - WINDOW as u64)
        .map(|n| (n..n + WINDOW as u64).filter(|&k| declined_at(k)).count())
        .max()
        .unwrap();
    for connections in [most_held + 1, most_held + 4] {
        let taking = Arc::new(AtomicU64::new(0));
        let waiting = Arc::clone(&taking);
        let wire = Arc::new(Wire {
            per_request: 7,
            check: Some(Box::new(move |ranges| {
                if let [(at, SIZE)] = ranges {
                    let k = at / (10 * SIZE as u64);
                    let started = Instant::now();
                    while waiting.load(Ordering::SeqCst) <= k {
                        assert!(started.elapsed() < Duration::from_secs(60), "frame #{k}");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })),
            ..Wire::open()
        });
        let mut v = video(&wire, connections, 240, SIZE);
        let declined = v
            .frames
            .iter()
            .filter(|(_, (at, _))| Declining::declines(byte_at(*at)))
            .count();
        assert!(declined > 20 && declined < 200, "{declined} declined");
        v.planner = Some(Arc::new(Declining));
        let mut stream = start(v, Window::frames(WINDOW));
        let mut whole = 0;
        for n in 0..240 {
            taking.store(n + 1, Ordering::SeqCst);
            let (frame, payload) = stream.next(None, "paced").unwrap().unwrap();
            assert_eq!(frame, 1 + 10 * n, "in order, each once");
            whole += usize::from(check_frame(n, SIZE, &payload.unwrap()));
        }
        assert!(stream.next(None, "paced").is_none(), "every frame, once");
        assert_eq!(whole, declined, "{connections} connections");
    }
}

#[test]
fn parts_are_planned_no_further_ahead_than_the_window_in_frames() {
    const SIZE: usize = 1000;
    let window = Window::frames(8);
    // Frames the test has taken or is taking: the read-ahead has heard of no more.
    let taking = Arc::new(AtomicU64::new(0));
    let (seen, beyond) = (Arc::clone(&taking), Arc::new(AtomicU64::new(0)));
    let over = Arc::clone(&beyond);
    let wire = Arc::new(Wire {
        per_request: 5,
        check: Some(Box::new(move |ranges| {
            // A range past a frame's head is a part (or the whole frame) of a frame planned.
            let limit = seen.load(Ordering::SeqCst) + window.frames as u64;
            for &(at, len) in ranges {
                let (n, offset) = (at / (10 * SIZE as u64), at % (10 * SIZE as u64));
                if (offset > 0 || len > HEAD) && n >= limit {
                    over.fetch_add(1, Ordering::SeqCst);
                }
            }
        })),
        ..Wire::open()
    });
    let mut v = video(&wire, 4, 120, SIZE);
    v.planner = Some(Arc::new(Declining));
    let mut stream = start(v, window);
    for n in 0..120 {
        taking.store(n + 1, Ordering::SeqCst);
        let (_, payload) = stream.next(None, "paced").unwrap().unwrap();
        check_frame(n, SIZE, &payload.unwrap());
    }
    assert_eq!(beyond.load(Ordering::SeqCst), 0, "ranges beyond the window");
}

#[test]
fn parts_held_and_asked_for_stay_within_the_window_in_bytes() {
    const SIZE: usize = 1000;
    // What a frame of `Declining`'s holds beyond its head: its whole bytes, or its
    // parts past the head (36 + 50 bytes).
    let held_by = |n: u64| -> u64 {
        if Declining::declines(byte_at(10 * n * SIZE as u64)) {
            SIZE as u64
        } else {
            86
        }
    };
    let window = Window {
        frames: 1000,
        bytes: 6_000,
    };
    let wire = Arc::new(Wire {
        per_request: 6,
        ..Wire::open()
    });
    let mut v = video(&wire, 6, 200, SIZE);
    v.planner = Some(Arc::new(Declining));
    let mut stream = start(v, window);
    let mut taken = 0u64;
    for n in 0..200 {
        // Counted before taking: the read-ahead cannot have heard of more.
        taken += held_by(n);
        let (_, payload) = stream.next(None, "paced").unwrap().unwrap();
        check_frame(n, SIZE, &payload.unwrap());
        // Heads are asked ahead of the window (a few hundred, ~HEAD bytes each); what
        // else is asked for and not taken stays within it and one frame more.
        let asked = wire.asked.load(Ordering::SeqCst);
        let heads = (HEAD * (n as usize + HEADS_AHEAD + 1).min(200)) as u64;
        let held = asked.saturating_sub(taken + heads);
        assert!(
            held <= window.bytes + SIZE as u64,
            "{held} bytes beyond heads held after {n} frames"
        );
    }
}

#[test]
fn a_server_that_stops_answering_several_ranges_mid_stream_gets_whole_frames() {
    for connections in [1, 4] {
        let wire = Arc::new(Wire {
            per_request: 6,
            multi_until: 12,
            ..Wire::open()
        });
        let mut v = video(&wire, connections, 150, 1000);
        v.planner = Some(Arc::new(Declining));
        let mut stream = start(v, Window::frames(16));
        let whole = take_all(&mut stream, 150, 1000);
        assert!(whole > 130, "{whole} of 150 whole after the switch");
    }
}
