#!/usr/bin/env python3
"""Writes the hand-made flow documents of the regions fixtures into flow/: the edge cases
issue 18 names and seeded random walks through every kind of move. Deterministic (the
same files on every run); any Python 3. The documents from real analyses of generated
clips come from make-clips; the original's regions for all of them from make-expected.py.
"""

import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "flow")

STILL = (1.0, 0.0, 0.5, -0.5)
MOVES = {
    "W": (1.0, 0.0, 30.0, 0.0), "E": (1.0, 0.0, -30.0, 0.0),
    "N": (1.0, 0.0, 0.0, 30.0), "S": (1.0, 0.0, 0.0, -30.0),
    "NW": (1.0, 0.0, 30.0, 30.0), "SW": (1.0, 0.0, 30.0, -30.0),
    "NE": (1.0, 0.0, -30.0, 30.0), "SE": (1.0, 0.0, -30.0, -30.0),
    "zoom_in": (1.2, 0.0, 0.0, 0.0), "zoom_out": (0.8, 0.0, 0.0, 0.0),
    "unknown": (1.02, 0.0, 5.0, 5.0),
}


def entry(frame, sim, valid=True, extra=None):
    flow = {
        "fromFrame": max(1, frame - 5), "toFrame": frame + 5, "imgScale": 0.25,
        "flowScale": 1.0, "center": [-960.0, -540.0], "similarity": list(sim),
        "valid": valid, "performance": {"timing": {"elapsedSeconds": 0.01}},
    }
    flow.update(extra or {})
    return {"frameNumber": frame, "durationSeconds": 0.01, "opticalFlow": flow}


def document(name, entries):
    frames = [e["frameNumber"] for e in entries]
    return {
        "contents": {"movie": "1.0", "frameStats": {"opticalFlow": "1.1"},
                     "performance": {"timing": "1.0", "hostinfo": "1.1"}, "analysis": "1.0"},
        "frameStats": entries,
        "movie": {"URL": "/RS03ASHS/PN03B/06-CAMHDA301/2017/06/14/%s.mov" % name,
                  "cacheURL": "fixture", "Duration": (max(frames) + 10) / 29.97,
                  "NumFrames": max(frames) + 10},
        "performance": {"timing": {"elapsedSeconds": 1.0, "startTime": "2017-06-14T00:00:00Z",
                                   "endTime": "2017-06-14T00:00:01Z"},
                        "hostinfo": {"hostname": "fixture", "cpu": "fixture"}},
        "analysis": {"software": "make-flow.py", "version": "1", "method": "hand-made",
                     "stride": 10, "start": 1, "stop": -1, "pairGap": 10, "imgScale": 0.25,
                     "decoder": "none", "validEntries": sum(e["opticalFlow"]["valid"] for e in entries)},
    }


def run(spec, stride=10, first=1):
    """Entries from [(count, similarity, valid)] laid end to end."""
    out, frame = [], first
    for count, sim, valid in spec:
        for _ in range(count):
            out.append(entry(frame, sim, valid))
            frame += stride
    return out


def edge_cases():
    m = MOVES
    yield "no_valid", run([(30, STILL, False)])
    yield "all_static", run([(60, STILL, True)])
    yield "moves_at_both_ends", run([(8, m["W"], True), (20, STILL, True), (6, m["NE"], True),
                                     (20, STILL, True), (9, m["S"], True)])
    # A move from 101 to 131 spans exactly delta = 30 frames and is squashed; the next
    # one (from 301 to 332) spans 31 and stays.
    e = run([(10, STILL, True), (3, m["E"], True), (17, STILL, True)])
    e += [entry(301, m["W"], True), entry(311, m["W"], True), entry(321, m["W"], True)]
    e += [entry(332 + 10 * i, STILL, True) for i in range(10)]
    yield "move_of_exactly_delta", e
    yield "move_of_one_entry", run([(10, STILL, True), (1, m["W"], True), (5, STILL, False),
                                    (10, STILL, True)])
    yield "move_with_no_valid_entry", run([(10, STILL, True), (5, m["N"], False),
                                           (10, STILL, True)])
    yield "lone_stable_entries", run([(10, STILL, True), (3, m["SE"], True), (1, STILL, True),
                                      (3, m["SE"], True), (10, STILL, True)])
    # Thresholds exactly: translation 6,8 (squared 100: not stable), scale 0.99 and
    # 1.01 (|s-1| is not below 0.01), means of exactly 10 and 1.05.
    yield "thresholds", run([(10, STILL, True), (4, (1.0, 0.0, 6.0, 8.0), True), (10, STILL, True),
                             (4, (0.99, 0.0, 0.0, 0.0), True), (10, STILL, True),
                             (4, (1.01, 0.0, 0.0, 0.0), True), (10, STILL, True),
                             (4, (1.05, 0.0, 10.0, -10.0), True), (10, STILL, True),
                             (4, (0.95, 0.0, 10.000001, 0.0), True), (10, STILL, True)])
    shuffled = run([(12, STILL, True), (10, m["zoom_in"], True), (12, STILL, True),
                    (10, m["NW"], True), (12, STILL, True)], stride=5, first=3)
    random.Random(7).shuffle(shuffled)
    yield "stride_5_unsorted", shuffled
    # Keys only some entries have still make columns (and so region sizes).
    odd = run([(10, STILL, True), (4, m["SW"], True), (10, STILL, True)])
    odd[3]["opticalFlow"]["note"] = "only here"
    del odd[12]["opticalFlow"]["center"]
    odd[20]["opticalFlow"]["valid"] = False
    odd[20]["opticalFlow"]["debug"] = {"a": 1}
    yield "uneven_keys", odd


def random_walk(seed, n):
    """Stills and moves of random kinds and lengths, with noise, invalid entries and an
    occasional skipped frame."""
    rng = random.Random(seed)
    stride = rng.choice([10, 10, 10, 7, 12])
    entries, frame = [], 1
    while len(entries) < n:
        kind = rng.choice(["still"] * 4 + list(MOVES))
        base = STILL if kind == "still" else MOVES[kind]
        for _ in range(rng.randint(1, 25)):
            sim = [base[0] + rng.gauss(0, 0.003), base[1] + rng.gauss(0, 0.001),
                   base[2] + rng.gauss(0, 2.0), base[3] + rng.gauss(0, 2.0)]
            valid = rng.random() > 0.05
            if not valid:
                sim = [1.0, 0.0, 0.0, 0.0]
            entries.append(entry(frame, sim, valid))
            frame += stride + (rng.randint(1, 30) if rng.random() < 0.03 else 0)
    return entries


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = list(edge_cases()) + [("random_%d" % s, random_walk(s, 200)) for s in range(1, 7)]
    for name, entries in cases:
        path = os.path.join(OUT, name + "_optical_flow.json")
        with open(path, "w") as f:
            json.dump(document(name, entries), f)
            f.write("\n")
    print("wrote %d flow documents to %s" % (len(cases), OUT))


if __name__ == "__main__":
    main()
