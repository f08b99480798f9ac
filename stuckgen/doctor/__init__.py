"""Gather every piece of evidence and rank the causes: configuration, scan, step log, probe, Vercel.

One module per source of evidence, each turning what it read into ranked findings:

- ``report``: the ``DoctorReport`` and its ``RankedFinding``s
- ``gather``: ``diagnose`` (every source in its turn) and ``gather`` (opens them through a session)
- ``config``: the configuration as shown, and its own findings
- ``database``: mapping, scan, server, queues, audit table; ``stuck``, ``trigger`` and ``queues`` read
  the stuck classes, the rows failed at the trigger and the job-queue libraries into findings
- ``deadline``, ``provider``, ``probe``, ``vercel``: dead workers, the provider, the deployment, Vercel
- ``ranking``: how findings are ranked and the plan drawn from them
"""

from stuckgen.doctor.gather import diagnose, exit_code, gather
from stuckgen.doctor.report import ConfigFact, DoctorReport, RankedFinding

__all__ = ["ConfigFact", "DoctorReport", "RankedFinding", "diagnose", "exit_code", "gather"]
