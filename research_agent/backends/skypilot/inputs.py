"""What every VM needs, written into RUN_DIR/sky: the worker package, the target bundle, the task's
files, the rendered (SkyPilot-validated) task YAMLs and each job's job.json with its lineage bundles."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

from ... import git
from ...errors import TaskError, UserError
from ...runtimes import runtime_kind
from .. import sky_tasks
from ..sky_api import CloudError
from .options import PREFIX
from .registry import _register


class InputsMixin:
    def _prepare(self, dry: bool = False) -> None:
        with self._lock:
            if self._prepared:
                return
            self.sky_dir.mkdir(parents=True, exist_ok=True)
            sky_tasks.ship_package(self.sky_dir / "pkg")
            if not self.task.repo_is_url():
                self._target_bundle()
            self._ship_task_files()
            self._spot_default(dry)
            if not dry:
                self._check_infra()
                _register(self.rundir.path)
                if self.ledger.options().get("dryrun"):  # launching a dry run: its files give way to the real ones
                    for old in list(self.sky_dir.glob(f"{PREFIX}*.yaml")) + [self.sky_dir / "work"]:
                        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
                    self.ledger.update_run(options=json.dumps({**self.ledger.options(), "dryrun": False}))
            self._prepared = True

    def _spot_default(self, dry: bool) -> None:
        """No infra named and no use_spot set: spot only if some enabled infra has a spot market."""
        named = self.opts.use_spot is not None or "use_spot" in self.opts.resources or self.resources.get("infra")
        if named:
            return
        enabled = self.api.enabled_infra()
        self.resources = self.opts.resources_dict(enabled)
        if not self.resources["use_spot"]:
            self._say(f"on-demand workers: no spot market on the enabled infra ({', '.join(map(str, enabled or []))}); "
                      "set workers.use_spot to choose", kind="notice")

    def _check_infra(self) -> None:
        """`sky check`'s verdict, before anything is requested (unknown when no API server ran yet)."""
        infra = self.api.enabled_infra()
        if infra is None:
            return
        if not infra:
            raise CloudError("no infra enabled: run `sky check` to enable a cloud, Kubernetes or Slurm")
        wanted = str(self.resources.get("infra") or self.resources.get("cloud") or "").split("/")[0].lower()
        wanted = {"k8s": "kubernetes"}.get(wanted, wanted)
        enabled = [str(i).lower() for i in infra]
        if wanted and wanted not in enabled:
            raise CloudError(f"{wanted} is not enabled (enabled: {', '.join(map(str, infra))}): run `sky check {wanted}`")

    def _ship_task_files(self) -> None:
        """workers.files (absolute once the run exists) into RUN_DIR/sky/task, mounted at ~/.ra/task."""
        folder = self.sky_dir / "task"
        for name in self.opts.files:
            source = Path(name)
            target = folder / source.name
            if not source.exists():
                if target.exists():  # a resumed run whose task folder moved: the run's copy is the truth
                    continue
                raise TaskError(f"workers.files: {name} not found")
            folder.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)

    def _target_bundle(self) -> Path:
        """The run's repository as a git bundle for the VMs (a local target has no URL to clone)."""
        bundle = self.sky_dir / "target.bundle"
        base = self.ledger.run()["base_commit"]
        repo = self.rundir.repo_dir
        ref = f"refs/heads/ra/{self.rundir.run_id}/base"
        try:
            git.run(repo, "update-ref", ref, base)
            git.run(repo, "bundle", "create", "--quiet", str(bundle), ref)
        except git.GitError as error:
            raise UserError(f"cannot bundle the target for the workers: {str(error)[:200]}") from None
        return bundle

    def secrets(self) -> dict[str, str]:
        return {name: os.environ[name] for name in self.secret_names() if os.environ.get(name)}

    def secret_names(self) -> list[str]:
        names = list(self.opts.secrets)
        runtime = self.task.runtime
        names += runtime_kind(runtime.name).secret_names(runtime.options)
        return list(dict.fromkeys(names))

    def _context(self, name: str) -> dict:
        return {
            "name": name, "run_id": self.rundir.run_id, "resources": self.resources, "autostop_minutes": None,
            "pkg_dir": str(self.sky_dir / "pkg"),
            "target_bundle": None if self.task.repo_is_url() else str(self.sky_dir / "target.bundle"),
            "task_files": str(self.sky_dir / "task") if self.opts.files else None,
            "holdout_files": str(self.rundir.path / "holdout") if self.task.holdout else None,
            "setup": sky_tasks.render_script("setup.sh", worker_requirements=" ".join(shlex.quote(r) for r in sky_tasks.WORKER_REQUIREMENTS),
                                             runtime=self.task.runtime.name, runtime_setup=sky_tasks.runtime_setup(self.task.runtime.name),
                                             project_setup=self.opts.setup.strip()),
            "secret_names": [n for n in self.secret_names()],
        }

    def _write_cluster_yaml(self) -> Path:
        ctx = self._context(f"{PREFIX}{self.slug}-worker")
        ctx["autostop_minutes"] = self.opts.idle_minutes
        sky_tasks.write(self.sky_dir / "cluster-setup.yaml", sky_tasks.render("cluster-setup.yaml", **{**ctx, "autostop_minutes": None}))
        return sky_tasks.write(self.sky_dir / "cluster.yaml", sky_tasks.render("cluster.yaml", **ctx))

    def _write_pool_yaml(self, workers: int) -> Path:
        ctx = self._context(self.pool_name)
        return sky_tasks.write(self.sky_dir / "pool.yaml", sky_tasks.render("pool.yaml", workers=workers, **ctx))

    def _spec(self, kind_or_exp: str, base_commit: str | None, fields: dict) -> dict:
        url = self.task.repo_is_url()
        spec = {"version": 1, "kind": "baseline" if kind_or_exp == "baseline" else "experiment",
                "repo": {"url": self.task.repo if url else None, "bundle": None if url else "~/.ra/target.bundle",
                         "base_commit": base_commit, "lineage": []}}
        spec.update(fields)
        return spec

    def _commands(self) -> dict:
        t = self.task
        return {"build": t.build, "check": t.check, "bench": t.bench, "metric": t.metric.name, "regex": t.metric.regex, "format": t.metric.format,
                "direction": t.metric.direction, "build_timeout": t.timeouts.build, "check_timeout": t.timeouts.check,
                "bench_timeout": t.timeouts.bench}

    def _write_job(self, exp: str, name: str, spec: dict) -> tuple[Path, Path]:
        """RUN_DIR/sky/work/<name>/ (job.json + bundles of the base's lineage) and RUN_DIR/sky/<name>.yaml."""
        work = self.sky_dir / "work" / name
        if work.exists():
            shutil.rmtree(work)
        (work / "inputs").mkdir(parents=True)
        spec = {**spec, "name": name, "repo": dict(spec["repo"])}
        spec["repo"]["lineage"] = self._lineage(spec["repo"].get("base_commit"), work / "inputs")
        (work / "job.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        ctx = self._context(name)
        title = "the baseline" if exp == "baseline" else f"experiment {exp}: {spec.get('title', '')}"
        inputs = _packed(work) if self.opts.mode == "pool" else None
        text = sky_tasks.render("experiment.yaml", mode=self.opts.mode, pool=self.pool_name, title=title,
                                workdir=str(work), inputs=inputs, envs=self.opts.envs, run=sky_tasks.render_script("run.sh"), **ctx)
        return sky_tasks.write(self.sky_dir / f"{name}.yaml", text), work

    def _lineage(self, commit: str | None, inputs: Path) -> list[str]:
        """Bundles of the candidate commits between the run's base and `commit`, oldest first."""
        base = self.ledger.run().get("base_commit")
        known = {}
        for results in (self.rundir.path / "experiments").glob("*/results.json"):
            try:
                data = json.loads(results.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            bundle = results.parent / "candidate.bundle"
            if data.get("cand_commit") and bundle.is_file():
                known[data["cand_commit"]] = (bundle, data.get("base_commit"))
        chain = []
        while commit and commit != base and commit in known and len(chain) < 100:
            bundle, parent = known[commit]
            chain.append(bundle)
            commit = parent
        names = []
        for index, bundle in enumerate(reversed(chain)):
            name = f"inputs/{index:02d}-{bundle.parent.name}.bundle"
            shutil.copyfile(bundle, inputs.parent / name)
            names.append(name)
        return names


def _packed(folder: Path) -> str:
    """A folder as base64 tar.gz, for a pool job's env (pool jobs get no workdir or file mounts)."""
    import base64
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    text = base64.b64encode(buffer.getvalue()).decode("ascii")
    if len(text) > 100_000:  # one env value must stay under the kernel's 128 KiB (MAX_ARG_STRLEN)
        raise UserError(f"pool mode: the job's inputs in {folder.name} are {len(text) // 1024} KiB encoded, over the 100 KiB "
                        "a pool job can be given; use workers.mode: jobs or clusters")
    return text
