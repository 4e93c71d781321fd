#!/usr/bin/env python3
"""The client benchmark's twin in Python's greenstalk, for comparison.

Usage: start beanstalkd (no binlog) on PORT, then
    python3 scripts/bench-client-python.py PORT [JOBS]
"""
import sys
import time

import greenstalk

port = int(sys.argv[1])
jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
body = ('{"version":1,"video":"/data/CAMHDA301-20170614T231900.mov","output":"RS03ASHS/PN03B/'
        '06-CAMHDA301/2017/06/14/CAMHDA301-20170614T231900_optical_flow.json","stride":10,'
        '"start":1,"stop":-1}').encode()
with greenstalk.Client(("127.0.0.1", port), use="bench", watch="bench", encoding=None) as c:
    t0 = time.perf_counter()
    for _ in range(jobs):
        c.put(body, ttr=120)
    put = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(jobs):
        job = c.reserve(timeout=0)
        c.delete(job)
    work = time.perf_counter() - t1
    total = time.perf_counter() - t0
print(f"jobs: {jobs} ({len(body)} byte bodies)")
print(f"put:              {jobs / put:9.0f} jobs/s")
print(f"reserve+delete:   {jobs / work:9.0f} jobs/s")
print(f"put+reserve+delete: {jobs / total:7.0f} jobs/s ({total:.2f} s total)")
