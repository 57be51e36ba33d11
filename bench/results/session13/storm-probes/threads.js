// Samples per-thread CPU (utime+stime) of all processes whose cmdline matches argv[2], over argv[3] seconds after argv[4] s delay.
const fs = require('fs');
const pat = new RegExp(process.argv[2]); const secs = Number(process.argv[3] || 4); const delay = Number(process.argv[4] || 0);
const tick = 100;
function snap() {
  const out = new Map();
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd; try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { continue; }
    if (!pat.test(cmd) || pid == process.pid) continue;
    let tasks; try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const t of tasks) {
      try {
        const s = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
        const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
        const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
        out.set(`${pid}/${t}`, { pid, cmd: cmd.slice(0, 140), comm, cpu: Number(f[11]) + Number(f[12]), vcs: 0 });
        const st = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
        out.get(`${pid}/${t}`).vcs = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(st)[1]);
      } catch {}
    }
  }
  return out;
}
setTimeout(() => {
  const a = snap();
  setTimeout(() => {
    const b = snap();
    const rows = [];
    for (const [k, v] of b) { const o = a.get(k); if (!o) continue; const d = (v.cpu - o.cpu) / tick / secs; const w = (v.vcs - o.vcs) / secs; if (d > 0.005 || w > 100) rows.push([v.pid, v.comm, d, w, v.cmd]); }
    rows.sort((x, y) => x[0] - y[0] || y[2] - x[2]);
    let tot = 0; for (const r of rows) { tot += r[2]; console.log(r[0], r[1].padEnd(16), (r[2] * 100).toFixed(1).padStart(6) + '%', String(Math.round(r[3])).padStart(7) + ' wakes/s', r[4].slice(0, 90)); }
    console.log('total', (tot * 100).toFixed(1) + '%');
  }, secs * 1000);
}, delay * 1000);
