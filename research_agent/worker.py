"""What a cloud worker runs: `python -m research_agent.worker JOB.json OUT_DIR [--emit]`.

The job file says what to do — the baseline, or one experiment — and where the code comes from (a
git bundle shipped with the task, or the target's git URL, plus bundles of earlier candidates when
the base is a commit made on another worker). The procedure is the backend-agnostic one the local
backend runs too (`experiment.measure_baseline` / `experiment.execute`), in two git worktrees of a
mirror cached on the VM.

OUT_DIR receives results.json, samples.jsonl, patch.diff, the runtime's transcript, the logs, the
candidate's git bundle, and SHA256SUMS over all of them. With --emit the whole folder is also
printed to stdout as a checksummed bundle (tar.gz, base64, numbered lines between BEGIN and END
markers): the job log is the one channel every SkyPilot mode has (clusters, managed jobs, pools),
so that is how results come back. `read_bundle` is the other end: it refuses anything truncated,
reordered or corrupted, so a bad transfer is retried, never decided on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import sys
import tarfile
import time
from pathlib import Path

from . import git
from .text import plain

MARK = "RA-BUNDLE"
LINE_BYTES = 3 * 256  # raw bytes per line: 1024 base64 characters, well under any log line limit
CHECKSUMS = "SHA256SUMS"


class TransferError(Exception):
    """Results that did not arrive intact (truncated, missing, corrupted)."""


# --- the bundle: OUT_DIR <-> a block of log lines -----------------------------------------------


def write_checksums(out_dir: Path) -> None:
    lines = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != CHECKSUMS):
        lines.append(f"{_sha256(path.read_bytes())}  {path.relative_to(out_dir).as_posix()}")
    (out_dir / CHECKSUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def emit_bundle(out_dir: Path, job: str, stream=None) -> None:
    stream = stream or sys.stdout
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
            tar.add(path, arcname=path.relative_to(out_dir).as_posix(), recursive=False)
    data = buffer.getvalue()
    digest = _sha256(data)
    chunks = [data[i:i + LINE_BYTES] for i in range(0, len(data), LINE_BYTES)] or [b""]
    stream.write(f"{MARK} BEGIN {job} {digest} {len(data)} {len(chunks)}\n")
    for index, chunk in enumerate(chunks):
        stream.write(f"{MARK} {index} {base64.b64encode(chunk).decode()}\n")
    stream.write(f"{MARK} END {job} {digest}\n")
    stream.flush()


def read_bundle(log: str, job: str) -> dict[str, bytes]:
    """The files of the last complete, verified bundle of `job` in a job log; TransferError if none."""
    lines = [plain(line).rstrip("\r") for line in log.splitlines()]
    found = [i for i, line in enumerate(lines) if f"{MARK} BEGIN {job} " in line]
    if not found:
        raise TransferError("no results in the job log")
    problems = []
    for start in reversed(found):  # a recovered job may have printed an earlier, partial bundle
        try:
            return _decode(lines, start, job)
        except TransferError as error:
            problems.append(str(error))
    raise TransferError(problems[0])


def _decode(lines: list[str], start: int, job: str) -> dict[str, bytes]:
    header = lines[start][lines[start].index(MARK):].split()
    try:
        digest, size, count = header[3], int(header[4]), int(header[5])
    except (IndexError, ValueError):
        raise TransferError("malformed bundle header") from None
    chunks: list[bytes] = []
    for line in lines[start + 1:]:
        if MARK not in line:
            continue  # other output interleaved by the log system
        fields = line[line.index(MARK):].split()
        if fields[1] == "END":
            if len(fields) < 4 or fields[2] != job or fields[3] != digest:
                raise TransferError("bundle end marker does not match its header")
            break
        if fields[1] == "BEGIN":
            raise TransferError(f"truncated: {len(chunks)} of {count} lines before the next bundle")
        if fields[1] != str(len(chunks)) or len(fields) != 3:
            raise TransferError(f"bundle line {len(chunks)} missing or out of order")
        try:
            chunks.append(base64.b64decode(fields[2], validate=True))
        except ValueError:
            raise TransferError(f"bundle line {len(chunks)} is corrupted") from None
    else:
        raise TransferError(f"truncated: {len(chunks)} of {count} lines, no end marker")
    data = b"".join(chunks)
    if len(chunks) != count or len(data) != size or _sha256(data) != digest:
        raise TransferError(f"checksum mismatch ({len(data)} of {size} bytes)")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name
                if not member.isfile() or name.startswith("/") or ".." in Path(name).parts:
                    raise TransferError(f"unexpected entry in results: {name}")
                files[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise TransferError(f"unreadable results archive: {error}") from None
    verify_checksums(files)
    return files


def verify_checksums(files: dict[str, bytes]) -> None:
    listing = files.get(CHECKSUMS)
    if listing is None:
        raise TransferError(f"{CHECKSUMS} missing from the results")
    expected = {}
    for line in listing.decode("utf-8", "replace").splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            expected[name] = digest
    if set(expected) != set(files) - {CHECKSUMS}:
        missing = sorted(set(expected) ^ (set(files) - {CHECKSUMS}))
        raise TransferError(f"results incomplete: {', '.join(missing)}")
    for name, digest in expected.items():
        if _sha256(files[name]) != digest:
            raise TransferError(f"checksum mismatch for {name}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the procedure on the VM --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    emit = "--emit" in args
    args = [a for a in args if a != "--emit"]
    if len(args) != 2:
        print("usage: python -m research_agent.worker JOB.json OUT_DIR [--emit]", file=sys.stderr)
        return 2
    job_file, out_dir = Path(args[0]).resolve(), Path(args[1]).expanduser().resolve()
    spec = json.loads(job_file.read_text(encoding="utf-8"))
    _stop_on_sigterm()
    if out_dir.exists():  # an earlier try of this job on this VM (a recovered managed job)
        import shutil

        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    started = time.time()
    try:
        results = run_job(spec, job_file.parent, out_dir)
    except Exception as error:  # the worker itself failed: say why, as a result
        results = {"error": f"{type(error).__name__}: {error}"}
    results.update(version=1, job=spec["name"], kind=spec["kind"], seconds=round(time.time() - started, 3),
                   host={"cpus": os.cpu_count(), "hostname": os.uname().nodename})
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    write_checksums(out_dir)
    if emit:
        emit_bundle(out_dir, spec["name"])
    return 0


def run_job(spec: dict, inputs: Path, out_dir: Path) -> dict:
    from . import proc

    proc.reset()
    with _cache_lock():  # two jobs on one VM (a pool worker) must not update the mirror at once
        mirror = prepare_mirror(spec["repo"], inputs)
    base = git.run(mirror, "rev-parse", "--verify", (spec["repo"].get("base_commit") or "HEAD") + "^{commit}")
    work = out_dir.parent / f"{out_dir.name}.work"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    try:
        if spec["kind"] == "baseline":
            results = _baseline(spec, mirror, base, work, out_dir)
        else:
            results = _experiment(spec, mirror, base, work, out_dir)
    finally:
        _remove_worktrees(mirror, work)
    results["base_commit"] = base
    return results


def _cache_dir() -> Path:
    return Path(os.environ.get("RA_CACHE") or Path.home() / ".ra" / "cache").expanduser()


class _cache_lock:
    def __enter__(self):
        import fcntl

        _cache_dir().mkdir(parents=True, exist_ok=True)
        self.handle = open(_cache_dir() / ".lock", "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc):
        self.handle.close()


def prepare_mirror(repo: dict, inputs: Path) -> Path:
    """A bare mirror of the target in the VM's cache, holding the base and every lineage commit."""
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    mirror = cache / "target.git"
    if not (mirror / "HEAD").exists():
        source = str(Path(repo["bundle"]).expanduser()) if repo.get("bundle") else repo["url"]
        args = ["clone", "--quiet", "--bare"]
        if not repo.get("bundle") and "://" in source and not source.startswith("file://"):
            args.append("--filter=blob:none")  # big histories: blobs come when a worktree needs them
        tmp = cache / f"target.git.tmp{os.getpid()}"
        git.run(cache, *args, source, str(tmp))
        tmp.rename(mirror)
    for bundle in repo.get("lineage") or []:
        git.run(mirror, "fetch", "--quiet", str(inputs / bundle), "+refs/heads/*:refs/heads/*")
    base = repo.get("base_commit")
    if base and not _has_commit(mirror, base):
        if repo.get("url"):  # the target moved on since the mirror was made
            git.run(mirror, "fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*")
    return mirror


def _baseline(spec: dict, mirror: Path, base: str, work: Path, out_dir: Path) -> dict:
    from .experiment import BaselineJob, measure_baseline

    workdir = _worktree(mirror, work / "baseline", base)
    samples = (out_dir / "samples.jsonl").open("a", encoding="utf-8")
    metrics = (out_dir / "metrics.jsonl").open("a", encoding="utf-8")

    def on_sample(index: int, value: float, seconds: float) -> None:
        _sample(samples, "baseline", index, value, seconds)

    b = spec["baseline"]
    job = BaselineJob(_commands(spec), b["repeats"], out_dir / "baseline.log", on_sample, b.get("profile"), b.get("profile_timeout", 900),
                      on_metrics=lambda *row: _metrics(metrics, *row))
    try:
        result = measure_baseline(workdir, job)
    finally:
        samples.close()
        metrics.close()
    return {"values": result.values, "failure": result.failure, "profile": result.profile}


def _experiment(spec: dict, mirror: Path, base: str, work: Path, out_dir: Path) -> dict:
    from .experiment import Holdout, Job, NoiseCheck, execute
    from .gate import SequentialGate
    from .runtimes import make_runtime
    from .runtimes.base import Brief

    branch = spec["branch"]
    base_dir = _worktree(mirror, work / "base", base)
    cand_dir = _worktree(mirror, work / "cand", base, branch=branch)
    b = spec["brief"]
    brief_path = out_dir / "brief.md"
    brief_path.write_text(b["text"], encoding="utf-8")
    brief = Brief(text=b["text"], path=brief_path, hypothesis_id=b["hypothesis_id"], diff=b.get("diff"), exp_dir=out_dir)
    gate = SequentialGate.from_spec(spec["gate"])
    commands = _commands(spec)
    protected = list(dict.fromkeys(spec["protected"] + _files_named(commands, base_dir)))
    holdout = None
    if spec.get("holdout"):  # its files were shipped beside the package, outside the worktrees
        holdout = Holdout.from_spec(spec["holdout"])
        holdout.directory = str(Path(holdout.directory).expanduser())
    noise = NoiseCheck(**spec["noise"]) if spec.get("noise") else None
    samples = (out_dir / "samples.jsonl").open("a", encoding="utf-8")
    metrics = (out_dir / "metrics.jsonl").open("a", encoding="utf-8")
    phases = []

    def on_sample(arm: str, index: int, value: float, seconds: float) -> None:
        _sample(samples, arm, index, value, seconds)

    def on_phase(name: str) -> None:
        phases.append([name, round(time.time(), 3)])
        print(f"RA-PHASE {name}", flush=True)

    r = spec["runtime"]
    from .fence import Fence

    runtime = make_runtime(r["name"], r.get("options") or {}, r["timeout"], fence=Fence.from_spec(commands.fence))
    job = Job(spec["exp_id"], spec["title"], brief, commands, protected, gate, out_dir, spec["seed"], on_sample, on_phase,
              holdout=holdout, noise=noise, on_metrics=lambda *row: _metrics(metrics, *row))
    try:
        result = execute(job, runtime, base_dir, cand_dir, message=spec["message"])
    finally:
        samples.close()
        metrics.close()
    if result.cand_commit and result.cand_commit != base:
        with _cache_lock():
            git.run(mirror, "bundle", "create", "--quiet", str(out_dir / "candidate.bundle"), f"refs/heads/{branch}", f"^{base}")
    outcome = result.runtime
    runtime_info = None
    if outcome is not None:
        transcript = outcome.transcript
        runtime_info = {
            "ok": outcome.ok, "reason": outcome.reason, "tokens": outcome.tokens, "cost_usd": outcome.cost_usd,
            "turns": outcome.turns, "details": outcome.details,
            "transcript": Path(transcript).name if transcript and Path(transcript).is_file() and Path(transcript).parent == out_dir else None,
        }
    return {"decision": result.decision, "reason": result.reason, "effect": result.effect, "cand_commit": result.cand_commit,
            "changed": result.changed, "base": result.base, "cand": result.cand, "runtime": runtime_info,
            "branch": branch, "phases": phases, "checks": result.checks, "noise": result.noise}


def _commands(spec: dict):
    from .experiment import Commands

    commands = Commands(**spec["commands"])
    if commands.fence and commands.fence.get("mechanism") == "auto":  # chosen and probed here, on the worker
        import tempfile

        from .fence import choose, probe

        fence = choose(commands.fence.get("extra") or ())
        probe(fence, Path(tempfile.mkdtemp(prefix="ra-probe-")))
        commands.fence = fence.to_spec()
    return commands


def _files_named(commands, root: Path) -> list[str]:
    """Files the bench and check commands name are protected (the local run could not see them)."""
    found = []
    for command in (commands.bench, commands.check):
        for token in (command or "").split():
            token = token.strip("'\"")
            while token.startswith("./"):
                token = token[2:]
            if token and not os.path.isabs(token) and (root / token).is_file():
                found.append(Path(token).as_posix())
    return found


def _sample(stream, arm: str, index: int, value: float, seconds: float) -> None:
    stream.write(json.dumps({"arm": arm, "idx": index, "value": value, "seconds": seconds}) + "\n")
    stream.flush()
    print(f"RA-SAMPLE {arm} {index} {value!r}", flush=True)


def _metrics(stream, bench: str, arm: str, index: int, metrics: dict) -> None:
    stream.write(json.dumps({"bench": bench, "arm": arm, "idx": index, "metrics": metrics}) + "\n")
    stream.flush()


def _worktree(mirror: Path, path: Path, commit: str, branch: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["worktree", "add", "--force", "--quiet"]
    args += ["-B", branch, str(path), commit] if branch else ["--detach", str(path), commit]
    with _cache_lock():
        git.run(mirror, *args)
    return path


def _remove_worktrees(mirror: Path, work: Path) -> None:
    if work.exists():
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    with _cache_lock():
        try:
            git.run(mirror, "worktree", "prune")
        except git.GitError:
            pass


def _has_commit(mirror: Path, commit: str) -> bool:
    return git.ok(mirror, "cat-file", "-e", f"{commit}^{{commit}}")


def _stop_on_sigterm() -> None:
    """`sky cancel` / `sky down` / a preemption notice: kill what runs (process groups) and exit."""
    from . import proc  # imported now: the handler must not import (it may interrupt an import)

    def stop(signum, _frame):
        try:
            proc.stop_all()
        finally:
            os._exit(128 + signum)  # never a results bundle from a killed worker

    signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":
    sys.exit(main())
