"""Console entry points (pyproject's scripts): stop signals end the tool with one line from its first line on, also
during the heavy imports (torch) that come before run_cli takes over."""
from __future__ import annotations

from converters.interrupts import exit_quietly_until_run


def caffe2torch() -> None:
    exit_quietly_until_run("caffe2torch")
    from converters.caffe2torch import main

    raise SystemExit(main())


def torch2caffe() -> None:
    exit_quietly_until_run("torch2caffe")
    from converters.torch2caffe import main

    raise SystemExit(main())


def family2torch() -> None:
    exit_quietly_until_run("family2torch")
    from converters.family2torch import main

    raise SystemExit(main())


def torch2mmseg() -> None:
    exit_quietly_until_run("torch2mmseg")
    from converters.torch2mmseg import main

    raise SystemExit(main())
