"""Imported at start-up by every Python process whose PYTHONPATH begins with this folder
(the clock-skew drill's workers and beat): when ``GRANTLEDGER_DRILL_CLOCK_OFFSET`` is set,
the wall clock (``time.time``, ``datetime.now`` ...) runs that many seconds off, as on a
host whose clock is wrong; monotonic clocks are left alone. Uses time-machine, because
libfaketime breaks Python's timed waits (``time.sleep``, ``Event.wait``).
"""

import os

_offset = float(os.environ.get("GRANTLEDGER_DRILL_CLOCK_OFFSET") or 0)
if _offset:
    import time

    import time_machine

    time_machine.travel(time.time() + _offset, tick=True).start()
