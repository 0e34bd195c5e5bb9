"""Mining: cached clones, hot files with file:line snippets, and fork commits turned into checked patches."""

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from research_agent.research.base import SourceItem
from research_agent.research.local_source import LocalCompetitors
from research_agent.research.mine import Miner
from research_agent.target import prepare

from .conftest import DEMO, git, make_repo

KERNEL = "".join(f"line {i}\n" for i in range(1, 21))
UTIL = "alpha\nbeta\ngamma\ndelta\n"


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def fork_setup(tmp_path):
    """upstream (kernel.c, util.c) → fork at c0; upstream moves on (util.c); base = bare clone of upstream."""
    upstream = make_repo(tmp_path / "upstream", {"kernel.c": KERNEL, "util.c": UTIL, "README.md": "# up\n"})
    fork = tmp_path / "fork"
    subprocess.run(["git", "clone", "-q", str(upstream), str(fork)], check=True)
    (upstream / "util.c").write_text(UTIL.replace("beta", "beta (upstream)"))
    commit_all(upstream, "upstream: touch util")
    base_repo = tmp_path / "run" / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(upstream), str(base_repo)], check=True)
    base_commit = git(base_repo, "rev-parse", "HEAD")

    # 1: applies (kernel.c) and also adds a header the target lacks; 2: only a file the target lacks;
    # 3: conflicts with upstream's change to util.c.
    (fork / "kernel.c").write_text(KERNEL.replace("line 10\n", "line 10 unrolled by four\n"))
    (fork / "fast.h").write_text("#define FAST 1\n")
    good = commit_all(fork, "Unroll the hot loop\n\nFour at a time.")
    (fork / "docs").mkdir()
    (fork / "docs" / "notes.md").write_text("# notes\n")
    unrelated = commit_all(fork, "Add docs")
    (fork / "util.c").write_text(UTIL.replace("beta", "beta (fork)"))
    conflict = commit_all(fork, "Tweak util")
    item = SourceItem(id="github:someone/fork", kind="fork", title="someone/fork",
                      meta={"clone_url": str(fork.resolve())})
    return dict(upstream=upstream, fork=fork, base_repo=base_repo, base_commit=base_commit, item=item,
                good=good, unrelated=unrelated, conflict=conflict, cache=tmp_path / "cache")


def test_candidate_patches_from_a_fork(fork_setup):
    s = fork_setup
    miner = Miner(s["cache"], s["base_repo"], s["base_commit"])
    clone = miner.clone(s["item"])
    assert clone is not None and clone.parent == s["cache"] / "repos"
    patches = miner.candidate_patches(s["item"], clone)

    (good,) = patches
    assert good.id == f"github:someone/fork@{s['good'][:12]}"
    assert good.applies and good.reason == "" and good.commits == [good.id] and good.on == s["base_commit"]
    assert good.files == ["kernel.c"] and good.item_id == "github:someone/fork"
    assert good.title == "Unroll the hot loop" and "Four at a time." in good.message
    assert good.diff.startswith("diff --git a/kernel.c b/kernel.c\n") and good.diff.endswith("\n")
    assert "fast.h" not in good.diff and "+line 10 unrolled by four" in good.diff
    # Every commit read is accounted for, oldest first: held by a patch, or skipped with the reason.
    reasons = {c.id.rsplit("@", 1)[1]: c.reason for c in miner.commits}
    assert list(reasons) == [s["good"][:12], s["unrelated"][:12], s["conflict"][:12]]
    assert reasons[s["good"][:12]] == "" and miner.commits[0].patches == [good.id]
    assert reasons[s["unrelated"][:12]] == "no file the target has (docs/notes.md)"
    assert reasons[s["conflict"][:12]] == "does not apply to the base: conflict in util.c"

    # The applicable diff really applies to a checkout of the base, with the expected result.
    checkout = s["cache"].parent / "checkout"
    subprocess.run(["git", "clone", "-q", str(s["base_repo"]), str(checkout)], check=True)
    subprocess.run(["git", "apply", "-"], input=good.diff, text=True, cwd=checkout, check=True)
    assert "line 10 unrolled by four" in (checkout / "kernel.c").read_text()
    # Nothing was left in the run's repo: no worktrees, no index, no new refs.
    assert not (s["base_repo"] / "index").exists()
    assert not (s["base_repo"] / "worktrees").exists()
    assert git(s["base_repo"], "for-each-ref", "--format=%(refname)") == "refs/heads/main"


def test_clone_cache_is_reused_and_fetched(fork_setup):
    s = fork_setup
    first = Miner(s["cache"], s["base_repo"], s["base_commit"])
    clone = first.clone(s["item"])
    assert first.clones == 1
    marker = clone / ".git" / "reused-marker"
    marker.write_text("x")

    kernel = s["fork"] / "kernel.c"
    kernel.write_text(kernel.read_text().replace("line 3\n", "line 3 hoisted\n"))
    newest = commit_all(s["fork"], "Hoist the load")
    second = Miner(s["cache"], s["base_repo"], s["base_commit"])
    again = second.clone(s["item"])
    assert again == clone and second.clones == 0 and second.fetches == 1
    assert marker.exists()  # the same clone, not a new one
    patches = second.candidate_patches(s["item"], again)
    assert patches[-1].id == f"github:someone/fork@{newest[:12]}" and patches[-1].applies  # oldest first

    offline = Miner(s["cache"], s["base_repo"], s["base_commit"], offline=True)
    assert offline.clone(s["item"]) == clone and offline.clones == 0


def test_two_runs_cloning_at_once_clone_once(fork_setup):
    s = fork_setup
    miners = [Miner(s["cache"], s["base_repo"], s["base_commit"]) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        clones = list(pool.map(lambda miner: miner.clone(s["item"]), miners))
    assert len(set(clones)) == 1 and clones[0] is not None
    assert sum(miner.clones for miner in miners) == 1
    assert [p.name for p in (s["cache"] / "repos").iterdir() if not p.name.endswith(".lock")] == [clones[0].name]


def test_offline_and_not_cached_is_a_notice(tmp_path, fork_setup):
    s = fork_setup
    miner = Miner(tmp_path / "empty-cache", s["base_repo"], s["base_commit"], offline=True)
    remote = SourceItem(id="github:owner/repo", kind="repo", title="owner/repo",
                        meta={"clone_url": "https://github.invalid/owner/repo.git"})
    assert miner.clone(remote) is None
    assert any("offline" in notice for notice in miner.notices)
    missing = SourceItem(id="local:gone", kind="competitor", title="gone", meta={"clone_url": str(tmp_path / "gone")})
    assert miner.clone(missing) is None and any("not found" in n for n in miner.notices)


def test_a_fork_whose_commits_do_not_apply_is_recorded(tmp_path):
    upstream = make_repo(tmp_path / "upstream", {"a.c": "one\ntwo\n"})
    base_repo = tmp_path / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(upstream), str(base_repo)], check=True)
    stranger = make_repo(tmp_path / "stranger", {"a.c": "other\ncontent\n"})  # no shared history
    (stranger / "a.c").write_text("other\ncontent changed\n")
    commit_all(stranger, "Change a")
    item = SourceItem(id="local:stranger", kind="competitor", title="s", meta={"clone_url": str(stranger)})
    miner = Miner(tmp_path / "cache", base_repo, git(base_repo, "rev-parse", "HEAD"))
    assert miner.candidate_patches(item, miner.clone(item)) == []
    root, change = miner.commits
    assert root.reason.startswith("root commit")
    assert change.reason.startswith("does not apply to the base: ") and change.patches == []
    assert any("none of its 2 commit(s) gives a patch for the base" in notice for notice in miner.notices)


def test_pull_request_is_one_patch(fork_setup):
    s = fork_setup
    upstream = s["upstream"]
    git(upstream, "checkout", "-q", "-b", "perf")
    (upstream / "kernel.c").write_text(KERNEL.replace("line 20\n", "line 20 vectorised\n"))
    commit_all(upstream, "Vectorise")
    (upstream / "kernel.c").write_text(KERNEL.replace("line 20\n", "line 20 vectorised twice\n"))
    head = commit_all(upstream, "Vectorise more")
    git(upstream, "checkout", "-q", "main")
    pr = SourceItem(id="github:owner/repo#7", kind="pr", title="Faster kernel", text="Body.",
                    meta={"clone_url": str(upstream), "number": 7, "head_sha": head, "merge_commit_sha": None})
    miner = Miner(s["cache"], s["base_repo"], s["base_commit"])
    (patch,) = miner.candidate_patches(pr, miner.clone(pr))
    assert patch.id == "github:owner/repo#7" and patch.applies and patch.files == ["kernel.c"]
    assert "+line 20 vectorised twice" in patch.diff and patch.title == "Faster kernel"

    merged = SourceItem(id="github:owner/repo#3", kind="pr", title="Old", meta={
        "clone_url": str(upstream), "merge_commit_sha": s["base_commit"]})
    assert miner.candidate_patches(merged, miner.clone(merged)) == []
    assert any("already in the base" in notice for notice in miner.notices)


def test_hot_files_snippets_with_line_numbers(fork_setup, tmp_path):
    s = fork_setup
    (s["fork"] / "src").mkdir()
    (s["fork"] / "src" / "gemm.c").write_text("// header\n\nstatic int x;\nvoid gemm_tile(void) {\n  /* tile the matrix */\n}\n")
    (s["fork"] / "blob.bin").write_bytes(b"\0gemm\0")
    (s["fork"] / "link.c").symlink_to("/etc/hostname")
    commit_all(s["fork"], "Add gemm")
    miner = Miner(s["cache"], s["base_repo"], s["base_commit"])
    clone = miner.clone(s["item"])
    snippets = miner.hot_files(clone, ["gemm", "tile", "Matrix"], ["kernel.c", "lib/util.c", "README.md"])
    by_path = {snippet.path: snippet for snippet in snippets}
    assert set(by_path) == {"src/gemm.c", "kernel.c", "util.c"}  # not README.md: the same as the base's
    gemm = by_path["src/gemm.c"]
    assert gemm.line == 4 and gemm.item_id == "github:someone/fork"
    assert gemm.text.splitlines() == ["", "static int x;", "void gemm_tile(void) {", "  /* tile the matrix */", "}"]
    assert by_path["kernel.c"].line == 1  # same path as the target's file, no keyword hit
    assert snippets[0].path == "kernel.c"  # exact path match first
    assert len(miner.hot_files(clone, ["gemm"], [], limit=1)) == 1


def test_demo_bundle_mines_into_the_speedup_and_the_regression(tmp_path):
    target = prepare(str(DEMO), False, tmp_path / "run", False)
    (item,) = LocalCompetitors(["competitors/fast-matmul.bundle"], DEMO).search("", 1)
    miner = Miner(tmp_path / "cache", target.repo_dir, target.base_commit)
    clone = miner.clone(item)
    patches = miner.candidate_patches(item, clone)

    assert [p.files for p in patches] == [["kernel.c"], ["matmul.h"]], [c.reason for c in miner.commits]
    speedup, regression = patches
    assert [c.reason for c in miner.commits][0].startswith("root commit")  # the import: accounted for, not a patch
    assert all(p.applies for p in patches) and miner.notices == []
    assert all(p.id.startswith("local:competitors/fast-matmul.bundle@") for p in patches)
    assert "i-k-j" in speedup.title and "float-store" in regression.title
    snippets = miner.hot_files(clone, ["matrix", "multiply", "kernel"], ["kernel.c", "matmul.h", "main.c", "check.c"])
    assert [s.path for s in snippets] == ["kernel.c", "matmul.h", "README.md"]  # main.c, check.c: as in the base
    assert "i-k-j matrix multiply" in snippets[0].text

    if shutil.which("make") and shutil.which("cc"):
        for patch in patches:  # each one alone on the base still builds and passes the check
            tree = tmp_path / patch.files[0]
            tree.mkdir()
            archive = subprocess.run(["git", "--git-dir", str(target.repo_dir), "archive", target.base_commit],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            subprocess.run(["git", "apply", "-"], input=patch.diff, text=True, cwd=tree, check=True)
            subprocess.run(["make", "-s", "check"], cwd=tree, check=True, capture_output=True)


def test_a_fork_history_is_followed_through_dependencies_renames_merges_and_protected_files(tmp_path):
    from .chain_target import build

    chain = build(tmp_path)
    sha = chain["shas"]
    letter = {value[:12]: key for key, value in sha.items()}
    target = prepare(str(chain["target"]), False, tmp_path / "run", False)
    (item,) = LocalCompetitors(["fork"], tmp_path).search("", 1)
    protected = ["bench.sh", "check.sh", "build.sh"]
    miner = Miner(tmp_path / "cache", target.repo_dir, target.base_commit, protected=protected)
    patches = miner.candidate_patches(item, miner.clone(item))

    held = {letter[p.id.rsplit("@", 1)[1]]: [letter[c.rsplit("@", 1)[1]] for c in p.commits] for p in patches}
    assert held == {"A": ["A"], "B": ["A", "B"], "D": ["D"], "G": ["G"]}  # B only on top of A; D through the rename
    reasons = {letter[c.sha[:12]]: c.reason for c in miner.commits}
    assert list(reasons) == ["A", "B", "S", "E", "C", "D", "F", "G"]  # every commit, oldest first
    assert reasons["E"].startswith("merge commit")
    assert reasons["F"] == "only protected files (bench.sh)"
    assert reasons["S"] == "no file the target has (docs/tuning.md)"
    assert reasons["C"].startswith("only renames files (lib/codec.c → third_party/codec.c)")
    d = next(p for p in patches if p.id.endswith(sha["D"][:12]))
    assert d.files == ["lib/codec.c"] and "+    speed *= 1.1; /* frame decoder" in d.diff  # the target's path

    # Against a best that holds A: B applies alone, A is accounted as in it, G still applies.
    checkout = tmp_path / "best"
    subprocess.run(["git", "clone", "-q", str(target.repo_dir), str(checkout)], check=True)
    a = next(p for p in patches if p.id.endswith(sha["A"][:12]))
    subprocess.run(["git", "apply", "-"], input=a.diff, text=True, cwd=checkout, check=True)
    best = commit_all(checkout, "best: A")
    git(checkout, "push", "-q", str(target.repo_dir), "HEAD:refs/heads/best")
    again = Miner(tmp_path / "cache", target.repo_dir, best, protected=protected, refresh=False, target_label="best",
                  in_target={f"local:fork@{sha['A'][:12]}": "kept as H1"})
    repatched = again.candidate_patches(item, again.clone(item))
    held = {letter[p.id.rsplit("@", 1)[1]]: [letter[c.rsplit("@", 1)[1]] for c in p.commits] for p in repatched}
    assert held == {"B": ["B"], "D": ["D"], "G": ["G"]} and again.fetches == 0
    assert {letter[c.sha[:12]]: c.reason for c in again.commits}["A"] == "in the best (kept as H1)"
