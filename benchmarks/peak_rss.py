"""Run a command; write its exit code, CPU seconds and peak RSS as JSON to a file.

    python -S benchmarks/peak_rss.py OUT.json COMMAND [ARGS...]

Linux gives a child the peak RSS of the process it was forked from, so a large
parent would inflate the figure of a small child; this launcher stays small.
"""

import json
import os
import sys


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w") as handle:
        json.dump(
            {
                "exit_code": os.waitstatus_to_exitcode(status),
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
