"""What the job tests share: waiting for a dashboard job (`interp.jobs`) to reach a state."""

from __future__ import annotations

import time

from interp import jobs


def wait_job(root, job_id: str, until, timeout: float = 60.0) -> jobs.JobInfo:
    """Poll job `job_id` under `root` (None: the user data dir) until `until(JobInfo)` holds; fail after `timeout` s."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        j = jobs.get(job_id, root)
        if until(j):
            return j
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached the state asked for: {jobs.get(job_id, root)}")
