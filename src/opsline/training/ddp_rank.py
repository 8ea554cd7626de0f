"""Entry point of a rank that opsline launched: ``python -m opsline.training.ddp_rank
RECIPE [OVERRIDES ...]`` (started by :class:`opsline.training.distributed.LocalRanks`,
never by hand).

The rank composes the same config and runs the same ``pipeline.train``; with ``RANK`` ≠ 0
in its environment that trains its shard and nothing else. The exit code is all rank 0
reads: 0 done, 1 failed (the traceback is in this rank's log file).
"""

from __future__ import annotations

import os
import sys
import traceback


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    code = 0
    try:
        from opsline import pipeline

        pipeline.train(args[0], args[1:])
    except BaseException:  # noqa: BLE001 - any failure is this rank's exit code
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: it could wait on the process group's threads after a peer
    # has gone; there is nothing left to save (ranks ≠ 0 write nothing).
    os._exit(code)


if __name__ == "__main__":
    main()
