"""Fault drills (docs/DESIGN.md section 10): a real workload on real worker processes, Redis,
PostgreSQL and the sandbox; a fault; then the invariants (``ops.drills.invariants``).

    python -m ops.drills all            # every drill, the report as a table
    python -m ops.drills redis-flushall kill9-main-worker --quick
    python -m ops.drills --list

Modules: ``services`` (private redis-server / PostgreSQL cluster), ``stack`` (the harness,
shared with the benchmarks), ``workload``, ``invariants``, ``runner``, ``catalog`` (the
drills), ``tenfold`` (the Celery app that publishes every task ten times).
"""
