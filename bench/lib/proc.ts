/**
 * CPU time and memory of another process, read from Linux's /proc (the benchmark measures the hub
 * and redis-server from outside, as an operator would with `ps`).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU seconds used by `pid` so far; NaN when /proc cannot tell. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

function statusKb(pid: number, key: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident set size of `pid` in MiB (VmHWM). */
export function peakRssMiB(pid: number): number {
  return statusKb(pid, 'VmHWM') / 1024;
}

/**
 * Time the main thread of `pid` (the one whose id is the pid: a Node process's event loop, Redis's
 * command loop) has spent on a CPU and runnable but waiting for one, in seconds, from
 * `/proc/<pid>/task/<pid>/schedstat`; NaN when the kernel does not keep it.
 */
function mainThreadSeconds(pid: number): { run: number; wait: number } {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    if (!Number.isFinite(run) || !Number.isFinite(wait)) return { run: Number.NaN, wait: Number.NaN };
    return { run: (run as number) / 1e9, wait: (wait as number) / 1e9 };
  } catch {
    return { run: Number.NaN, wait: Number.NaN };
  }
}

/** What `cpuWindow(pid).stop()` reports. */
export interface CpuUse {
  /** User + system CPU seconds of the whole process (every thread) over the window. */
  cpuSec: number;
  /** `cpuSec` as a share of one core, in %. */
  corePct: number;
  /**
   * Of `cpuSec`, the main thread's (an event loop runs on one thread, so this is the part that
   * cannot spread over cores); the rest went to helper threads (libuv's pool, V8's GC and compiler).
   */
  mainCpuSec: number;
  /** Seconds the main thread was ready to run but waited for a CPU that other threads held. */
  mainWaitSec: number;
}

/** A window of CPU use of `pid`: `stop()` gives what it used since the window was opened. */
export function cpuWindow(pid: number): { stop(): CpuUse } {
  const cpu0 = cpuSeconds(pid);
  const main0 = mainThreadSeconds(pid);
  const t0 = performance.now();
  return {
    stop() {
      const cpuSec = cpuSeconds(pid) - cpu0;
      const main = mainThreadSeconds(pid);
      const wallSec = (performance.now() - t0) / 1000;
      return { cpuSec, corePct: (100 * cpuSec) / wallSec, mainCpuSec: main.run - main0.run, mainWaitSec: main.wait - main0.wait };
    },
  };
}

/** The machine's CPU tick counters from the first line of /proc/stat; undefined when unreadable. */
function hostTicks(): { steal: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    // cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    // counted in user, so the first eight fields are the whole.
    const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return undefined;
    return { steal: fields[7] as number, total: fields.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/**
 * A window of the whole machine's CPU: `stop()` gives the share of every vCPU's time that the
 * hypervisor gave to someone else (steal), in %. On a shared host this is what makes runs minutes
 * apart incomparable, so the throughput rows report it next to their rates. NaN off Linux.
 */
export function stealWindow(): { stop(): number } {
  const t0 = hostTicks();
  return {
    stop() {
      const t1 = hostTicks();
      if (t0 === undefined || t1 === undefined || t1.total === t0.total) return Number.NaN;
      return (100 * (t1.steal - t0.steal)) / (t1.total - t0.total);
    },
  };
}
