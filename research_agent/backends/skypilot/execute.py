"""The loop every mode shares: run a job until it gives verified results (requeue on a lost worker
or a damaged transfer, never decide on partial data), fetch the results bundle from the job log, and
deliver the verified files into the experiment's folder. The mode supplies `_attempt`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ... import git, proc
from ...text import clip, error_line
from ..sky_api import CloudError, LaunchError, WorkerLost

class TransferError(Exception):
    """Results did not arrive intact after every retry."""


class _JobFailed(Exception):
    pass


class _Final(Exception):
    """A failure that another attempt would repeat (e.g. SkyPilot's prechecks refused the job)."""


class _NotStarted(Exception):
    """The worker was gone before the job could start: requeue without spending an attempt."""


def _cloud_error(error: LaunchError) -> CloudError:
    if error.reason.startswith("no infra enabled"):
        return CloudError(error.reason)
    return CloudError(f"requested resources unavailable: {error.reason}")


def _why(error: BaseException) -> str:
    return clip(getattr(error, "reason", None) or error_line(error), 300)


def _samples(files: dict[str, bytes], name: str = "samples.jsonl") -> list[dict]:
    raw = files.get(name, b"").decode("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]



class ExecuteMixin:
    """Needs from the backend: opts, ledger, rundir, task, _stopping, _ever_up, _lock, _say, _attempt, _reattachable."""

    def _execute(self, exp: str, spec: dict, exp_dir: Path, phase) -> tuple[dict, dict] | str:
        """Run the job until it gives verified results; returns (files, results) or a failure reason."""
        phase = phase or (lambda _name: None)
        reason = "not started"
        reattach = self._reattachable(exp)
        attempt, tries = 0, 0
        while attempt < self.opts.max_attempts and tries < 4 * self.opts.max_attempts:
            if self._halted():
                return "interrupted"
            tries += 1
            name, reattaching, reattach = reattach or self.job_name(exp), bool(reattach), None
            try:
                files = self._attempt(exp, name, spec, phase, reattaching)
            except _Final as error:
                self._say(f"{exp}: {error}", kind="requeue", experiment=exp)
                return str(error)
            except (WorkerLost, TransferError, LaunchError, _JobFailed, _NotStarted) as error:
                if self._halted():
                    return "interrupted"
                if isinstance(error, LaunchError) and error.unavailable and not self._ever_up:
                    raise _cloud_error(error) from None
                attempt += 0 if isinstance(error, _NotStarted) else 1  # a worker found dead before the job began costs no attempt
                reason = _why(error)
                self._say(f"{exp}: {reason} — " + ("requeued" if attempt < self.opts.max_attempts else "giving up"),
                          kind="requeue", experiment=exp, attempt=attempt)
                continue
            phase("verified")
            self._deliver(files, exp_dir)
            return files, json.loads(files["results.json"])
        return f"infrastructure: {reason} (after {self.opts.max_attempts} attempts)"

    def _halted(self) -> bool:
        return proc.stopping() or self._stopping.is_set()

    def _fetch(self, get_log: Callable[[], str], name: str, exp: str) -> dict[str, bytes]:
        from ...worker import TransferError as WorkerTransferError
        from ...worker import read_bundle

        last = "no attempt"
        for attempt in range(1, self.opts.fetch_attempts + 1):
            if self._halted():
                raise _JobFailed("interrupted")
            try:
                log = get_log()
                files = read_bundle(log, name)
                self._save_log(exp, name, log)
                return files
            except WorkerTransferError as error:
                last = str(error)
            except Exception as error:  # noqa: BLE001 — a dropped connection, a timeout
                last = f"lost connection: {_why(error)}"
            self._say(f"{exp}: results of {name} not intact ({last}); fetching again ({attempt}/{self.opts.fetch_attempts})", kind="transfer")
            self._sleep(min(30.0, self.opts.poll_seconds * 2 ** (attempt - 1)))
        raise TransferError(f"results transfer failed: {last}")

    def _save_log(self, exp: str, name: str, log: str) -> None:
        from ...worker import MARK

        folder = self.rundir.exp_dir(exp)
        text = "\n".join(line for line in log.splitlines() if MARK not in line)
        (folder / f"{name}.log").write_text(text + "\n", encoding="utf-8")

    def _deliver(self, files: dict[str, bytes], exp_dir: Path) -> None:
        """Write the verified files into the experiment's folder, then check them again on disk."""
        from ...worker import TransferError as WorkerTransferError
        from ...worker import verify_checksums

        exp_dir.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            target = exp_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        try:
            verify_checksums({rel: (exp_dir / rel).read_bytes() for rel in files})
        except WorkerTransferError as error:
            raise TransferError(f"results damaged on disk: {error}") from None

    def _import_candidate(self, exp_dir: Path, results: dict) -> None:
        """Fetch the candidate commit into RUN_DIR/repo.git (so branches and the best exist locally)."""
        repo, bundle = self.rundir.repo_dir, exp_dir / "candidate.bundle"
        branch = results.get("branch")
        if not branch or not repo.exists():
            return
        if self.task.repo_is_url():
            self._fetch_base()
        with self._git_lock:  # made in __init__: two experiments ending at once must not fetch into repo.git together
            try:
                git.run(repo, "fetch", "--quiet", str(bundle), f"+refs/heads/{branch}:refs/heads/{branch}")
            except git.GitError as error:
                self._say(f"{exp_dir.name}: candidate kept as {bundle.name} only ({str(error)[:160]})", kind="notice")

    def _fetch_base(self) -> None:
        """A URL target's base commit into RUN_DIR/repo.git: that one commit, trees only, blobs fetched
        on demand — not a clone. Best effort: without it a kept change stays a bundle file."""
        repo, base = self.rundir.repo_dir, self.ledger.run().get("base_commit")
        if not base or git.ok(repo, "cat-file", "-e", f"{base}^{{commit}}"):
            return
        git.ok(repo, "fetch", "--quiet", "--depth=1", "--filter=blob:none", "origin", base)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not (self._halted()):
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))
