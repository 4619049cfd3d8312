"""Push to and pull from the DVC remote, with one clear line when the remote cannot be used.

    python -m stages.tools.remote check|push|pull [-r REMOTE]      (make push, make pull)

DVC's first request to an S3 remote on a push or pull is a HEAD, whose answer has no body to say
why it was refused: wrong credentials come out as "ERROR: unexpected error - Forbidden: An error
occurred (403) when calling the HeadObject operation: Forbidden" and a paragraph asking to get in
touch. So this lists the remote's folder first, with DVC's own filesystem and configuration (the
endpoint, the credentials from the environment, ~/.aws or `dvc remote modify --local`), whose
answer does say why: an access key the server does not know, a secret that does not match, a
bucket that does not exist, an endpoint that does not answer. That is one line and exit status 1;
otherwise `dvc push` / `dvc pull` runs, its output passed through. REMOTE: the default remote
unless named.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from stages.shared.errors import PipelineError, run_stage


def check(name: str | None) -> str:
    """The remote's name and URL once its folder could be listed; a PipelineError saying why not."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            remote = repo.cloud.get_remote(name)
            url = f"{remote.fs.protocol if isinstance(remote.fs.protocol, str) else remote.fs.protocol[0]}://{remote.path}"
            try:
                remote.fs.ls(remote.path, detail=False)
            except FileNotFoundError as e:
                if str(e) != remote.path:  # not this folder (a remote not pushed to yet) but the bucket
                    raise PipelineError(f"remote {remote.name} ({url}): {e}") from None
            except Exception as e:  # the S3 client's errors: PermissionError, botocore's, aiohttp's
                raise PipelineError(f"remote {remote.name} ({url}): {e}") from None
            return f"{remote.name} ({url})"
    except DvcException as e:  # no remote configured, an unknown name, not a DVC repository
        raise PipelineError(str(e)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("check", "push", "pull"))
    parser.add_argument("-r", "--remote", help="the remote's name (default: the default remote)")
    args = parser.parse_args()
    where = check(args.remote)
    if args.command == "check":
        print(f"remote {where}: reachable, the credentials accepted")
        return
    remote = ["-r", args.remote] if args.remote else []
    sys.exit(subprocess.run([sys.executable, "-m", "dvc", args.command, *remote]).returncode)


if __name__ == "__main__":
    run_stage(main)
