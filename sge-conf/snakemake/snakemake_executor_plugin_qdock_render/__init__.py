"""What `submit` asks Snakemake about one cluster job before it is queued.

`submit` runs the job's own remote command (the `python -m snakemake ... --mode remote`
line of Snakemake's job script) on the submit host with `--executor qdock-render` added and
this directory on PYTHONPATH. Snakemake then reads the workflow and builds the job exactly
as the remote run would, and hands it to this executor instead of running it. The executor
writes `$QDOCK_RENDER.plan`, shell assignments `submit` sources:

    kind=native      no job of the script asks for a container: queue the script as is
    kind=container   one shell rule with `container:`: queue `$QDOCK_RENDER.job`, which
                     runs just the rule's command, with IMAGE=$image in $workdir
    kind=refused     a container was asked for where only Snakemake can run the rule; $why

plus `threads`. For a container job it first does what the remote Snakemake does before
the command (`Job.prepare`: stale outputs removed, output and log directories made), since
no Snakemake runs in the image. Then it ends the process: the job is queued, not run here.
"""

import os
import shlex

from snakemake_interface_executor_plugins.executors.real import RealExecutor
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecMode

common_settings = CommonSettings(
    non_local_exec=False,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
)

DOCKER_SCHEME = "docker://"
# Container URIs that name no Docker image (Apptainer's own sources, files).
OTHER_SCHEMES = ("shub://", "library://", "oras://", "http://", "https://", "file://")
# What Snakemake puts before every shell command when its shell is bash.
BASH_PREFIX = "set -euo pipefail;"
# The same, as far as a POSIX sh knows it (dash has no pipefail).
STRICT_SH = "set -eu; (set -o pipefail) 2>/dev/null && set -o pipefail;"


class Refused(Exception):
    pass


def docker_image(url):
    """The Docker reference of a rule's `container:` value."""
    if url.startswith(DOCKER_SCHEME):
        url = url[len(DOCKER_SCHEME):]
    elif url.startswith(OTHER_SCHEMES) or url.startswith(("/", ".")) or url.endswith(".sif"):
        raise Refused(f"container {url!r} is no Docker image (docker://repo:tag or repo:tag)")
    if not url or any(c.isspace() for c in url):
        raise Refused(f"container {url!r} is no Docker reference")
    return url


def check_runs_in_an_image(job):
    """Refuses what only a Snakemake inside the job could provide."""
    rule = job.rule
    where = f"rule {rule.name} asks for container {job.container_img_url!r}, but"
    if not rule.is_shell:
        raise Refused(
            f"{where} run:, script:, notebook: and wrapper: rules run inside Snakemake, "
            "which the image does not hold; use shell:"
        )
    for directive, used in (
        ("conda:", rule.conda_env is not None),
        ("envmodules:", bool(rule.env_modules)),
        ("shadow:", bool(rule.shadow_depth)),
        ("benchmark:", job.benchmark is not None),
    ):
        if used:
            raise Refused(f"{where} {directive} needs Snakemake in the job; drop one of them")


def job_script(job):
    """The container job: the rule's command as Snakemake's shell() would run it, by bash
    where the image has bash (Snakemake's shell), else by sh, strict as far as sh allows."""
    from snakemake.shell import shell

    # None unless the Snakefile set shell.prefix(); Snakemake's own default is for bash.
    custom = shell._process_prefix
    bash_prefix = BASH_PREFIX if custom is None else custom
    sh_prefix = STRICT_SH if custom is None else custom
    command = " ".join((job.shellcmd.strip(), shell._process_suffix)).strip()
    return "\n".join([
        "#!/bin/sh",
        f"# Snakemake rule {job.rule.name}, written by qdock's Snakemake profile: the rule's",
        "# shell command alone, run in the rule's image.",
        f"cmd={shlex.quote(command)}",
        "if command -v bash >/dev/null 2>&1; then",
        f"    exec bash -c {shlex.quote(bash_prefix)}\" $cmd\"",
        "fi",
        f"exec sh -c {shlex.quote(sh_prefix)}\" $cmd\"",
        "",
    ])


class Executor(RealExecutor):
    def __post_init__(self):
        self.out = os.environ["QDOCK_RENDER"]

    @property
    def cores(self):
        return 1

    def get_exec_mode(self):
        return ExecMode.REMOTE

    def get_python_executable(self):
        raise NotImplementedError("the render executor runs nothing")

    def cancel(self):
        pass

    def shutdown(self):
        pass

    def plan(self, job):
        # A group's script runs all its jobs in one remote Snakemake.
        jobs = list(job.jobs) if job.is_group() else [job]
        boxed = [j for j in jobs if j.container_img_url]
        if not boxed:
            return {"kind": "native"}
        if len(jobs) > 1:
            raise Refused(
                f"rule {boxed[0].rule.name} asks for a container inside group job "
                f"{job.jobid}; a group runs in one Snakemake, so only outside groups"
            )
        check_runs_in_an_image(job)
        image = docker_image(job.container_img_url)
        with open(self.out + ".job", "w") as script:
            script.write(job_script(job))
        self.workflow.async_run(job.prepare())
        return {"kind": "container", "image": image, "workdir": os.getcwd()}

    def run_job(self, job):
        try:
            plan = self.plan(job)
        except Refused as why:
            plan = {"kind": "refused", "why": str(why)}
        plan["threads"] = str(job.threads)
        with open(self.out + ".plan", "w") as out:
            out.writelines(f"{k}={shlex.quote(v)}\n" for k, v in plan.items())
        os._exit(0)
