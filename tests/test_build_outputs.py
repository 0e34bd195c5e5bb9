"""The identical-build short cut's parts: build outputs as hashes, and "did the build read it"."""

from pathlib import Path

from research_agent import build_outputs

from .conftest import git, make_repo

FILES = {".gitignore": "out/\n*.o\n", "src.c": "int x;\n", "data.txt": "1\n", "gen.txt": "tracked\n"}


def build(repo: Path, extra: bytes = b"") -> None:
    """A stand-in build: an ignored object with the worktree's own path baked in, an untracked
    file, an ignored folder, and a tracked file it rewrites."""
    (repo / "src.o").write_bytes(b"obj " + str(repo.resolve()).encode() + b" end" + extra)
    (repo / "untracked.bin").write_bytes(b"u")
    (repo / "out").mkdir(exist_ok=True)
    (repo / "out" / "deep.bin").write_bytes(b"d")
    (repo / "gen.txt").write_text("rewritten\n")


def test_outputs_are_every_created_or_changed_file_with_the_worktree_path_neutral(tmp_path):
    base, cand = make_repo(tmp_path / "w-base", FILES), make_repo(tmp_path / "w-cand", FILES)
    build(base)
    build(cand)
    found = build_outputs.outputs(base)
    assert set(found) == {"src.o", "untracked.bin", "out/deep.bin", "gen.txt"}
    assert found == build_outputs.outputs(cand)  # each binary holds its own path: not a difference
    build(cand, extra=b"!")
    assert build_outputs.outputs(cand)["src.o"] != found["src.o"]


def test_a_change_counts_only_when_the_build_read_it(tmp_path):
    base, cand = make_repo(tmp_path / "w-base", FILES), make_repo(tmp_path / "w-cand", FILES)
    (cand / "src.c").write_text("int y;\n")
    (cand / "data.txt").write_text("2\n")
    git(cand, "commit", "-qam", "the candidate's change")  # as experiment.commit_candidate does
    build_outputs.mark_unread(cand, ["src.c", "data.txt"])
    build(base)
    build(cand)
    (cand / "src.c").read_text()  # the build compiled src.c; nothing read data.txt
    assert build_outputs.all_read(cand, ["src.c"])
    assert not build_outputs.all_read(cand, ["src.c", "data.txt"])
    assert build_outputs.identical(base, cand, ["src.c", "data.txt"]) == 0  # data.txt may reach the benchmark directly
    assert build_outputs.identical(base, cand, ["src.c"]) == 4  # (git status, in outputs(), reads changed files itself)
    assert not build_outputs.all_read(cand, ["gone.c"])  # a deleted file: never the short cut
    assert not build_outputs.all_read(cand, [])


def test_no_outputs_or_different_outputs_are_not_identical(tmp_path):
    base, cand = make_repo(tmp_path / "w-base", FILES), make_repo(tmp_path / "w-cand", FILES)
    build_outputs.mark_unread(cand, ["src.c"])
    (cand / "src.c").read_text()
    assert build_outputs.identical(base, cand, ["src.c"]) == 0  # the build made nothing to compare
    build(base)
    build(cand, extra=b"x")
    assert build_outputs.identical(base, cand, ["src.c"]) == 0
