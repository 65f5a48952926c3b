"""Drives Grid Engine through the real libdrmaa (Debian's python3-drmaa), for tests/drmaa.rs.

Usage: drive.py JOB_JSON [ACTION ...]

JOB_JSON describes one job template: {"command": ..., "args": [...], "env": {...},
"native": "...", "name": "...", "wd": "...", "queue": "all.q@host"}. The job is submitted, and its id printed as
"submitted ID"; when Grid Engine refuses it, "refused ERROR-CLASS: MESSAGE" (one line). Each ACTION (suspend, resume, terminate) first waits for the job to run and
for one line on stdin (the test's go-ahead, once it saw what it needed), then calls
control() and prints "done ACTION STATE". Finally wait() and one JSON line "result {...}"
with what DRMAA says about the end: hasExited, exitStatus, hasSignaled, terminatedSignal,
wasAborted.
"""

import json
import sys
import time

import drmaa

ACTIONS = {
    "suspend": drmaa.JobControlAction.SUSPEND,
    "resume": drmaa.JobControlAction.RESUME,
    "terminate": drmaa.JobControlAction.TERMINATE,
}


def say(*words):
    print(*words, flush=True)


def wait_for_state(session, job, wanted, timeout=120):
    """Polls the job's DRMAA state (the cell schedules every second)."""
    end = time.monotonic() + timeout
    while True:
        state = session.jobStatus(job)
        if state == wanted:
            return
        if time.monotonic() > end:
            raise SystemExit(f"job {job} still {state}, not {wanted}")
        time.sleep(0.5)


def main():
    spec = json.loads(sys.argv[1])
    actions = sys.argv[2:]
    with drmaa.Session() as session:
        template = session.createJobTemplate()
        template.remoteCommand = spec["command"]
        template.args = spec.get("args", [])
        template.jobEnvironment = spec.get("env", {})
        # Pinned like the harness's qsub: the test looks at this machine's engine. Nothing
        # else: libdrmaa verifies with -w e as it always does (the JSV turns it into -w w
        # for the requests of its own that -w e cannot judge).
        native = spec.get("native", "")
        template.nativeSpecification = f"-q {spec['queue']} {native}"
        template.jobName = spec["name"]
        template.workingDirectory = spec["wd"]
        # ":path" is DRMAA's "any host" form; one file for both streams.
        template.outputPath = ":" + spec["wd"] + "/" + spec["name"] + ".out"
        template.joinFiles = True
        try:
            job = session.runJob(template)
        except drmaa.errors.DrmaaException as e:
            message = " ".join(str(e).split())
            say("refused", f"{type(e).__name__}: {message}")
            return
        say("submitted", job)
        for action in actions:
            wait_for_state(session, job, drmaa.JobState.RUNNING
                           if action != "resume" else drmaa.JobState.USER_SUSPENDED)
            sys.stdin.readline()
            session.control(job, ACTIONS[action])
            say("done", action, session.jobStatus(job))
        info = session.wait(job, drmaa.Session.TIMEOUT_WAIT_FOREVER)
        say("result", json.dumps({
            "hasExited": bool(info.hasExited),
            "exitStatus": int(info.exitStatus),
            "hasSignaled": bool(info.hasSignal),
            "terminatedSignal": str(info.terminatedSignal),
            "wasAborted": bool(info.wasAborted),
        }))
        session.deleteJobTemplate(template)


if __name__ == "__main__":
    main()
