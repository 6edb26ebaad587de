"""What the bench scripts share: round-robin timing and how much CPU other processes used."""
import os, statistics, time

def cpu_seconds():
    "CPU seconds used so far by the whole machine (from /proc/stat) and by this process"
    with open('/proc/stat') as f: v = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(v) - v[3] - v[4]) / os.sysconf('SC_CLK_TCK')  # all but idle and iowait
    t = os.times()
    return busy, t.user + t.system

def round_robin(fns:dict, rounds:int, warmup:int=1)->dict:
    "Wall times of each of `fns`: `warmup` untimed calls each, then `rounds` rounds whose order rotates every round"
    names = list(fns)
    for _ in range(warmup):
        for f in fns.values(): f()
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter(); fns[n](); times[n].append(time.perf_counter() - t)
    return times

def paired_ratio(times:dict, n:str, ref:str)->float:
    "Median over rounds of `times[n]/times[ref]`: a slow drift in machine load cancels within each round"
    return statistics.median(t/b for t, b in zip(times[n], times[ref]))
