#!/usr/bin/env python3
"""Times commands side by side, one run of each in turn, so a shared machine's drift falls on all of them alike.

    benches/interleave.py N 'CMD1 ARGS' 'CMD2 ARGS' ...

A warm-up round, then N rounds (every other round in reverse order); prints each command's median wall time and
median CPU time (user + system of the process and its children). Commands are split on spaces, not run by a shell.
"""
import resource
import statistics
import subprocess
import sys
import time


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds, commands = int(sys.argv[1]), sys.argv[2:]
    wall = {c: [] for c in commands}
    cpu = {c: [] for c in commands}
    for i in range(rounds + 1):
        for c in commands if i % 2 == 0 else list(reversed(commands)):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(c.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if i == 0:
                continue
            wall[c].append(elapsed)
            cpu[c].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    for c in commands:
        print(f"{c:55s} wall median {statistics.median(wall[c]) * 1e3:9.1f} ms"
              f"  cpu median {statistics.median(cpu[c]) * 1e3:9.1f} ms  (n={len(wall[c])})")


if __name__ == "__main__":
    main()
