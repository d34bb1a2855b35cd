#!/usr/bin/env python3
"""Migrates one QEMU to another over QMP and prints QEMU's own figures as JSON.

    qemu_migrate.py SRC_QMP_SOCKET DST_QMP_SOCKET URI

Both QEMUs must be running (the destination with -incoming URI). Turns the return
path on, so the source waits for the destination's verdict, and lifts QEMU's default
bandwidth limit (128 MiB/s).
"""
import json, socket, sys, time


class QMP:
    def __init__(self, path, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.f = self.s.makefile('rw')
        self.f.readline()
        self.cmd('qmp_capabilities')

    def cmd(self, name, **args):
        self.f.write(json.dumps({'execute': name, **({'arguments': args} if args else {})}) + '\n')
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if 'event' in r:
                continue
            if 'error' in r:
                raise RuntimeError('%s: %s' % (name, r['error']))
            return r['return']


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    src, dst = QMP(sys.argv[1]), QMP(sys.argv[2])
    for q in (src, dst):
        q.cmd('migrate-set-capabilities', capabilities=[{'capability': 'return-path', 'state': True}])
    # QEMU throttles migration to 128 MiB/s by default; mdevsim migrate has no such limit, and its
    # --max-downtime 300 matches QEMU's default downtime-limit.
    src.cmd('migrate-set-parameters', **{'max-bandwidth': 1 << 40})
    t0 = time.time()
    src.cmd('migrate', uri=sys.argv[3])
    while True:
        r = src.cmd('query-migrate')
        if r.get('status') in ('completed', 'failed', 'cancelled'):
            break
        time.sleep(0.01)
    wall = time.time() - t0
    ok = r['status'] == 'completed'
    print(json.dumps({'status': r['status'], 'wall_seconds': wall, 'total_ms': r.get('total-time'),
                      'downtime_ms': r.get('downtime'), 'ram_bytes': r.get('ram', {}).get('transferred')}))
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
